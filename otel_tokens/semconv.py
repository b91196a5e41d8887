"""Every name otel-tokens writes: span attributes, events, metrics, units and bucket lists.

Dashboards, alert rules, the report and the tests use these constants, so a rename happens here once.

Each group below says which conventions its names follow: [core] (core v1.37-v1.41,
``opentelemetry-semantic-conventions`` 0.66b2, what dashboards and backends read), [genai] (the GenAI
conventions repository's ``main``, which succeeded core v1.41: cost, cache writes, the log-based details
event and, behind ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``, the newer metric set),
[openai] (the OpenAI provider conventions) or [ours] (``otel_tokens.*``).

How metric names appear in Prometheus (OTLP translation ``UnderscoreEscapingWithSuffixes`` and the
Python Prometheus exporter agree)::

    gen_ai.client.token.usage                    -> gen_ai_client_token_usage_bucket / _sum / _count
    gen_ai.client.operation.duration             -> gen_ai_client_operation_duration_seconds_bucket ...
    gen_ai.client.operation.time_to_first_chunk  -> gen_ai_client_operation_time_to_first_chunk_seconds_bucket ...
    gen_ai.client.operation.cost                 -> gen_ai_client_operation_cost_bucket / _sum / _count
    otel_tokens.cost                             -> otel_tokens_cost_USD_total
    otel_tokens.token.usage                      -> otel_tokens_token_usage_total
    otel_tokens.calls.unpriced                   -> otel_tokens_calls_unpriced_total
    otel_tokens.calls.usage_invalid              -> otel_tokens_calls_usage_invalid_total
    otel_tokens.calls.usage_unknown              -> otel_tokens_calls_usage_unknown_total
    otel_tokens.calls.cost_incomplete            -> otel_tokens_calls_cost_incomplete_total
    otel_tokens.budget.limit                     -> otel_tokens_budget_limit_USD
    otel_tokens.budget.spent                     -> otel_tokens_budget_spent_USD
    otel_tokens.budget.utilization               -> otel_tokens_budget_utilization
    otel_tokens.store.errors                     -> otel_tokens_store_errors_total

and, opted into, for example::

    gen_ai.client.inference.duration             -> gen_ai_client_inference_duration_seconds_bucket ...
    gen_ai.client.inference.usage.input_tokens   -> gen_ai_client_inference_usage_input_tokens_total
    gen_ai.client.inference.operation.input_tokens -> gen_ai_client_inference_operation_input_tokens_bucket ...

Attribute keys become labels with dots replaced by underscores (``gen_ai.agent.name`` ->
``gen_ai_agent_name``).
"""

from __future__ import annotations

from typing import Final

# -- instrumentation scope ------------------------------------------------------------------------
SCOPE_NAME: Final = "otel_tokens"

# Where each name comes from. Four sources, marked on each group below:
#   [core]   OpenTelemetry semantic conventions core v1.37-v1.41, as the Python package
#            ``opentelemetry-semantic-conventions`` 0.66b2 ships them (the last core releases with GenAI).
#   [genai]  the GenAI conventions repository (open-telemetry/semantic-conventions-genai) ``main``, the
#            successor of core v1.41 (first release v0.1.0); names core never had.
#   [openai] the OpenAI provider conventions (core's ``openai.*`` registry, kept in the GenAI repository).
#   [ours]   otel-tokens' own, all under ``otel_tokens.*``.

# -- GenAI span attributes [core] ------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
# A system prompt the API takes apart from the messages (Anthropic's ``system``).
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
# gen_ai.client.token.usage's token type; [genai] removed it with that metric.
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
# -- general attributes [core] (server.*, error.type stable; user.id development) -------------------
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
USER_ID: Final = "user.id"
ERROR_TYPE_OTHER: Final = "_OTHER"
# -- OpenAI attributes [openai] ---------------------------------------------------------------------
# The tier that served an OpenAI call.
OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"

# -- GenAI span attributes [genai] ------------------------------------------------------------------
# Renamed from core's gen_ai.usage.cache_creation.input_tokens.
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_REQUEST_REASONING_LEVEL: Final = "gen_ai.request.reasoning.level"
# The previous response a call continues (OpenAI Responses ``previous_response_id``).
GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID: Final = "gen_ai.request.previous_response.id"
# gen_ai.client.inference.usage.* counters: the modality of the tokens counted.
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
TOKEN_MODALITY_TEXT: Final = "text"
TOKEN_MODALITY_AUDIO: Final = "audio"
TOKEN_MODALITY_IMAGE: Final = "image"
# Not a well-known value; the conventions let a custom one stand (Gemini reports video tokens).
TOKEN_MODALITY_VIDEO: Final = "video"
# The provider did not break the count down: never guessed as text.
TOKEN_MODALITY_UNKNOWN: Final = "unknown"

# -- cost [genai] (REFERENCE 3.1) ---------------------------------------------------------------------
GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE: Final = "gen_ai.usage.cost.source"
COST_CURRENCY_USD: Final = "USD"
COST_SOURCE_LOCAL: Final = "local"
COST_SOURCE_PROVIDER: Final = "provider"
# A self-hosted model (Ollama): no per-token price, cost 0 unless the user set one. [ours] value.
COST_SOURCE_SELF_HOSTED: Final = "self_hosted"

# -- otel-tokens' own attributes [ours] ----------------------------------------------------------
# A gateway's "vendor/model" name priced by another provider's list: which provider and which model name.
OTEL_TOKENS_PRICE_PROVIDER: Final = "otel_tokens.price.provider"
OTEL_TOKENS_PRICE_MODEL: Final = "otel_tokens.price.model"
OTEL_TOKENS_USAGE_ESTIMATED: Final = "otel_tokens.usage.estimated"
OTEL_TOKENS_PRICE_UNKNOWN: Final = "otel_tokens.price.unknown"
# The provider's usage was not finite, non-negative counts: not used (the call may be estimated).
OTEL_TOKENS_USAGE_INVALID: Final = "otel_tokens.usage.invalid"
# A call that succeeded with no token counts, exact or estimated (e.g. a raw body never read).
OTEL_TOKENS_USAGE_UNKNOWN: Final = "otel_tokens.usage.unknown"
OTEL_TOKENS_TASK_NAME: Final = "otel_tokens.task.name"
# Where a call was read from when another instrumentation made its span (GenAISpanProcessor): that span's
# instrumentation scope name. Absent on calls of otel-tokens' own instrumentors and record_usage().
OTEL_TOKENS_SOURCE: Final = "otel_tokens.source"
# The service tier that served the call, in the provider's words (flex, priority, batch, fast, default,
# standard...), whatever the provider; also the by_tier key of the statistics.
OTEL_TOKENS_SERVICE_TIER: Final = "otel_tokens.service_tier"
# Server-side tool calls the provider bills per call (web search, file search, web fetch), by tool.
OTEL_TOKENS_SERVER_TOOL_WEB_SEARCH: Final = "otel_tokens.server_tool.web_search.count"
OTEL_TOKENS_SERVER_TOOL_FILE_SEARCH: Final = "otel_tokens.server_tool.file_search.count"
OTEL_TOKENS_SERVER_TOOL_WEB_FETCH: Final = "otel_tokens.server_tool.web_fetch.count"
# USD of per-call server-tool fees included in gen_ai.usage.cost.amount.
OTEL_TOKENS_COST_TOOL_FEES: Final = "otel_tokens.cost.tool_fees"
# Billing dimensions the response revealed that no price covers (service_tier, cache_write_1h_tokens,
# input_audio_tokens, web_searches...): the cost counts what is known and is a lower bound.
OTEL_TOKENS_COST_INCOMPLETE: Final = "otel_tokens.cost.incomplete"
# A call that ran in a batch: the batch's id and the request's custom_id (spans only, never metrics).
OTEL_TOKENS_BATCH_ID: Final = "otel_tokens.batch.id"
OTEL_TOKENS_BATCH_CUSTOM_ID: Final = "otel_tokens.batch.custom_id"
OTEL_TOKENS_COST_UNPRICED_DIMENSIONS: Final = "otel_tokens.cost.unpriced_dimensions"
# HTTP requests one call sent, when more than one (Gemini automatic function calling, continuation).
OTEL_TOKENS_REQUEST_COUNT: Final = "otel_tokens.request.count"
OTEL_TOKENS_BUDGET_WINDOW: Final = "otel_tokens.budget.window"
# attributes of the budget span events
OTEL_TOKENS_BUDGET_SPENT_USD: Final = "otel_tokens.budget.spent_usd"
OTEL_TOKENS_BUDGET_LIMIT_USD: Final = "otel_tokens.budget.limit_usd"
OTEL_TOKENS_BUDGET_UTILIZATION: Final = "otel_tokens.budget.utilization"
# otel_tokens.budget.window value of a budget with no rolling window
BUDGET_WINDOW_LIFETIME: Final = "lifetime"
# what a budget counts: agent, workflow, task, user, total (every call) or request (per-request, ad hoc)
OTEL_TOKENS_BUDGET_SCOPE: Final = "otel_tokens.budget.scope"
# the budget's name within its scope (the agent name for agent budgets, a label for total)
OTEL_TOKENS_BUDGET_NAME: Final = "otel_tokens.budget.name"
BUDGET_SCOPE_AGENT: Final = "agent"
BUDGET_SCOPE_WORKFLOW: Final = "workflow"
BUDGET_SCOPE_TASK: Final = "task"
BUDGET_SCOPE_USER: Final = "user"
BUDGET_SCOPE_TOTAL: Final = "total"
BUDGET_SCOPE_REQUEST: Final = "request"
BUDGET_SCOPES: Final = (
    BUDGET_SCOPE_AGENT, BUDGET_SCOPE_WORKFLOW, BUDGET_SCOPE_TASK, BUDGET_SCOPE_USER, BUDGET_SCOPE_TOTAL,
)
# otel_tokens.store.errors: which store failed (redis, sqlite) and doing what (reserve, settle, read,
# history: the projection history, read or written alone)
OTEL_TOKENS_STORE_KIND: Final = "otel_tokens.store.kind"
OTEL_TOKENS_STORE_OPERATION: Final = "otel_tokens.store.operation"

# -- statistics keys (get_statistics(), the report) ------------------------------------------------
KEY_NONE: Final = "(none)"  # calls with no agent (workflow, ...) label
KEY_OTHER: Final = "(other)"  # calls past the ledger's per-dimension key cap
STATISTICS_DIMENSIONS: Final = ("agent", "model", "provider", "operation", "workflow", "task", "user", "tier")

# -- span events [ours] ------------------------------------------------------------------------------
EVENT_BUDGET_WARNING: Final = "otel_tokens.budget.warning"
EVENT_BUDGET_EXCEEDED: Final = "otel_tokens.budget.exceeded"
# -- log-based event [genai] (events.yaml; core has had it since v1.37): an inference call's attributes
# with its content in structured form, emitted through the Logs API at severity DEBUG when content
# capture asks for events.
EVENT_INFERENCE_OPERATION_DETAILS: Final = "gen_ai.client.inference.operation.details"

# -- operation names (well-known values [core]) ----------------------------------------------------
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_EMBEDDINGS: Final = "embeddings"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
# Operations whose spans carry usage and cost; agent and workflow spans never do (no double counting).
USAGE_OPERATIONS: Final = frozenset({OP_CHAT, OP_TEXT_COMPLETION, OP_GENERATE_CONTENT, OP_EMBEDDINGS})

# -- token types ([core] gen_ai.token.type values input/output; the rest [ours]) ----------------------
# gen_ai.client.token.usage takes only the semconv values input/output. otel_tokens.token.usage also
# takes the subset types; cache_read and cache_write are part of input, reasoning is part of output,
# so sum input + output for a total and never all five.
TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"
TOKEN_TYPE_CACHE_READ: Final = "cache_read"
TOKEN_TYPE_CACHE_WRITE: Final = "cache_write"
TOKEN_TYPE_REASONING: Final = "reasoning"
TOKEN_TYPES: Final = (
    TOKEN_TYPE_INPUT,
    TOKEN_TYPE_OUTPUT,
    TOKEN_TYPE_CACHE_READ,
    TOKEN_TYPE_CACHE_WRITE,
    TOKEN_TYPE_REASONING,
)

# -- metrics [core] (the default set; dashboards and alert rules read it) -----------------------------
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"  # histogram
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"  # histogram
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"  # histogram
# -- metrics [genai] -----------------------------------------------------------------------------------
# histogram, unit {cost}, gen_ai.usage.cost.currency required; written in both sets
METRIC_OPERATION_COST: Final = "gen_ai.client.operation.cost"
# Written instead of the [core] set above under OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental.
# Inference (chat, text_completion, generate_content) and embeddings durations, histograms in s; an
# operation of neither kind keeps gen_ai.client.operation.duration.
METRIC_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
METRIC_EMBEDDINGS_DURATION: Final = "gen_ai.client.embeddings.duration"
METRIC_INFERENCE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
# Counters in {token} with gen_ai.token.modality (required); inference only. The cache and reasoning
# counters count subsets of the input and output ones.
METRIC_INFERENCE_USAGE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"
METRIC_INFERENCE_USAGE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"
METRIC_INFERENCE_USAGE_CACHE_READ_TOKENS: Final = "gen_ai.client.inference.usage.cache_read.input_tokens"
METRIC_INFERENCE_USAGE_CACHE_WRITE_TOKENS: Final = "gen_ai.client.inference.usage.cache_write.input_tokens"
METRIC_INFERENCE_USAGE_REASONING_TOKENS: Final = "gen_ai.client.inference.usage.reasoning.output_tokens"
# Histograms in {token} per successful operation, no modality (percentiles across modalities do not add).
METRIC_INFERENCE_OPERATION_INPUT_TOKENS: Final = "gen_ai.client.inference.operation.input_tokens"
METRIC_INFERENCE_OPERATION_OUTPUT_TOKENS: Final = "gen_ai.client.inference.operation.output_tokens"
METRIC_EMBEDDINGS_OPERATION_INPUT_TOKENS: Final = "gen_ai.client.embeddings.operation.input_tokens"
# -- metrics [ours] ------------------------------------------------------------------------------------
METRIC_COST_USD: Final = "otel_tokens.cost"  # counter, USD: spend for dashboards and alerts (rate, increase)
METRIC_TOKEN_COUNT: Final = "otel_tokens.token.usage"  # counter by all five token types
METRIC_UNPRICED_CALLS: Final = "otel_tokens.calls.unpriced"  # counter
METRIC_USAGE_INVALID_CALLS: Final = "otel_tokens.calls.usage_invalid"  # counter
METRIC_USAGE_UNKNOWN_CALLS: Final = "otel_tokens.calls.usage_unknown"  # counter
METRIC_COST_INCOMPLETE_CALLS: Final = "otel_tokens.calls.cost_incomplete"  # counter
METRIC_BUDGET_LIMIT: Final = "otel_tokens.budget.limit"  # gauge
METRIC_BUDGET_SPENT: Final = "otel_tokens.budget.spent"  # gauge
METRIC_BUDGET_UTILIZATION: Final = "otel_tokens.budget.utilization"  # gauge, spent / limit
METRIC_STORE_ERRORS: Final = "otel_tokens.store.errors"  # counter, failed budget-store operations

UNIT_TOKEN: Final = "{token}"
UNIT_SECONDS: Final = "s"
UNIT_USD: Final = "USD"
# gen_ai.client.operation.cost's unit: an amount in the currency gen_ai.usage.cost.currency names.
UNIT_COST: Final = "{cost}"
UNIT_CALL: Final = "{call}"
UNIT_ERROR: Final = "{error}"
# Braces keep Prometheus from appending "_ratio" on one path but not the other.
UNIT_RATIO: Final = "{ratio}"

# Bucket advice: tokens and durations [core] (the [genai] metrics keep them), cost [genai].
TOKEN_USAGE_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
# gen_ai.client.operation.cost's advice: powers of 4 from 0.001 (currency units).
COST_BUCKETS: Final = (0.001, 0.004, 0.016, 0.064, 0.256, 1.024, 4.096, 16.384, 65.536)
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)

# Attributes allowed on metric points: low cardinality only, never ids, users or text.
METRIC_ATTRIBUTE_KEYS: Final = frozenset(
    {
        GEN_AI_PROVIDER_NAME,
        GEN_AI_OPERATION_NAME,
        GEN_AI_REQUEST_MODEL,
        GEN_AI_RESPONSE_MODEL,
        GEN_AI_AGENT_NAME,
        ERROR_TYPE,
        SERVER_ADDRESS,
        SERVER_PORT,
        OTEL_TOKENS_SOURCE,
    }
)

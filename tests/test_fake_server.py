"""The fake LLM server against the real openai and anthropic SDK clients.

Token counts follow the fake's documented rules: ``ceil(len/4)`` per text, OpenAI +3 per request and
+4 per message, Anthropic +4 per request and +3 per message. The replies are hashes of model and
prompt, so their lengths are fixed numbers.
"""

from __future__ import annotations

import base64
import socket
import struct

import anthropic
import httpx2
import openai
import pydantic
import pytest

from otel_tokens._internal.commands.fake_server import FakeLLMServer, count_tokens

try:  # imported here: a first import of httpx while SDK clients run in threads races with them
    import groq
except ImportError:  # the groq SDK is optional
    groq = None

QUESTION = "How many tokens does this use?"  # 30 characters -> 8 tokens
USER = [{"role": "user", "content": QUESTION}]
CHAT_REPLY = (
    "Stream usage input cost cache usage latency stream tokens context cost result tool memory stream "
    "draft answer step model cost report output result export answer step step window."
)
ANTHROPIC_REPLY = (
    "Span input reason stream price output usage window cost stream window vector price plan call "
    "summary report plan output prompt trace review draft context input agent context span input."
)
# 4800 characters -> 1200 tokens: long enough to be cached (1024 minimum).
LONG_SYSTEM = "You are a careful cost analyst. " * 150


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture
def oai(server):
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def claude(server):
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0,
                                 open_telemetry=False)
    yield client
    client.close()


def test_token_rule():
    assert count_tokens("") == 0
    assert count_tokens("abcd") == 1
    assert count_tokens("abcde") == 2
    assert count_tokens(QUESTION) == 8


# -- OpenAI chat -----------------------------------------------------------------------------------
def test_chat_create(server, oai):
    response = oai.chat.completions.create(model="gpt-4o-mini", messages=USER)

    assert response.model == "gpt-4o-mini"
    assert response.choices[0].message.content == CHAT_REPLY
    assert response.choices[0].finish_reason == "stop"
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (15, 45, 60)  # 3+4+8
    assert count_tokens(CHAT_REPLY) == 45
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0
    assert server.request_counts() == {"/v1/chat/completions": 1}
    assert server.last_request().usage["completion_tokens"] == 45


def test_chat_stream_without_include_usage_has_no_usage_chunk(server, oai):
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True))

    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == CHAT_REPLY
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert server.last_request().usage is None


def test_chat_stream_with_include_usage_ends_with_usage_only_chunk(oai):
    chunks = list(oai.chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}))

    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (15, 45, 60)
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == CHAT_REPLY


def test_chat_stream_raw_wire_format(server):
    body = {"model": "gpt-4o-mini", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    with httpx2.Client() as http:
        response = http.post(f"{server.openai_base_url}/chat/completions", json=body)
    frames = response.text.split("\n\n")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert frames[-2:] == ["data: [DONE]", ""]
    assert all(frame.startswith("data: {") for frame in frames[:-2])


async def test_chat_async_create_and_stream(server):
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    response = await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    await client.close()

    assert response.usage.total_tokens == 60
    assert chunks[-1].usage.completion_tokens == 45
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == CHAT_REPLY


class Invoice(pydantic.BaseModel):
    customer: str
    amount_cents: int
    paid: bool


def test_chat_parse_returns_schema_instance(oai):
    completion = oai.chat.completions.parse(model="gpt-4o-mini", messages=USER, response_format=Invoice)

    message = completion.choices[0].message
    assert message.parsed == Invoice(customer="window", amount_cents=16, paid=False)
    assert message.content == '{"customer": "window", "amount_cents": 16, "paid": false}'
    # The schema in response_format is part of the prompt: 15 + 88 tokens.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (103, 15)


def test_chat_stream_helper_final_completion(oai):
    with oai.chat.completions.stream(
        model="gpt-4o-mini", messages=USER, response_format=Invoice, stream_options={"include_usage": True}
    ) as stream:
        for _event in stream:
            pass
        final = stream.get_final_completion()

    assert final.choices[0].message.parsed == Invoice(customer="window", amount_cents=16, paid=False)
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (103, 15)


def test_reasoning_model_reports_reasoning_tokens(oai):
    default = oai.chat.completions.create(model="o3-mini", messages=USER)
    capped = oai.chat.completions.create(model="o3-mini", messages=USER, reasoning_effort="low",
                                         max_completion_tokens=70)

    # medium effort: 192 reasoning tokens on top of a 40-token reply
    assert (default.usage.completion_tokens, default.usage.completion_tokens_details.reasoning_tokens) == (232, 192)
    # low effort: 64 reasoning tokens leave 6 of the 70 for text
    assert (capped.usage.completion_tokens, capped.usage.completion_tokens_details.reasoning_tokens) == (70, 64)
    assert capped.choices[0].message.content == "Draft vector step tokens"
    assert capped.choices[0].finish_reason == "length"


def test_openai_prompt_caching(oai):
    def ask(question: str):
        return oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": question}],
        ).usage

    first, second, repeat = ask("first question"), ask("second question"), ask("first question")

    # 3 + (4 + 1200) + (4 + 4); the cacheable prefix 1207 rounds down to 1024 + 128 = 1152.
    assert first.prompt_tokens == second.prompt_tokens == repeat.prompt_tokens == 1215
    assert (first.prompt_tokens_details.cached_tokens, first.prompt_tokens_details.cache_write_tokens) == (0, 1152)
    assert (second.prompt_tokens_details.cached_tokens, second.prompt_tokens_details.cache_write_tokens) == (1152, 0)
    assert (repeat.prompt_tokens_details.cached_tokens, repeat.prompt_tokens_details.cache_write_tokens) == (1152, 0)


def test_short_prompts_are_never_cached(oai):
    usages = [oai.chat.completions.create(model="gpt-4o-mini", messages=USER).usage for _ in range(2)]
    assert [u.prompt_tokens_details.cached_tokens for u in usages] == [0, 0]


# -- OpenAI Responses ------------------------------------------------------------------------------
RESPONSES_REPLY = (
    "Plan metric input budget span step call answer agent dashboard cost retry plan result usage plan "
    "latency usage context budget call sample review."
)


def test_responses_create(oai):
    response = oai.responses.create(model="gpt-4.1-mini", input="Summarise the budget.")

    assert response.status == "completed"
    assert response.output_text == RESPONSES_REPLY
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (13, 37, 50)  # 3 + 4 + 6
    assert (usage.input_tokens_details.cached_tokens, usage.output_tokens_details.reasoning_tokens) == (0, 0)


def test_responses_stream_event_sequence(oai):
    events = list(oai.responses.create(model="gpt-4.1-mini", input="Summarise the budget.", stream=True))

    kinds = [event.type for event in events]
    deltas = kinds.count("response.output_text.delta")
    assert kinds == (
        ["response.created", "response.in_progress", "response.output_item.added",
         "response.content_part.added"]
        + ["response.output_text.delta"] * deltas
        + ["response.output_text.done", "response.content_part.done", "response.output_item.done",
           "response.completed"]
    )
    assert deltas == len(RESPONSES_REPLY.split())
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].response.usage is None
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == RESPONSES_REPLY
    assert events[-1].response.usage.output_tokens == 37
    assert events[-1].response.usage.input_tokens == 13


def test_responses_raw_wire_format_has_event_and_data_lines(server):
    body = {"model": "gpt-4.1-mini", "input": "Summarise the budget.", "stream": True}
    with httpx2.Client() as http:
        text = http.post(f"{server.openai_base_url}/responses", json=body).text
    frames = [frame for frame in text.split("\n\n") if frame]
    assert frames[0].startswith('event: response.created\ndata: {"type": "response.created"')
    assert all(frame.split("\n")[0].startswith("event: ") for frame in frames)
    assert all(frame.split("\n")[1].startswith("data: {") for frame in frames)


def test_responses_reasoning_model(oai):
    response = oai.responses.create(model="gpt-5-mini", input="Summarise the budget.", reasoning={"effort": "high"})

    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert (response.usage.output_tokens, response.usage.output_tokens_details.reasoning_tokens) == (534, 512)


def test_responses_stream_helper_and_parse(oai):
    with oai.responses.stream(model="gpt-4.1-mini", input="Summarise the budget.", text_format=Invoice) as stream:
        for _event in stream:
            pass
        final = stream.get_final_response()

    assert isinstance(final.output_parsed, Invoice)
    assert final.usage.input_tokens == 13 + count_tokens(
        '{"name":"Invoice","schema":{"additionalProperties":false,"properties":{"amount_cents":'
        '{"title":"Amount Cents","type":"integer"},"customer":{"title":"Customer","type":"string"},'
        '"paid":{"title":"Paid","type":"boolean"}},"required":["customer","amount_cents","paid"],'
        '"title":"Invoice","type":"object"},"strict":true,"type":"json_schema"}'
    )
    assert final.usage.output_tokens == count_tokens(final.output_text)


def test_responses_max_output_tokens_makes_it_incomplete(oai):
    response = oai.responses.create(model="gpt-4.1-mini", input="Summarise the budget.", max_output_tokens=5)
    events = list(oai.responses.create(model="gpt-4.1-mini", input="Summarise the budget.", max_output_tokens=5,
                                       stream=True))

    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert (response.output_text, response.usage.output_tokens) == ("Plan metric input bu", 5)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.usage.output_tokens == 5


async def test_responses_async_stream(server):
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    stream = await client.responses.create(model="gpt-4.1-mini", input="Summarise the budget.", stream=True)
    events = [event async for event in stream]
    await client.close()
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage.total_tokens == 50


def test_responses_instructions_are_cached(oai):
    first = oai.responses.create(model="gpt-4.1-mini", instructions=LONG_SYSTEM, input="a").usage
    second = oai.responses.create(model="gpt-4.1-mini", instructions=LONG_SYSTEM, input="b").usage

    assert first.input_tokens == second.input_tokens == 1212  # 3 + (4 + 1200) + (4 + 1)
    assert (first.input_tokens_details.cached_tokens, first.input_tokens_details.cache_write_tokens) == (0, 1152)
    assert (second.input_tokens_details.cached_tokens, second.input_tokens_details.cache_write_tokens) == (1152, 0)


# -- OpenAI embeddings and legacy completions ------------------------------------------------------
def test_embeddings_base64_and_float_agree(server, oai):
    default = oai.embeddings.create(model="text-embedding-3-small", input=["alpha beta", "gamma"])
    floats = oai.embeddings.create(model="text-embedding-3-small", input=["alpha beta", "gamma"],
                                   encoding_format="float")
    large = oai.embeddings.create(model="text-embedding-3-large", input="alpha beta", dimensions=256)

    assert server.requests[0].body["encoding_format"] == "base64"  # the SDK asks for base64 by default
    assert (default.usage.prompt_tokens, default.usage.total_tokens) == (5, 5)  # 3 + 2
    assert [len(item.embedding) for item in default.data] == [1536, 1536]
    assert default.data[0].embedding == floats.data[0].embedding
    assert default.data[0].embedding != default.data[1].embedding
    assert len(large.data[0].embedding) == 256
    assert abs(sum(v * v for v in floats.data[1].embedding) - 1.0) < 1e-5


def test_embeddings_base64_wire_value_is_little_endian_float32(server):
    body = {"model": "text-embedding-3-small", "input": "gamma", "encoding_format": "base64", "dimensions": 4}
    with httpx2.Client() as http:
        data = http.post(f"{server.openai_base_url}/embeddings", json=body).json()
    raw = base64.b64decode(data["data"][0]["embedding"])
    assert len(raw) == 16
    assert len(struct.unpack("<4f", raw)) == 4


def test_legacy_completion(oai):
    default = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Write a haiku about invoices")
    longer = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Write a haiku about invoices",
                                    max_tokens=100)
    chunks = list(oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Write a haiku about invoices",
                                         max_tokens=100, stream=True, stream_options={"include_usage": True}))

    # max_tokens defaults to 16, as upstream
    assert (default.usage.prompt_tokens, default.usage.completion_tokens) == (7, 16)
    assert default.choices[0].finish_reason == "length"
    assert (longer.usage.prompt_tokens, longer.usage.completion_tokens) == (7, 29)
    assert longer.choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 29
    assert "".join(c.choices[0].text for c in chunks if c.choices) == longer.choices[0].text


# -- Anthropic -------------------------------------------------------------------------------------
def test_anthropic_create(server, claude):
    message = claude.messages.create(model="claude-sonnet-4-6", max_tokens=1024, messages=USER)

    assert message.model == "claude-sonnet-4-6"
    assert message.content[0].text == ANTHROPIC_REPLY
    assert message.stop_reason == "end_turn"
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (15, 47)  # 4 + 3 + 8
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
    assert usage.output_tokens_details is None
    assert server.request_counts() == {"/v1/messages": 1}


def test_anthropic_raw_stream_event_sequence(claude):
    events = list(claude.messages.create(model="claude-sonnet-4-6", max_tokens=1024, messages=USER, stream=True))

    kinds = [event.type for event in events]
    deltas = kinds.count("content_block_delta")
    # ping is on the wire but the SDK drops it
    assert kinds == (["message_start", "content_block_start"] + ["content_block_delta"] * deltas
                     + ["content_block_stop", "message_delta", "message_stop"])
    assert deltas == len(ANTHROPIC_REPLY.split())
    assert (events[0].message.usage.input_tokens, events[0].message.usage.output_tokens) == (15, 1)
    assert (events[-2].usage.input_tokens, events[-2].usage.output_tokens) == (15, 47)
    assert events[-2].delta.stop_reason == "end_turn"


def test_anthropic_raw_wire_format_has_ping(server):
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": USER, "stream": True}
    with httpx2.Client() as http:
        text = http.post(f"{server.base_url}/v1/messages", json=body).text
    names = [frame.split("\n")[0] for frame in text.split("\n\n") if frame]
    assert names[:3] == ["event: message_start", "event: content_block_start", "event: ping"]
    assert names[-3:] == ["event: content_block_stop", "event: message_delta", "event: message_stop"]


def test_anthropic_stream_helper_with_thinking(claude):
    with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=4096, messages=USER,
                                thinking={"type": "enabled", "budget_tokens": 2048}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == ANTHROPIC_REPLY
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (15, 431)  # 384 thinking + 47
    assert final.usage.output_tokens_details.thinking_tokens == 384


def test_anthropic_thinking_budget_must_be_below_max_tokens(claude):
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=1024, messages=USER,
                               thinking={"type": "enabled", "budget_tokens": 1024})


def test_anthropic_max_tokens_truncates(claude):
    message = claude.messages.create(model="claude-sonnet-4-6", max_tokens=3, messages=USER)
    assert (message.content[0].text, message.usage.output_tokens, message.stop_reason) == (
        "Span input r", 3, "max_tokens")


def test_anthropic_prompt_caching(claude):
    def ask(question: str, ttl: str | None = None):
        control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
        return claude.messages.create(
            model="claude-sonnet-4-6", max_tokens=64,
            system=[{"type": "text", "text": LONG_SYSTEM, "cache_control": control}],
            messages=[{"role": "user", "content": question}],
        ).usage

    first, second = ask("first question"), ask("second question")

    # the system block with the request overhead: 4 + 1200; the question: 3 + 4
    assert (first.input_tokens, first.cache_creation_input_tokens, first.cache_read_input_tokens) == (7, 1204, 0)
    assert first.cache_creation.ephemeral_5m_input_tokens == 1204
    assert (second.input_tokens, second.cache_creation_input_tokens, second.cache_read_input_tokens) == (7, 0, 1204)


def test_anthropic_cache_write_with_1h_ttl_and_two_breakpoints(claude):
    history = [
        {"role": "user", "content": [{"type": "text", "text": "x" * 400, "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "and now?"},
    ]
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    claude.messages.create(model="claude-sonnet-4-6", max_tokens=8, system=system, messages=USER)
    usage = claude.messages.create(model="claude-sonnet-4-6", max_tokens=8, system=system, messages=history).usage

    # read the cached system prefix (1204), write the first history message (3 + 100) up to its breakpoint
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (1204, 103)
    assert usage.input_tokens == (3 + 1) + (3 + 2)
    assert usage.cache_creation.ephemeral_5m_input_tokens == 103


def test_anthropic_count_tokens(server, claude):
    counted = claude.messages.count_tokens(model="claude-haiku-4-5", system="You are terse.", messages=USER)
    created = claude.messages.create(model="claude-haiku-4-5", max_tokens=64, system="You are terse.",
                                     messages=USER)
    assert counted.input_tokens == created.usage.input_tokens == 19  # 4 + 4 + 3 + 8


async def test_anthropic_async_stream(server):
    client = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0,
                                      open_telemetry=False)
    async with client.messages.stream(model="claude-sonnet-4-6", max_tokens=1024, messages=USER) as stream:
        final = await stream.get_final_message()
    await client.close()
    assert (final.usage.input_tokens, final.usage.output_tokens) == (15, 47)


# -- errors, counting, lifecycle -------------------------------------------------------------------
def test_openai_errors_by_model_name_and_header(server, oai):
    with pytest.raises(openai.RateLimitError) as rate_limited:
        oai.chat.completions.create(model="gpt-4o-mini-error-429", messages=USER)
    with pytest.raises(openai.InternalServerError) as failed:
        oai.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers={"x-fake-error": "500"})

    assert rate_limited.value.status_code == 429
    assert rate_limited.value.body == {"message": "Rate limit reached for requests. Please try again later.",
                                       "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    assert failed.value.status_code == 500
    assert failed.value.body["type"] == "server_error"
    assert server.request_count("/v1/chat/completions") == 2


def test_anthropic_errors(claude):
    with pytest.raises(anthropic.RateLimitError) as rate_limited:
        claude.messages.create(model="claude-error-429", max_tokens=8, messages=USER)
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        claude.messages.create(model="claude-error-529", max_tokens=8, messages=USER, stream=True)

    assert rate_limited.value.body["error"] == {
        "type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit."}
    assert rate_limited.value.body["type"] == "error"
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"


def test_no_retry_header_stops_sdk_retries():
    with FakeLLMServer(allow_retries=False) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test")  # default max_retries=2
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-error-429", messages=USER)
        client.close()
        assert fake.request_count("/v1/chat/completions") == 1


def test_request_counts_per_path_and_reset(server, oai, claude):
    oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    oai.embeddings.create(model="text-embedding-3-small", input="x")
    claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=USER)
    with pytest.raises(openai.NotFoundError):
        oai.models.list()

    assert server.request_counts() == {"/v1/chat/completions": 2, "/v1/embeddings": 1, "/v1/messages": 1,
                                       "/v1/models": 1}
    assert server.request_count() == 5
    assert server.request_count("/v1/responses") == 0
    server.reset()
    assert server.request_counts() == {}
    assert server.requests == ()


def test_abandoned_stream_leaves_server_usable(server, oai):
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    next(iter(stream))
    stream.close()

    response = oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert response.usage.total_tokens == 60


def test_bad_requests_answer_400(server, oai, claude):
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[])
    with httpx2.Client() as http:
        response = http.post(f"{server.openai_base_url}/chat/completions", content=b"not json",
                             headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_chunk_delay_paces_streams():
    with FakeLLMServer(chunk_delay_s=0.01) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True))
        client.close()
    assert len(chunks) == len(CHAT_REPLY.split()) + 2


def test_stop_releases_the_port():
    fake = FakeLLMServer().start()
    port = fake.port
    assert fake.base_url == f"http://127.0.0.1:{port}"
    assert fake.openai_base_url == f"http://127.0.0.1:{port}/v1"
    fake.stop()
    fake.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with pytest.raises(RuntimeError):
        _ = fake.port


def test_stop_also_ends_kept_alive_connections():
    fake = FakeLLMServer().start()
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=USER)  # leaves a pooled connection
    fake.stop()
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    client.close()
    assert fake.request_count() == 1


def test_recorded_requests_keep_no_api_keys(server, oai, claude):
    oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=USER)
    openai_request, anthropic_request = server.requests
    assert "authorization" not in openai_request.headers
    assert "x-api-key" not in anthropic_request.headers
    assert anthropic_request.headers["anthropic-version"]
    assert openai_request.body == {"model": "gpt-4o-mini", "messages": USER}


# -- Gemini (google-genai) -------------------------------------------------------------------------
@pytest.fixture
def gemini(server):
    genai = pytest.importorskip("google.genai")
    return genai.Client(api_key="test", http_options={"base_url": server.gemini_base_url})


def test_gemini_generate_content_usage_follows_the_rules(server, gemini):
    response = gemini.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)
    usage = response.usage_metadata
    assert usage.prompt_token_count == 3 + 8  # 3 per content + the text
    assert usage.thoughts_token_count == 192  # a thinking model's default
    assert usage.candidates_token_count == count_tokens(response.text)
    assert usage.total_token_count == 11 + usage.candidates_token_count + 192
    assert usage.cached_content_token_count is None
    assert response.model_version == "gemini-2.5-flash"
    assert response.candidates[0].finish_reason.name == "STOP"
    path, = server.request_counts()
    assert path.endswith("/models/gemini-2.5-flash:generateContent")


def test_gemini_thinking_config_and_max_output_tokens(gemini):
    from google.genai import types

    plain = gemini.models.generate_content(model="gemini-2.0-flash", contents=QUESTION)
    assert plain.usage_metadata.thoughts_token_count is None
    off = gemini.models.generate_content(
        model="gemini-2.5-flash", contents=QUESTION,
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0)))
    assert off.usage_metadata.thoughts_token_count is None
    capped = gemini.models.generate_content(
        model="gemini-2.5-pro", contents=QUESTION, config=types.GenerateContentConfig(
            max_output_tokens=200, thinking_config=types.ThinkingConfig(thinking_budget=190)))
    assert capped.usage_metadata.thoughts_token_count == 190
    assert capped.usage_metadata.candidates_token_count == 10  # thoughts share the cap
    assert capped.candidates[0].finish_reason.name == "MAX_TOKENS"


def test_gemini_stream_usage_is_cumulative_and_ends_as_the_whole_answer(gemini):
    whole = gemini.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)
    chunks = list(gemini.models.generate_content_stream(model="gemini-2.5-flash", contents=QUESTION))
    assert len(chunks) > 3
    assert "".join(chunk.text for chunk in chunks) == whole.text
    counts = [chunk.usage_metadata.candidates_token_count for chunk in chunks]
    assert counts == sorted(counts) and counts[-1] == whole.usage_metadata.candidates_token_count
    assert all(chunk.usage_metadata.prompt_token_count == 11 for chunk in chunks)
    assert [c.candidates[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].candidates[0].finish_reason.name == "STOP"


def test_gemini_stream_without_alt_sse_is_a_json_array(server):
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{server.base_url}/v1beta/models/gemini-2.0-flash:streamGenerateContent",
        data=json.dumps({"contents": [{"role": "user", "parts": [{"text": QUESTION}]}]}).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["content-type"].startswith("application/json")
        chunks = json.loads(response.read())
    assert chunks[-1]["usageMetadata"]["promptTokenCount"] == 11
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_gemini_implicit_cache_reads_a_long_prefix(gemini):
    config = {"system_instruction": LONG_SYSTEM}
    first = gemini.models.generate_content(model="gemini-2.5-flash", contents=QUESTION, config=config)
    second = gemini.models.generate_content(model="gemini-2.5-flash", contents="Another question", config=config)
    assert first.usage_metadata.cached_content_token_count is None
    assert first.usage_metadata.prompt_token_count == 3 + 1200 + 3 + 8
    assert second.usage_metadata.cached_content_token_count == 1024 + 128  # the system prefix, rounded down


def test_gemini_embeddings_and_errors(server, gemini):
    from google.genai import errors

    result = gemini.models.embed_content(model="gemini-embedding-001", contents=[QUESTION, "abcd"])
    assert [len(e.values) for e in result.embeddings] == [3072, 3072]
    assert result.usage_metadata.prompt_token_count == 8 + 1
    with pytest.raises(errors.ClientError) as raised:
        gemini.models.generate_content(model="gemini-2.5-flash-error-429", contents=QUESTION)
    assert raised.value.code == 429 and raised.value.status == "RESOURCE_EXHAUSTED"
    assert "x-goog-api-key" not in server.last_request().headers  # the key is not kept


# -- Groq (OpenAI wire format under /openai/v1) ----------------------------------------------------
def test_groq_stream_puts_usage_in_the_last_chunks_x_groq(server):
    if groq is None:
        pytest.skip("the groq SDK is not installed")
    client = groq.Groq(base_url=server.groq_base_url, api_key="test", max_retries=0)
    whole = client.chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (15, count_tokens(
        whole.choices[0].message.content))
    chunks = list(client.chat.completions.create(model="llama-3.3-70b-versatile", messages=USER, stream=True))
    assert chunks[-1].x_groq.usage.prompt_tokens == 15
    assert chunks[-1].x_groq.usage.completion_tokens == whole.usage.completion_tokens
    assert all(chunk.x_groq is None or chunk.x_groq.usage is None for chunk in chunks[:-1])
    assert server.request_count("/openai/v1/chat/completions") == 2


def test_gemini_embed_content_single(server):
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{server.base_url}/v1beta/models/text-embedding-004:embedContent",
        data=json.dumps({"content": {"parts": [{"text": QUESTION}]}, "outputDimensionality": 64}).encode(),
        method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        body = json.loads(response.read())
    assert len(body["embedding"]["values"]) == 64
    assert body["usageMetadata"]["promptTokenCount"] == 8


# -- what it received (GET / DELETE /_fake/requests) and how to point each SDK at it --------------------
SDK_KEYS = {"openai": "sk-proj-SECRET-openai", "anthropic": "sk-ant-SECRET-anthropic", "groq": "gsk_SECRET_groq",
            "gemini": "AIza-SECRET-gemini", "generativeai": "AIza-SECRET-generativeai"}


def received(base_url, method="GET"):
    import json
    import urllib.request

    request = urllib.request.Request(f"{base_url}/_fake/requests", method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"] == "application/json"
        text = response.read().decode()
    return text, json.loads(text)


def generativeai_module():
    import warnings

    with warnings.catch_warnings():  # it warns that it is deprecated
        warnings.simplefilter("ignore")
        return pytest.importorskip("google.generativeai")


def test_received_requests_list_what_each_sdk_sent_without_keys(server):
    import time

    genai = pytest.importorskip("google.genai")
    if groq is None:
        pytest.skip("the groq SDK is not installed")
    generativeai = generativeai_module()
    started = time.time()
    oai = openai.OpenAI(base_url=server.openai_base_url, api_key=SDK_KEYS["openai"], max_retries=0)
    oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    list(oai.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    oai.embeddings.create(model="text-embedding-3-small", input="hello")
    claude = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=SDK_KEYS["anthropic"], max_retries=0)
    claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=USER)
    with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=8, messages=USER) as stream:
        stream.get_final_message()
    gemini = genai.Client(api_key=SDK_KEYS["gemini"], http_options={"base_url": server.gemini_base_url})
    gemini.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)
    list(gemini.models.generate_content_stream(model="gemini-2.5-flash-lite", contents=QUESTION))
    generativeai.configure(api_key=SDK_KEYS["generativeai"], transport="rest",
                           client_options={"api_endpoint": server.base_url})
    generativeai.GenerativeModel("gemini-1.5-flash").generate_content(QUESTION)
    fast = groq.Groq(base_url=server.groq_base_url, api_key=SDK_KEYS["groq"], max_retries=0)
    list(fast.chat.completions.create(model="llama-3.3-70b-versatile", messages=USER, stream=True))
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="gpt-4o-error-429", messages=USER)

    text, answer = received(server.base_url)
    assert answer["total"] == 10 == len(answer["requests"])
    assert answer["by_provider"] == {"openai": 4, "anthropic": 2, "gemini": 3, "groq": 1}
    assert answer["by_path"]["/v1/chat/completions"] == 3
    # The Gemini SDKs choose the API version (/v1/ or /v1beta/) themselves.
    rows = [(r["method"], r["path"].split("/models/")[-1], r["provider"], r["model"], r["stream"], r["status"])
            for r in answer["requests"]]
    assert rows == [
        ("POST", "/v1/chat/completions", "openai", "gpt-4o-mini", False, 200),
        ("POST", "/v1/chat/completions", "openai", "gpt-4o", True, 200),
        ("POST", "/v1/embeddings", "openai", "text-embedding-3-small", False, 200),
        ("POST", "/v1/messages", "anthropic", "claude-haiku-4-5", False, 200),
        ("POST", "/v1/messages", "anthropic", "claude-sonnet-4-6", True, 200),
        ("POST", "gemini-2.5-flash:generateContent", "gemini", "gemini-2.5-flash", False, 200),
        ("POST", "gemini-2.5-flash-lite:streamGenerateContent", "gemini", "gemini-2.5-flash-lite", True, 200),
        ("POST", "gemini-1.5-flash:generateContent", "gemini", "gemini-1.5-flash", False, 200),
        ("POST", "/openai/v1/chat/completions", "groq", "llama-3.3-70b-versatile", True, 200),
        ("POST", "/v1/chat/completions", "openai", "gpt-4o-error-429", False, 429),
    ]
    times = [r["time"] for r in answer["requests"]]
    assert started <= times[0] and times == sorted(times) and times[-1] <= time.time()
    assert set(answer["requests"][0]) == {"time", "method", "path", "provider", "model", "stream", "status"}
    for key in SDK_KEYS.values():  # nothing of a header, nor of a body
        assert key not in text
    assert QUESTION not in text

    # Reading the list is not a request to count; forgetting it keeps the prompt cache.
    assert received(server.base_url)[1]["total"] == 10
    assert received(server.base_url, "DELETE")[1] == {"total": 0}
    assert received(server.base_url)[1] == {"total": 0, "by_provider": {}, "by_path": {}, "requests": []}
    assert server.request_count() == 0 and server.requests == ()
    oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert received(server.base_url)[1]["by_provider"] == {"openai": 1}


def test_unknown_paths_are_counted_without_a_provider(server):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{server.base_url}/v1/models", timeout=10)
    assert raised.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(urllib.request.Request(f"{server.base_url}/v1/files", method="DELETE"), timeout=10)
    assert raised.value.code == 404
    answer = received(server.base_url)[1]
    assert answer["total"] == 1 and answer["by_provider"] == {}
    assert answer["requests"][0]["provider"] is None and answer["requests"][0]["model"] is None


def test_the_printed_instructions_work_with_each_real_sdk(monkeypatch):
    """Starts ``otel-tokens fake-server`` and runs every line it prints, code and environment, with the real
    SDK it names."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    genai = pytest.importorskip("google.genai")
    if groq is None:
        pytest.skip("the groq SDK is not installed")
    generativeai = generativeai_module()
    repo = Path(__file__).resolve().parent.parent
    process = subprocess.Popen([sys.executable, "-m", "otel_tokens", "fake-server", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        banner = []
        while not banner or not banner[-1].startswith("  what it received:"):
            banner.append(process.stdout.readline().rstrip("\n"))
            assert banner[-1] or process.poll() is None, banner
        code = {name.strip(): text.split("  #")[0].strip() for name, _, text in (line.partition(":") for line in banner)
                if name.strip() in ("openai", "anthropic", "groq", "google-genai", "google-generativeai")}
        assert set(code) == {"openai", "anthropic", "groq", "google-genai", "google-generativeai"}
        exports = dict(pair.split("=", 1) for line in banner if line.startswith("    export ")
                       for pair in line.split("#")[0].split()[1:])
        assert set(exports) == {"OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY",
                                "GROQ_BASE_URL", "GROQ_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY"}

        # The code lines, evaluated as printed.
        sdks = {"openai": openai, "anthropic": anthropic, "groq": groq}
        for name in ("openai", "groq"):
            client = eval(code[name], dict(sdks))
            client.chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
        eval(code["anthropic"], dict(sdks)).messages.create(model="claude-haiku-4-5", max_tokens=8, messages=USER)
        gemini = eval(code["google-genai"], {"genai": genai})  # kept: a dropped Client closes its connection
        gemini.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)
        eval(code["google-generativeai"], {"genai": generativeai})
        generativeai.GenerativeModel("gemini-1.5-flash").generate_content(QUESTION)

        # The environment lines: each SDK's client built with no arguments.
        for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GROQ_BASE_URL", "GOOGLE_GEMINI_BASE_URL",
                     "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        for name, value in exports.items():
            monkeypatch.setenv(name, value)
        openai.OpenAI().chat.completions.create(model="gpt-4o-mini", messages=USER)
        anthropic.Anthropic().messages.create(model="claude-haiku-4-5", max_tokens=8, messages=USER)
        groq.Groq().chat.completions.create(model="llama-3.3-70b-versatile", messages=USER)
        gemini = genai.Client()
        gemini.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)

        base_url = banner[-1].split("curl ", 1)[1].split()[0].removesuffix("/_fake/requests")
        answer = received(base_url)[1]
        assert answer["by_provider"] == {"openai": 2, "anthropic": 2, "groq": 2, "gemini": 3}
        assert all(request["status"] == 200 for request in answer["requests"])
    finally:
        process.terminate()
        process.wait(timeout=30)

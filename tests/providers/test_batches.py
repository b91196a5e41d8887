"""Finished batch jobs read back through the SDKs' own batch methods: OpenAI ``batches.list()`` (with
``retrieve()``) and google-genai ``batches.get()`` / ``list()``, sync and async, over their real HTTP
stacks. Each is billed at the published batch rates (genai-prices' ``processing: batch`` variant,
computed here by ``calc_price`` itself) and counted once per batch, however often it is read."""

from __future__ import annotations

import genai_prices
import pytest

import otel_tokens
from otel_tokens import semconv as A
from tests.providers.gemini_mock import GeminiMock
from tests.providers.gemini_mock import load as load_gemini
from tests.providers.openai_mock import OpenAIMock
from tests.providers.openai_mock import load as load_openai

pytestmark = pytest.mark.usefixtures("no_network")

BATCH_A, BATCH_B, BATCH_C, BATCH_D = (f"batch_6932aa0000000000000000{x}" for x in "abcd")
GEMINI_JOB, GEMINI_RUNNING, GEMINI_LITE, GEMINI_FILE = (
    "batches/n8k2q4w7zx1m3p5r", "batches/r2d2c3po4bb8k9s0", "batches/l1t3j0b5x8y2v6u4", "batches/f1l3b4s3d7q9w2e5",
)


def batch_bill(model: str, provider_id: str, input_tokens: int, output_tokens: int, cache_read: int = 0) -> float:
    """The bill from the published batch rates: genai-prices' own calculation."""
    usage = genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read)
    price = genai_prices.calc_price(usage, model, provider_id=provider_id, price_context={"processing": "batch"})
    standard = genai_prices.calc_price(usage, model, provider_id=provider_id)
    assert price.total_price < standard.total_price  # a batch rate exists for this model: not the list price
    return float(price.total_price)


def openai_bill(batch: dict) -> float:
    usage = batch["usage"]
    return batch_bill(batch["model"], "openai", usage["input_tokens"], usage["output_tokens"],
                      usage["input_tokens_details"]["cached_tokens"])


def gemini_bill(model: str, response: dict) -> float:
    metadata = response["usageMetadata"]
    return batch_bill(model, "google", metadata["promptTokenCount"],
                      metadata["candidatesTokenCount"] + metadata.get("thoughtsTokenCount", 0),
                      metadata.get("cachedContentTokenCount", 0))


def spans_by(telemetry, attribute: str) -> dict:
    return {span.attributes[attribute]: span for span in telemetry.llm_spans()}


def assert_batch_span(span, batch_id: str, bill: float) -> None:
    attrs = span.attributes
    assert attrs[A.OTEL_TOKENS_BATCH_ID] == batch_id
    assert attrs[A.OTEL_TOKENS_SERVICE_TIER] == "batch"
    assert attrs[A.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(bill, rel=0, abs=1e-9)
    assert A.OTEL_TOKENS_COST_INCOMPLETE not in attrs


# -- OpenAI batches.list() ---------------------------------------------------------------------------
def openai_list_batches() -> dict[str, dict]:
    return {batch["id"]: batch for name in ("batch_list_page1.json", "batch_list_page2.json")
            for batch in load_openai(name)["data"]}


def test_openai_list_counts_completed_batches_as_the_sdk_fetches_pages(instrumented, telemetry):
    mock = OpenAIMock().reply("batch_list_page1.json").reply("batch_list_page2.json")
    client = mock.client()
    with otel_tokens.agent("eval-runner"):
        page = client.batches.list(limit=3)
        # The first page is in the caller's hands: its completed batches count, the running one does not.
        assert type(page).__name__ == "SyncCursorPage[Batch]"
        assert len(mock.requests) == 1
        assert set(spans_by(telemetry, A.OTEL_TOKENS_BATCH_ID)) == {BATCH_A, BATCH_C}
        # Auto-pagination fetches page 2 when the caller gets there; what the caller receives is unchanged.
        ids = [batch.id for batch in page]
    assert ids == [BATCH_A, BATCH_B, BATCH_C, BATCH_D]
    assert len(mock.requests) == 2
    spans = spans_by(telemetry, A.OTEL_TOKENS_BATCH_ID)
    batches = openai_list_batches()
    assert set(spans) == {BATCH_A, BATCH_C, BATCH_D}
    for batch_id, span in spans.items():
        assert_batch_span(span, batch_id, openai_bill(batches[batch_id]))
        assert span.attributes[A.GEN_AI_AGENT_NAME] == "eval-runner"
    assert spans[BATCH_C].attributes[A.GEN_AI_REQUEST_MODEL] == "gpt-4.1-mini-2025-04-14"
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 3
    assert stats["total_cost_usd"] == pytest.approx(sum(openai_bill(batches[i]) for i in spans), rel=0, abs=1e-9)


def test_openai_a_batch_listed_then_retrieved_or_listed_again_counts_once(instrumented, telemetry):
    mock = OpenAIMock()
    client = mock.client()
    mock.reply("batch_list_page1.json")
    client.batches.list()
    mock.reply("batch_retrieve_a.json")
    assert client.batches.retrieve(BATCH_A).usage.input_tokens == 250000
    mock.reply("batch_list_page1.json").reply("batch_list_page2.json")
    assert len(list(client.batches.list())) == 4
    assert sorted(spans_by(telemetry, A.OTEL_TOKENS_BATCH_ID)) == [BATCH_A, BATCH_C, BATCH_D]
    assert len(telemetry.llm_spans()) == 3


async def test_openai_async_list_awaited_and_iterated(instrumented, telemetry):
    mock = OpenAIMock()
    client = mock.async_client()
    mock.reply("batch_list_page1.json")
    page = await client.batches.list()
    assert [batch.id for batch in page.data] == [BATCH_A, BATCH_B, BATCH_C]
    assert set(spans_by(telemetry, A.OTEL_TOKENS_BATCH_ID)) == {BATCH_A, BATCH_C}
    mock.reply("batch_list_page1.json").reply("batch_list_page2.json")
    ids = [batch.id async for batch in client.batches.list()]
    assert ids == [BATCH_A, BATCH_B, BATCH_C, BATCH_D]
    assert len(mock.requests) == 3  # no request of ours
    mock.reply("batch_retrieve_a.json")
    await client.batches.retrieve(BATCH_A)
    spans = spans_by(telemetry, A.OTEL_TOKENS_BATCH_ID)
    assert len(telemetry.llm_spans()) == 3
    batches = openai_list_batches()
    for batch_id, span in spans.items():
        assert_batch_span(span, batch_id, openai_bill(batches[batch_id]))


def test_openai_other_paginated_lists_pass_through_unchanged(instrumented, telemetry):
    mock = OpenAIMock().reply("files_page1.json").reply("files_page2.json")
    # Another resource's pages go through the same (patched) page class.
    files = list(mock.client().files.list(purpose="batch"))
    assert [file.filename for file in files] == ["requests-1.jsonl", "requests-2.jsonl", "requests-3.jsonl"]
    assert len(mock.requests) == 2
    assert telemetry.llm_spans() == []


# -- Gemini batch jobs ---------------------------------------------------------------------------------
def gemini_responses(recording: str) -> dict[str, tuple[str, dict]]:
    """key -> (model, the inline response) of the succeeded jobs in a recording."""
    found = {}
    for operation in load_gemini(recording).get("operations") or [load_gemini(recording)]:
        metadata = operation["metadata"]
        inlined = metadata.get("output", {}).get("inlinedResponses", {}).get("inlinedResponses", [])
        for item in inlined:
            if "response" in item:
                found[item["metadata"]["key"]] = (metadata["model"].removeprefix("models/"), item["response"])
    return found


def assert_gemini_spans(telemetry, expected: dict[str, tuple[str, dict]], jobs: dict[str, str]) -> float:
    spans = spans_by(telemetry, A.OTEL_TOKENS_BATCH_CUSTOM_ID)
    assert set(spans) == set(expected)
    total = 0.0
    for key, (model, response) in expected.items():
        bill = gemini_bill(model, response)
        assert_batch_span(spans[key], jobs[key], bill)
        attrs = spans[key].attributes
        assert attrs[A.GEN_AI_PROVIDER_NAME] == "gcp.gemini"
        assert attrs[A.GEN_AI_OPERATION_NAME] == "generate_content"
        assert attrs[A.GEN_AI_REQUEST_MODEL] == model
        assert attrs[A.GEN_AI_RESPONSE_ID] == response["responseId"]
        assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == response["usageMetadata"]["promptTokenCount"]
        total += bill
    return total


def test_gemini_get_records_each_inline_response_once_at_batch_rates(instrumented, telemetry):
    mock = GeminiMock().reply("batch_job_running.json", "batch_job_succeeded.json", "batch_job_succeeded.json")
    client = mock.client()
    with otel_tokens.agent("nightly-eval"):
        assert client.batches.get(name=GEMINI_RUNNING).state.value == "JOB_STATE_RUNNING"
        assert telemetry.llm_spans() == []
        job = client.batches.get(name=GEMINI_JOB)
        client.batches.get(name=GEMINI_JOB)  # polled again: not counted again
    assert len(job.dest.inlined_responses) == 3  # the caller's job is untouched
    expected = gemini_responses("batch_job_succeeded.json")
    assert sorted(expected) == ["capital-ca", "capital-fr"]  # the errored request is not billed
    total = assert_gemini_spans(telemetry, expected, dict.fromkeys(expected, GEMINI_JOB))
    assert {span.attributes[A.GEN_AI_AGENT_NAME] for span in telemetry.llm_spans()} == {"nightly-eval"}
    fr = spans_by(telemetry, A.OTEL_TOKENS_BATCH_CUSTOM_ID)["capital-fr"].attributes
    assert fr[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1024
    assert fr[A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 210
    assert otel_tokens.get_statistics()["total_cost_usd"] == pytest.approx(total, rel=0, abs=1e-9)


def test_gemini_list_counts_jobs_on_each_page_and_not_file_results(instrumented, telemetry):
    mock = GeminiMock().reply("batch_job_succeeded.json", "batch_list_page1.json", "batch_list_page2.json")
    client = mock.client()
    client.batches.get(name=GEMINI_JOB)
    names = [job.name for job in client.batches.list()]
    assert names == [GEMINI_JOB, GEMINI_RUNNING, GEMINI_LITE, GEMINI_FILE]
    assert len(mock.requests) == 3
    expected = {**gemini_responses("batch_job_succeeded.json"), **gemini_responses("batch_list_page2.json")}
    jobs = {**dict.fromkeys(gemini_responses("batch_job_succeeded.json"), GEMINI_JOB), "greet-1": GEMINI_LITE}
    assert_gemini_spans(telemetry, expected, jobs)
    assert len(telemetry.llm_spans()) == 3  # the job read by get() and listed: once; the file-based job: none


async def test_gemini_async_get_and_list(instrumented, telemetry):
    mock = GeminiMock().reply("batch_job_succeeded.json", "batch_list_page1.json", "batch_list_page2.json")
    client = mock.client()
    await client.aio.batches.get(name=GEMINI_JOB)
    assert len(telemetry.llm_spans()) == 2
    names = [job.name async for job in await client.aio.batches.list()]
    assert names == [GEMINI_JOB, GEMINI_RUNNING, GEMINI_LITE, GEMINI_FILE]
    expected = {**gemini_responses("batch_job_succeeded.json"), **gemini_responses("batch_list_page2.json")}
    jobs = {**dict.fromkeys(gemini_responses("batch_job_succeeded.json"), GEMINI_JOB), "greet-1": GEMINI_LITE}
    assert_gemini_spans(telemetry, expected, jobs)

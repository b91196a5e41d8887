"""A finished batch is counted once across processes that share a budget store (SQLite, Redis) or a
usage log: separate Python processes read the same batches through the real SDKs (recorded replies)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import otel_tokens
from otel_tokens import semconv as A
from otel_tokens._internal.accounting.batches import LoggedBatchIds, SeenBatches
from otel_tokens._internal.budgets.store import SQLiteStore
from tests.budgets.conftest import free_port
from tests.providers.openai_mock import OpenAIMock

ROOT = Path(__file__).resolve().parents[2]
BATCH_A, BATCH_C, BATCH_D = "batch_6932aa0000000000000000a", "batch_6932aa0000000000000000c", "batch_6932aa0000000000000000d"
GEMINI_JOB, GEMINI_LITE = "batches/n8k2q4w7zx1m3p5r", "batches/l1t3j0b5x8y2v6u4"

# One process: instrument, read batches through the SDK (argv: what to read), print the batch ids recorded.
READER = textwrap.dedent("""
    import asyncio, json, sys
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import otel_tokens
    from tests.providers.gemini_mock import GeminiMock
    from tests.providers.openai_mock import OpenAIMock

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel_tokens.instrument(tracer_provider=provider)

    async def gemini_list_async():
        client = GeminiMock().reply("batch_list_page1.json", "batch_list_page2.json").client()
        return [job async for job in await client.aio.batches.list()]

    for what in sys.argv[1:]:
        if what == "openai-retrieve":
            OpenAIMock().reply("batch_retrieve_a.json").client().batches.retrieve("batch_6932aa0000000000000000a")
        elif what == "openai-list":
            list(OpenAIMock().reply("batch_list_page1.json").reply("batch_list_page2.json").client().batches.list())
        elif what == "gemini-get":
            GeminiMock().reply("batch_job_succeeded.json").client().batches.get(name="batches/n8k2q4w7zx1m3p5r")
        elif what == "gemini-list-async":
            asyncio.run(gemini_list_async())
    otel_tokens.uninstrument()
    print(json.dumps(sorted(span.attributes["otel_tokens.batch.id"] for span in exporter.get_finished_spans()
                            if "otel_tokens.batch.id" in span.attributes)))
""")


def read_in_a_new_process(*what: str, **env: str) -> list[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_TOKENS_")}
    environment.update(env, PYTHONPATH=str(ROOT), OTEL_TOKENS_RAISE_INTERNAL_ERRORS="true")
    done = subprocess.run([sys.executable, "-c", READER, *what], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=environment)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_counted_once_across_processes(**env: str) -> None:
    # Two billed responses in the Gemini job: two calls with its name.
    assert read_in_a_new_process("openai-retrieve", "gemini-get", **env) == [BATCH_A, GEMINI_JOB, GEMINI_JOB]
    # Another process: what the first counted is not counted again, what it never saw is.
    everything = ("openai-retrieve", "openai-list", "gemini-get", "gemini-list-async")
    assert read_in_a_new_process(*everything, **env) == [BATCH_C, BATCH_D, GEMINI_LITE]


def test_once_across_processes_through_a_sqlite_store(tmp_path):
    assert_counted_once_across_processes(OTEL_TOKENS_STORE=f"sqlite://{tmp_path}/spend.db")


def test_once_across_processes_through_the_usage_log(tmp_path):
    log = tmp_path / "usage.jsonl"
    assert_counted_once_across_processes(OTEL_TOKENS_LOG=str(log))
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["batch_id"] for line in lines] == [BATCH_A, GEMINI_JOB, GEMINI_JOB, BATCH_C, BATCH_D, GEMINI_LITE]
    assert {line["tier"] for line in lines} == {"batch"}


def test_once_across_processes_through_redis(redis_url, redis_server):
    assert_counted_once_across_processes(OTEL_TOKENS_STORE=redis_url)
    client = redis_server.client()
    assert client.exists(f"otel_tokens:batch:openai:{BATCH_A}")
    assert client.ttl(f"otel_tokens:batch:openai:{BATCH_A}") > 365 * 86_400


def test_an_unreachable_store_falls_back_to_once_in_this_process(telemetry, clean_env, loopback_only, caplog):
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           store=f"redis://127.0.0.1:{free_port()}/0")
    try:
        client = OpenAIMock().reply("batch_retrieve_a.json").reply("batch_retrieve_a.json").client()
        with caplog.at_level(logging.WARNING, logger="otel_tokens"):
            first = client.batches.retrieve(BATCH_A)
            second = client.batches.retrieve(BATCH_A)
    finally:
        otel_tokens.uninstrument()
    assert first.id == second.id == BATCH_A
    assert [span.attributes[A.OTEL_TOKENS_BATCH_ID] for span in telemetry.llm_spans()] == [BATCH_A]
    warnings = [r.getMessage() for r in caplog.records if "cannot check finished batches" in r.getMessage()]
    assert len(warnings) == 1 and "redis://127.0.0.1" in warnings[0]


def test_usage_log_ids_appended_by_another_process_are_seen_on_the_next_look(tmp_path):
    log = tmp_path / "usage.jsonl"
    log.write_text("")
    seen = SeenBatches([LoggedBatchIds(str(log))])
    assert seen.first_sighting("openai", "batch_x") is True
    # Another process appends a line for batch_y (and one it is still writing, without its newline).
    line = {"time": "2026-12-07T10:00:00.000000Z", "provider": "openai", "operation": "chat", "input_tokens": 1,
            "output_tokens": 1, "batch_id": "batch_y"}
    with open(log, "a") as handle:
        handle.write(json.dumps(line, separators=(", ", ": ")) + "\n")
        handle.write(json.dumps({**line, "batch_id": "batch_z"}, separators=(", ", ": "))[:40])
    assert seen.first_sighting("openai", "batch_y") is False
    assert seen.first_sighting("openai", "batch_z") is True
    assert seen.first_sighting("openai", "batch_x") is False


def test_sqlite_claims_are_atomic_and_per_provider(tmp_path):
    first, second = SQLiteStore(str(tmp_path / "spend.db")), SQLiteStore(str(tmp_path / "spend.db"))
    assert first.claim_batch("openai:batch_x") is True
    assert second.claim_batch("openai:batch_x") is False
    assert second.claim_batch("azure.ai.openai:batch_x") is True

"""GenAISpanProcessor with a real source: the OpenTelemetry contrib openai-v2 instrumentation (2.4b0, with
opentelemetry-util-genai 1.1b0) on the real openai SDK over a mock transport. Alone, each call it traces is
counted once with its exact tokens and cost; beside otel-tokens' own openai instrumentor, in either order
of instrumenting, each call is still counted once.

Runs where the contrib package is installed (.ci/run's ``.venv-spans`` leg; docs/development.md)."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip(
    "opentelemetry.instrumentation.openai_v2",
    reason="opentelemetry-instrumentation-openai-v2 is not installed (its own venv: .ci/run's .venv-spans leg)",
)

from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as ContribOpenAIInstrumentor  # noqa: E402

import otel_tokens  # noqa: E402
from otel_tokens import semconv as A  # noqa: E402
from otel_tokens._internal.base.records import Usage  # noqa: E402
from tests.providers.assertions import reference_cost  # noqa: E402
from tests.providers.openai_mock import OpenAIMock  # noqa: E402

# contrib 2.4b0 writes its spans through util-genai, under util-genai's scope.
CONTRIB_SCOPE = "opentelemetry.util.genai.handler"
MESSAGES = [{"role": "user", "content": "hi"}]
# The recorded responses (tests/providers/recordings/openai): chat completion and chat stream.
CHAT = ("gpt-4o-2024-08-06", 1250, 42, 1024)
STREAM = ("gpt-4o-mini-2024-07-18", 2100, 8, 1920)


@pytest.fixture
def contrib(telemetry):
    instrumentor = ContribOpenAIInstrumentor()
    yield lambda: instrumentor.instrument(tracer_provider=telemetry.tracer_provider,
                                          meter_provider=telemetry.meter_provider)
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_TOKENS_") and name not in ("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "OTEL_TOKENS_CACHE_DIR"):
            monkeypatch.delenv(name)
    yield
    otel_tokens.uninstrument()


def _calls(client):
    """One plain call and one stream (asking for usage, as contrib needs it to see any)."""
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    for _chunk in stream:
        pass


def _expected_cost(model, input, output, cache_read):
    # contrib 2.4b0 records no cache counts: the price book bills what the span says.
    del cache_read
    return reference_cost(model, Usage(input, output), "openai")


def test_contrib_alone_every_call_counted_once(telemetry, contrib, clean_env):
    contrib()
    telemetry.tracer_provider.add_span_processor(otel_tokens.GenAISpanProcessor())
    _calls(OpenAIMock().client())
    contrib_spans = [s for s in telemetry.spans() if s.instrumentation_scope.name == CONTRIB_SCOPE]
    assert len(contrib_spans) == 2  # calls made
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 2  # calls recorded
    for model, input, output, cache_read in (CHAT, STREAM):
        entry = stats["by_model"][model]
        assert (entry["calls"], entry["input_tokens"], entry["output_tokens"]) == (1, input, output)
        assert entry["cost_usd"] == pytest.approx(_expected_cost(model, input, output, cache_read), abs=1e-12)
    assert list(stats["by_provider"]) == ["openai"]


def test_contrib_alone_async(telemetry, contrib, clean_env):
    contrib()
    telemetry.tracer_provider.add_span_processor(otel_tokens.GenAISpanProcessor())

    async def main():
        client = OpenAIMock().async_client()
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    asyncio.run(main())
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 1 and stats["by_model"][CHAT[0]]["input_tokens"] == CHAT[1]


@pytest.mark.parametrize("first", ["contrib", "otel_tokens"])
def test_contrib_beside_our_instrumentor_counts_each_call_once(telemetry, contrib, clean_env, first):
    def ours():
        otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               span_processor=True)

    for step in ((contrib, ours) if first == "contrib" else (ours, contrib)):
        step()
    with otel_tokens.agent("both"):
        _calls(OpenAIMock().client())
    scopes = sorted(s.instrumentation_scope.name for s in telemetry.spans() if s.name.startswith("chat"))
    assert scopes == [CONTRIB_SCOPE, CONTRIB_SCOPE, A.SCOPE_NAME, A.SCOPE_NAME]  # two calls, two spans each
    stats = otel_tokens.get_statistics()
    assert stats["total_calls"] == 2
    assert stats["by_agent"]["both"]["calls"] == 2
    # Our instrumentor's counts, cache included, are the ones kept.
    assert stats["by_model"][CHAT[0]]["cache_read_tokens"] == CHAT[3]
    assert stats["by_model"][STREAM[0]]["cache_read_tokens"] == STREAM[3]


LAUNCHED_APP = """
import json, otel_tokens
from tests.providers.openai_mock import OpenAIMock
client = OpenAIMock().client()
client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
for _chunk in client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                             stream=True, stream_options={"include_usage": True}):
    pass
stats = otel_tokens.get_statistics()
print("STATS", json.dumps({"calls": stats["total_calls"], "cache_read_tokens": stats["cache_read_tokens"]}))
"""


def test_the_launcher_with_both_instrumentors_and_the_processor_counts_each_call_once(tmp_path):
    """``opentelemetry-instrument`` loads contrib's and otel-tokens' openai instrumentors from their entry
    points; OTEL_TOKENS_SPAN_PROCESSOR=true adds the processor, which must not count contrib's twins."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = tmp_path / "app.py"
    script.write_text(LAUNCHED_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"PYTHONPATH": str(root), "OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none", "OTEL_TOKENS_SPAN_PROCESSOR": "true",
                "OTEL_TOKENS_RAISE_INTERNAL_ERRORS": "1"})
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    done = subprocess.run([str(launcher), sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=root)
    assert done.returncode == 0, done.stderr
    # Both instrumentations traced both calls (console export: two spans per call) ...
    assert done.stdout.count('"name": "chat gpt-4o"') == 2 and done.stdout.count('"name": "chat gpt-4o-mini"') == 2
    # ... and each call is counted once, with our instrumentor's cache counts.
    (stats,) = [line[6:] for line in done.stdout.splitlines() if line.startswith("STATS ")]
    assert json.loads(stats) == {"calls": 2, "cache_read_tokens": 1024 + 1920}

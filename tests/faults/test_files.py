"""Faults around files, secrets and numbers, through the real SDKs and the real runtime.

Each case asserts what the issue asks of every fault: nothing of ours reaches the app (the SDK's own
exception passes through as the same object), the call is counted once, and totals stay finite and
strict JSON. Covered here: the usage log's file safety (0600, no symlink, no FIFO or directory), the
report written at exit and by ``report --output`` (atomic, 0600, a symlink replaced, never followed),
keys in error messages (span status, agent spans, the usage log), and strict JSON statistics.
"""

from __future__ import annotations

import json
import logging
import math
import os
import stat
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import otel_tokens
from otel_tokens import semconv
from otel_tokens._internal.accounting.usage_log import read_usage_log
from otel_tokens._internal.base.redact import REDACTED, error_text, redact, request_secrets
from otel_tokens._internal.commands import cli
from otel_tokens._internal.setup.runtime import current_runtime

if hasattr(openai, "DefaultHttpx2Client"):  # openai 3.x
    import httpx2 as http

    OpenAIHttpClient = openai.DefaultHttpx2Client
else:  # openai 1.x / 2.x
    import httpx as http

    OpenAIHttpClient = openai.DefaultHttpxClient
import httpx2

# Distinct, key-shaped and not: the second is caught only because the failed request carried it.
OPENAI_KEY = "sk-proj-Q7fVb2LmX9tR4sKd8NwP3yHc"
GATEWAY_KEY = "corp-gateway-7f3a9c2e5b1d4a86"
ANTHROPIC_KEY = "sk-ant-api03-Zr8Tq2Wm5Xn1Kp7Lv4Bc"
CHAT_REPLY = {
    "id": "chatcmpl-files-1", "object": "chat.completion", "created": 1794985600, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1187, "completion_tokens": 43, "total_tokens": 1230},
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("OTEL_TOKENS_") and name not in ("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "OTEL_TOKENS_CACHE_DIR"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def instrument(telemetry: Any, clean_env: pytest.MonkeyPatch) -> Any:
    """instrument(**settings) on this test's providers; uninstrumented after."""
    done = []

    def start(**settings: Any) -> Any:
        otel_tokens.instrument(telemetry.tracer_provider, telemetry.meter_provider, **settings)
        done.append(True)
        return current_runtime()

    yield start
    otel_tokens.uninstrument()


def openai_client(handler: Any, api_key: str = OPENAI_KEY, cls: Any = openai.OpenAI) -> Any:
    return cls(api_key=api_key, base_url="https://api.openai.com/v1", max_retries=0,
               http_client=OpenAIHttpClient(transport=http.MockTransport(handler)))


def chat(client: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])


def echoing_401(request: Any) -> Any:
    """A proxy that echoes the whole key it was given (the OpenAI API itself masks it)."""
    key = request.headers["authorization"].removeprefix("Bearer ")
    body = {"error": {"message": f"Incorrect API key provided: {key}. Check api_key={key}",
                      "type": "invalid_request_error", "code": "invalid_api_key"}}
    return http.Response(401, json=body)


def chat_ok(request: Any) -> Any:
    return http.Response(200, json=CHAT_REPLY)


def assert_strict(stats: dict[str, Any]) -> None:
    json.dumps(stats, allow_nan=False)


# -- the usage log ---------------------------------------------------------------------------------
def test_usage_log_is_created_0600_and_holds_the_call(instrument, telemetry, tmp_path):
    log = tmp_path / "usage.jsonl"
    instrument(usage_log=str(log))
    response = chat(openai_client(chat_ok))

    assert isinstance(response, openai.types.chat.ChatCompletion)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    otel_tokens.uninstrument()
    lines, skipped = read_usage_log(log)
    assert skipped == 0 and len(lines) == 1
    assert (lines[0]["input_tokens"], lines[0]["output_tokens"], lines[0]["usage_invalid"]) == (1187, 43, False)


def test_usage_log_symlink_is_refused_and_its_target_untouched(instrument, tmp_path, clean_env):
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    link = tmp_path / "usage.jsonl"
    link.symlink_to(target)
    clean_env.setenv("OTEL_TOKENS_LOG", str(link))

    with pytest.raises(ValueError, match="OTEL_TOKENS_LOG") as raised:
        otel_tokens.instrument()
    assert "symbolic link" in str(raised.value) and str(link) in str(raised.value)
    assert target.read_text() == "precious\n"
    assert current_runtime() is None  # nothing half-wired: the next instrument() starts afresh


def test_usage_log_dangling_symlink_is_refused_and_creates_nothing(tmp_path, clean_env):
    target = tmp_path / "would-be-created.jsonl"
    link = tmp_path / "usage.jsonl"
    link.symlink_to(target)
    clean_env.setenv("OTEL_TOKENS_LOG", str(link))

    with pytest.raises(ValueError, match="symbolic link"):
        otel_tokens.instrument()
    assert not target.exists()


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_usage_log_must_be_a_regular_file(tmp_path, clean_env, kind):
    path = tmp_path / "usage.jsonl"
    if kind == "fifo":
        os.mkfifo(path)  # without a reader, a blocking open would hang the app's start-up
    else:
        path.mkdir()
    clean_env.setenv("OTEL_TOKENS_LOG", str(path))

    with pytest.raises(ValueError, match="OTEL_TOKENS_LOG"):
        otel_tokens.instrument()
    assert current_runtime() is None


def test_an_existing_log_is_appended_not_replaced(instrument, tmp_path):
    log = tmp_path / "usage.jsonl"
    first = chat_line(instrument, log)
    second = chat_line(instrument, log)
    lines, skipped = read_usage_log(log)
    assert skipped == 0 and [line["time"] for line in lines] == [first, second]


def chat_line(instrument: Any, log: Path) -> str:
    instrument(usage_log=str(log))
    chat(openai_client(chat_ok))
    otel_tokens.uninstrument()
    return read_usage_log(log)[0][-1]["time"]


# -- the report file -------------------------------------------------------------------------------
def test_report_at_exit_is_atomic_0600_and_replaces_a_symlink(instrument, tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    report = tmp_path / "report.txt"
    report.symlink_to(target)
    runtime = instrument(report=str(report))
    chat(openai_client(chat_ok))

    runtime._report_at_exit()

    assert not report.is_symlink() and target.read_text() == "precious\n"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    text = report.read_text()
    assert text.startswith("otel-tokens usage report") and "Calls          1" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt", "victim.txt"]  # no temp file left


def test_report_at_exit_failure_keeps_the_old_file_and_logs(instrument, tmp_path, caplog, monkeypatch):
    report = tmp_path / "report.txt"
    report.write_text("the previous report\n")
    runtime = instrument(report=str(report))
    chat(openai_client(chat_ok))

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("otel_tokens._internal.base.files.os.fsync", disk_full)
    with caplog.at_level(logging.ERROR, logger="otel_tokens"):
        runtime._report_at_exit()  # at exit: logged, never raised

    assert report.read_text() == "the previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]  # the temporary file is gone
    assert any("could not write the report" in r.getMessage() for r in caplog.records)


def test_cli_output_is_atomic_0600_and_never_follows_a_symlink(tmp_path, capsys):
    log = tmp_path / "usage.jsonl"
    log.write_text(json.dumps({"time": "2026-11-18T07:06:40Z", "provider": "openai", "operation": "chat",
                               "model": "gpt-4o-mini", "input_tokens": 1187, "output_tokens": 43,
                               "cost_usd": 0.00020385}) + "\n")
    target = tmp_path / "victim.csv"
    target.write_text("precious\n")
    output = tmp_path / "spend.csv"
    output.symlink_to(target)

    assert cli.main(["report", str(log), "--format", "csv", "--output", str(output)]) == 0
    assert target.read_text() == "precious\n" and not output.is_symlink()
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert output.read_text().splitlines()[1].split(",")[:3] == ["total", "all", "1"]
    assert "0.00020385" in output.read_text()
    assert capsys.readouterr().out == ""


# -- keys in error messages ------------------------------------------------------------------------
def span_status(telemetry: Any) -> str:
    (span,) = telemetry.llm_spans()
    assert span.status.status_code.name == "ERROR"
    return span.status.description or ""


@pytest.mark.parametrize("api_key", [OPENAI_KEY, GATEWAY_KEY])
def test_openai_error_echoing_the_key_is_redacted_on_the_span(instrument, telemetry, api_key):
    runtime = instrument()
    client = openai_client(echoing_401, api_key=api_key)

    with pytest.raises(openai.AuthenticationError) as raised:
        chat(client)

    # The app's exception is the SDK's own, untouched: the key is still in it for the app to see.
    assert api_key in str(raised.value) and type(raised.value) is openai.AuthenticationError
    description = span_status(telemetry)
    assert api_key not in description and REDACTED in description
    assert "Incorrect API key provided" in description  # the message stays readable
    (span,) = telemetry.llm_spans()
    assert all(api_key not in str(value) for value in span.attributes.values())
    stats = runtime.statistics()
    assert (stats["total_calls"], stats["errors"]) == (1, 1)
    assert_strict(stats)


async def test_async_openai_error_is_redacted(instrument, telemetry):
    instrument()

    async def handle(request: Any) -> Any:
        await request.aread()
        return echoing_401(request)

    client = openai.AsyncOpenAI(api_key=GATEWAY_KEY, base_url="https://api.openai.com/v1", max_retries=0,
                                http_client=(openai.DefaultAsyncHttpx2Client if hasattr(openai, "DefaultAsyncHttpx2Client")
                                             else openai.DefaultAsyncHttpxClient)(transport=http.MockTransport(handle)))
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert GATEWAY_KEY not in span_status(telemetry)


def test_anthropic_error_echoing_the_key_is_redacted(instrument, telemetry):
    instrument()

    def handler(request: Any) -> Any:
        # anthropic 2.x sends the key as a bearer token; older versions as x-api-key.
        key = request.headers.get("x-api-key") or request.headers["authorization"].removeprefix("Bearer ")
        return httpx2.Response(401, json={"type": "error", "request_id": "req_files_1", "error": {
            "type": "authentication_error", "message": f"invalid x-api-key: {key}"}})

    client = anthropic.Anthropic(api_key=ANTHROPIC_KEY, max_retries=0,
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                               messages=[{"role": "user", "content": "hello"}])
    assert ANTHROPIC_KEY in str(raised.value)
    description = span_status(telemetry)
    assert ANTHROPIC_KEY not in description and "authentication_error" in description


def _echo_the_key(make_response: Any) -> Any:
    """A gateway that answers 401 with the key it was given, whatever header carried it."""

    def handler(request: Any) -> Any:
        key = next(
            request.headers[name].removeprefix("Bearer ").removeprefix("bearer ")
            for name in ("authorization", "x-api-key", "x-goog-api-key", "api-key") if name in request.headers
        )
        body = {"error": {"message": f"Incorrect API key provided: {key}", "code": 401, "status": "UNAUTHENTICATED"},
                "message": f"Incorrect API key provided: {key}"}
        return make_response(401, json=body)

    return handler


def _groq_call(key: str) -> None:
    import groq
    import httpx

    client = groq.Groq(api_key=key, max_retries=0,
                       http_client=httpx.Client(transport=httpx.MockTransport(_echo_the_key(httpx.Response))))
    client.chat.completions.create(model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "hi"}])


def _mistral_call(key: str) -> None:
    from mistralai.client import Mistral

    client = Mistral(api_key=key, client=httpx2.Client(transport=httpx2.MockTransport(_echo_the_key(httpx2.Response))))
    client.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": "hi"}])


def _cohere_call(key: str) -> None:
    import cohere
    import httpx

    client = cohere.ClientV2(api_key=key,
                             httpx_client=httpx.Client(transport=httpx.MockTransport(_echo_the_key(httpx.Response))))
    client.chat(model="command-r-08-2024", messages=[{"role": "user", "content": "hi"}])


def _gemini_call(key: str) -> None:
    from google import genai
    from google.genai import types

    transport = httpx2.MockTransport(_echo_the_key(httpx2.Response))
    client = genai.Client(api_key=key, http_options=types.HttpOptions(httpx_client=httpx2.Client(transport=transport)))
    client.models.generate_content(model="gemini-2.5-flash", contents="hi")


def _ollama_call(key: str) -> None:
    import httpx
    import ollama

    client = ollama.Client(host="http://127.0.0.1:11434", headers={"Authorization": f"Bearer {key}"},
                           transport=httpx.MockTransport(_echo_the_key(httpx.Response)))
    client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("call", [_groq_call, _mistral_call, _cohere_call, _gemini_call, _ollama_call],
                         ids=["groq", "mistral", "cohere", "google-genai", "ollama"])
def test_every_sdk_error_echoing_an_unshaped_key_is_redacted_on_both_spans(instrument, telemetry, call):
    """A gateway key has no known shape, and SDKs add it below the request object their errors carry:
    it is known from the client the call went through, on the LLM span and on the agent span."""
    instrument()
    with pytest.raises(Exception) as raised, otel_tokens.agent("researcher"):
        call(GATEWAY_KEY)

    assert GATEWAY_KEY in str(raised.value)  # the app's own exception still says it, as the SDK wrote it
    (span,) = telemetry.llm_spans()
    (agent,) = [s for s in telemetry.spans() if s.name.startswith("invoke_agent")]
    for written in (span, agent):
        assert written.status.status_code.name == "ERROR"
        assert GATEWAY_KEY not in (written.status.description or "") and REDACTED in written.status.description
        assert "Incorrect API key provided" in written.status.description
        assert all(GATEWAY_KEY not in str(value) for value in written.attributes.values())


def test_agent_span_and_usage_log_carry_no_key(instrument, telemetry, tmp_path):
    log = tmp_path / "usage.jsonl"
    instrument(usage_log=str(log))
    client = openai_client(echoing_401, api_key=GATEWAY_KEY)

    with pytest.raises(openai.AuthenticationError), otel_tokens.agent("researcher"):
        chat(client)

    (agent_span,) = telemetry.spans("invoke_agent")
    assert agent_span.status.status_code.name == "ERROR"
    assert GATEWAY_KEY not in (agent_span.status.description or "")
    otel_tokens.uninstrument()
    text = log.read_text()
    assert GATEWAY_KEY not in text
    (line,) = read_usage_log(log)[0]
    assert (line["error"], line["agent"], line["input_tokens"]) == ("AuthenticationError", "researcher", None)


def test_secret_env_values_are_redacted(instrument, telemetry, clean_env):
    secret = "tok-3f9a1c7e2b8d4f60"
    clean_env.setenv("MY_SERVICE_TOKEN", secret)

    def handler(request: Any) -> Any:
        return http.Response(500, json={"error": {"message": f"upstream said {secret} is expired"}})

    instrument()
    with pytest.raises(openai.InternalServerError):
        chat(openai_client(handler))
    description = span_status(telemetry)
    assert secret not in description and "is expired" in description


# -- redact() itself -------------------------------------------------------------------------------
@pytest.mark.parametrize("secret", [
    "sk-proj-Q7fVb2LmX9tR4sKd8NwP3yHc", "sk-Q7fVb2LmX9tR4sKd8NwP", "sk-ant-api03-Zr8Tq2Wm5Xn1",
    "gsk_Q7fVb2LmX9tR4sKd8NwP3yHc", "AIzaSyQ7fVb2LmX9tR4sKd8NwP3yHc0a1b2c3d", "AKIAQ7FVB2LMX9TR4SKD",
    "xai-Q7fVb2LmX9tR4sKd8NwP3yHc",
])
@pytest.mark.parametrize("template", ["key {} rejected", "{}", "(\"{}\")", "url?k={}&x=1", "{}."])
def test_key_shapes_are_removed(secret, template):
    text = redact(template.format(secret))
    assert secret not in text and REDACTED in text
    assert secret[:-4] not in text  # removed whole, not just its tail


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abc.DEF-123_ghi", "Authorization: Bearer [REDACTED]"),
    ("proxy said basic dXNlcjpwYXNzd29yZA==", "proxy said basic [REDACTED]"),
    ("https://x.test/v1?api_key=0123456789abcdefghij&y=2", "https://x.test/v1?api_key=[REDACTED]&y=2"),
    ("key=0123456789abcdefghij", "key=[REDACTED]"),
    ('x-api-key: "0123456789abcdefghij"', 'x-api-key: "[REDACTED]"'),
    ("access_token: 0123456789abcdefghij", "access_token: [REDACTED]"),
])
def test_key_contexts_keep_their_names(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "max_tokens: 4096 is more than the model allows",
    "The model `gpt-4o-mini-2024-07-18` does not exist or you do not have access to it.",
    "sk-learn is not a key; neither is task-1234",
    "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000",
    "monkey=banana, key=short",
    "",
])
def test_ordinary_messages_are_unchanged(text):
    assert redact(text) == text


def test_given_secrets_and_env_values(monkeypatch):
    monkeypatch.setenv("ACME_API_KEY", "plain-looking-value-42")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY")
    monkeypatch.setenv("FEATURE_TOKEN", "on")  # too short to be a secret: "on" stays in words
    monkeypatch.setenv("ACME_URL", "plain-url-value-99")  # not a secret name
    text = "a plain-looking-value-42 b wJalrXUtnFEMI/K7MDENG/bPxRfiCY c mine-0123 d plain-url-value-99 on"
    assert redact(text, ["mine-0123", "x"]) == \
        f"a {REDACTED} b {REDACTED} c {REDACTED} d plain-url-value-99 on"


def test_request_secrets_from_the_failed_request():
    request = httpx2.Request("POST", "https://api.test/v1", headers={"Authorization": "Bearer gw-0123456789",
                                                                     "x-api-key": "kk-9876543210"})

    class Failure(Exception):
        pass

    error = Failure("denied gw-0123456789 and kk-9876543210")
    error.request = request  # type: ignore[attr-defined]
    assert set(request_secrets(error)) >= {"gw-0123456789", "kk-9876543210"}
    assert error_text(error) == f"denied {REDACTED} and {REDACTED}"
    assert request_secrets(ValueError("no request")) == []


def test_error_text_never_raises():
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    assert error_text(Broken()) == "Broken"


# -- strict JSON statistics ------------------------------------------------------------------------
def test_zero_limit_budget_statistics_are_strict_json(instrument, telemetry):
    runtime = instrument()
    otel_tokens.set_budget("free", limit_usd=0.0)
    with otel_tokens.agent("free"):
        chat(openai_client(chat_ok))

    stats = otel_tokens.get_statistics()
    json.dumps(stats, allow_nan=False)
    budget = stats["budgets"]["free"]
    assert budget["status"] == "exceeded" and budget["utilization"] is None and budget["spent_usd"] > 0
    assert math.isfinite(stats["total_cost_usd"]) and stats["total_calls"] == 1
    for fmt in ("json", "csv", "text", "markdown"):
        text = otel_tokens.report(fmt)
        if fmt == "json":
            json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON report"))
        assert "inf" not in text.lower().split() and "nan" not in text.lower().split()
    assert runtime.budgets.status()["free"]["utilization"] == math.inf  # the budget itself still knows


def test_statistics_carry_no_float_noise(instrument, telemetry):
    instrument()
    # 1187 input tokens at $2.50/M and 43 output at $10/M: $0.0033975 a call; eight of them add up, in
    # floats, to 0.027180000000000003.
    otel_tokens.set_price("gpt-4o-mini", input=2.5, output=10.0)
    client = openai_client(chat_ok)
    for _ in range(8):
        chat(client)

    raw = 0.0
    for _ in range(8):
        raw += 1187 * 2.5 / 1e6 + 43 * 10.0 / 1e6
    assert repr(raw) == "0.027180000000000003"
    stats = otel_tokens.get_statistics()
    assert repr(stats["total_cost_usd"]) == "0.02718" and abs(stats["total_cost_usd"] - raw) < 1e-12
    assert repr(stats["by_model"]["gpt-4o-mini-2024-07-18"]["cost_usd"]) == "0.02718"
    assert repr(stats["by_agent"]["(none)"]["cost_usd"]) == "0.02718"
    assert_strict(stats)
    report = json.loads(otel_tokens.report("json"))
    assert report["summary"]["cost_usd"] == 0.02718
    assert "\nall," not in otel_tokens.report("csv") and ",0.02718," in otel_tokens.report("csv")
    assert "$0.02718" in otel_tokens.report("text")
    (span, *_rest) = telemetry.llm_spans()
    assert span.attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(0.0033975, abs=1e-15)


def test_an_internal_error_logged_while_an_sdk_error_is_handled_shows_no_key(instrument, telemetry, caplog,
                                                                             clean_env):
    """Our own error during the SDK error's handling is logged with that error as its context."""
    clean_env.setenv("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "0")  # as users run: logged, not raised

    def broken_sink(record: Any) -> None:
        raise RuntimeError(f"sink failed for a call to {record.request.model}")

    runtime = instrument()
    runtime.recorder._sinks = (broken_sink,)
    with caplog.at_level(logging.ERROR, logger="otel_tokens"), pytest.raises(openai.AuthenticationError):
        chat(openai_client(echoing_401, api_key=GATEWAY_KEY))

    assert "internal error while writing a call record" in caplog.text
    assert "Incorrect API key provided" in caplog.text  # the context is still there to debug with
    assert GATEWAY_KEY not in caplog.text
    assert runtime.statistics()["total_calls"] == 1


def test_log_lines_are_redacted(caplog):
    logger = logging.getLogger("otel_tokens")
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        logger.warning("provider said %s", f"bad key {OPENAI_KEY}")
    assert OPENAI_KEY not in caplog.text and f"bad key {REDACTED}" in caplog.text


EXIT_APP = """
import openai, otel_tokens
from otel_tokens._internal.commands.fake_server import FakeLLMServer

otel_tokens.instrument()
with FakeLLMServer() as server:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="fake", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
print("done")
"""


def test_report_and_log_of_a_real_process_at_exit(tmp_path):
    """The whole path as a user runs it: env settings, a call, process exit writes the report."""
    import subprocess
    import sys

    report, log = tmp_path / "report.txt", tmp_path / "usage.jsonl"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
           "OTEL_TOKENS_REPORT": str(report), "OTEL_TOKENS_LOG": str(log),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-c", EXIT_APP], capture_output=True, text=True, timeout=120,
                            env=env, cwd=tmp_path)

    assert result.returncode == 0 and result.stdout == "done\n", result.stderr
    assert "Traceback" not in result.stderr
    assert stat.S_IMODE(report.stat().st_mode) == 0o600 and stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "Calls          1" in report.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt", "usage.jsonl"]
    (line,) = read_usage_log(log)[0]
    assert line["input_tokens"] > 0 and line["cost_usd"] > 0

"""The live page answers only its own names and, with a token, only requests that carry it: real HTTP
requests to the real server with crafted Host headers, the token flows, the command line, and the
page in headless Chromium (a rebound DNS name is refused; a page opened with its token keeps updating)."""

from __future__ import annotations

import http.client
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import otel_tokens
from otel_tokens._internal.base.settings import OTEL_TOKENS_SERVE_TOKEN
from otel_tokens._internal.outputs.report import stats_from_usage_lines
from otel_tokens._internal.outputs.serve import LiveServer, serve_usage_log
from tests import browser as browser_module
from tests.browser import Browser, chromium_binary
from tests.test_analytics import LOG, RatesBook

REPO = Path(__file__).resolve().parent.parent
TOKEN = "tok-3f9a1c2e-SECRET"
needs_chromium = pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed")


def empty() -> tuple[dict, RatesBook]:
    """The statistics of an empty usage log."""
    return stats_from_usage_lines([]), RatesBook()


def request(port: int, path: str = "/api/statistics", host: str | None = "127.0.0.1", method: str = "GET",
            headers: dict[str, str] | None = None, address: str = "127.0.0.1") -> tuple[int, dict[str, str], str]:
    """One request to address:port with this Host header (None: no Host header at all)."""
    connection = http.client.HTTPConnection(address, port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode("utf-8")
    finally:
        connection.close()


@pytest.fixture
def no_env_token(monkeypatch):
    monkeypatch.delenv(OTEL_TOKENS_SERVE_TOKEN, raising=False)


@pytest.fixture
def server(no_env_token):
    with LiveServer(empty, port=0) as live:
        yield live


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.0.0.1:{port}", "localhost", "localhost:{port}", "LOCALHOST:{port}", "127.8.9.10:{port}",
    "[::1]", "[::1]:{port}",
])
def test_loopback_host_names_are_answered(server, host):
    status, headers, body = request(server.port, host=host.format(port=server.port))
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert "total_calls" in json.loads(body)


@pytest.mark.parametrize("host", [
    "attacker.example", "attacker.example:{port}", "127.0.0.1.attacker.example:{port}", "localhost.attacker.example",
    "127.0.0.1:{other}", "localhost:{other}", "[::1]:{other}", "0.0.0.0:{port}", "10.0.0.1:{port}", "[::2]:{port}",
    "::1", "[::1]x", "", None,
])
def test_other_host_names_get_403_with_a_small_plain_body(server, host):
    host = None if host is None else host.format(port=server.port, other=server.port + 1)
    for path in ("/", "/api/statistics", "/api/report?format=json", "/nope"):
        status, headers, body = request(server.port, path, host=host)
        assert status == 403, (host, path)
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert body.startswith("forbidden:") and len(body) < 200
        assert "total_calls" not in body
    assert request(server.port, method="POST", host=host)[0] == 403


def test_the_bound_address_is_a_name_too(no_env_token):
    with LiveServer(empty, host="127.0.0.2", port=0) as live:
        assert request(live.port, host=f"127.0.0.2:{live.port}", address="127.0.0.2")[0] == 200
        assert request(live.port, host=f"localhost:{live.port}", address="127.0.0.2")[0] == 200
        assert request(live.port, host="attacker.example", address="127.0.0.2")[0] == 403
    with LiveServer(empty, host="localhost", port=0) as live:
        assert live.url == f"http://localhost:{live.port}/"
        assert request(live.port, host=f"localhost:{live.port}")[0] == 200
        assert request(live.port, host=f"attacker.example:{live.port}")[0] == 403


def test_a_token_is_required_as_query_or_bearer(no_env_token):
    with LiveServer(empty, port=0, token=TOKEN) as live:
        assert live.page_url == f"{live.url}?token={TOKEN}"
        assert TOKEN not in repr(live) and live.url.endswith(f":{live.port}/")
        for path, headers in (("/api/statistics", None), ("/api/statistics?token=wrong", None),
                              (f"/api/statistics?token={TOKEN}x", None), ("/api/statistics?token=", None),
                              ("/api/statistics", {"Authorization": "Bearer wrong"}),
                              ("/api/statistics", {"Authorization": f"Basic {TOKEN}"}),
                              # A wrong bearer is not rescued by a right query parameter.
                              (f"/api/statistics?token={TOKEN}", {"Authorization": "Bearer wrong"})):
            status, answer_headers, body = request(live.port, path, headers=headers)
            assert status == 401, (path, headers)
            assert answer_headers["WWW-Authenticate"] == "Bearer"
            assert body.startswith("a token is required") and TOKEN not in body
        assert request(live.port, f"/api/statistics?token={TOKEN}")[0] == 200
        assert request(live.port, "/api/statistics", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert request(live.port, f"/api/report?format=json&token={TOKEN}")[0] == 200
        status, headers, page = request(live.port, urlsplit(live.page_url).path + "?" + urlsplit(live.page_url).query)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert request(live.port, "/", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert request(live.port, f"/?token={TOKEN}", method="POST")[0] == 405
        assert request(live.port, "/", method="POST")[0] == 401
        # The Host check comes first: the right token from a foreign name is still refused.
        assert request(live.port, f"/api/statistics?token={TOKEN}", host="attacker.example")[0] == 403


def test_the_token_comes_from_the_environment_and_the_argument_wins(monkeypatch):
    monkeypatch.setenv(OTEL_TOKENS_SERVE_TOKEN, f"  {TOKEN}  ")
    with LiveServer(empty, port=0) as live:
        assert live.page_url.endswith(f"?token={TOKEN}")
        assert request(live.port)[0] == 401
        assert request(live.port, f"/api/statistics?token={TOKEN}")[0] == 200
    with LiveServer(empty, port=0, token="from-code") as live:
        assert request(live.port, f"/api/statistics?token={TOKEN}")[0] == 401
        assert request(live.port, "/api/statistics?token=from-code")[0] == 200
    monkeypatch.setenv(OTEL_TOKENS_SERVE_TOKEN, "")
    with LiveServer(empty, port=0) as live:
        assert live.page_url == live.url and request(live.port)[0] == 200


@pytest.mark.parametrize("bad", ["", "   ", "two words", "tökén", "line\nbreak", 42, b"bytes"])
def test_a_bad_token_is_a_value_error_that_does_not_show_it(no_env_token, bad):
    with pytest.raises(ValueError, match="^token must be") as raised:
        LiveServer(empty, port=0, token=bad)
    if isinstance(bad, str) and bad.strip():
        assert bad not in str(raised.value)


def test_a_bad_token_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv(OTEL_TOKENS_SERVE_TOKEN, "not ok")
    with pytest.raises(ValueError, match=f"^{OTEL_TOKENS_SERVE_TOKEN} must be printable ASCII") as raised:
        LiveServer(empty, port=0)
    assert "not ok" not in str(raised.value)


def test_the_token_is_never_logged(no_env_token, caplog):
    caplog.set_level(logging.DEBUG, logger="otel_tokens")
    with LiveServer(empty, port=0, token=TOKEN) as live:
        for path in (f"/api/statistics?token={TOKEN}", f"/?format=x&token={TOKEN}&by=agent", "/?token=guess"):
            request(live.port, path)
        request(live.port, headers={"Authorization": f"Bearer {TOKEN}"})
        request(live.port, f"/api/statistics?token={TOKEN}", host="attacker.example")
    assert "token=***" in caplog.text and "/api/statistics" in caplog.text
    assert TOKEN not in caplog.text and "guess" not in caplog.text


def test_a_non_loopback_address_warns_and_skips_the_host_check(no_env_token, caplog):
    caplog.set_level(logging.WARNING, logger="otel_tokens")
    with LiveServer(empty, host="0.0.0.0", port=0, token=TOKEN) as live:
        # Reached by any name from other machines: the token is the guard there.
        assert request(live.port, f"/api/statistics?token={TOKEN}", host="stats.internal.example")[0] == 200
        assert request(live.port, host="stats.internal.example")[0] == 401
    warning, = (record for record in caplog.records if record.levelno == logging.WARNING)
    assert warning.getMessage() == f"the live page on 0.0.0.0:{live.port} is reachable from other machines"
    caplog.clear()
    with LiveServer(empty, host="0.0.0.0", port=0) as live:
        pass
    assert caplog.records[-1].getMessage().endswith(f"; require a token with token= or {OTEL_TOKENS_SERVE_TOKEN}")
    assert TOKEN not in caplog.text
    caplog.clear()
    with LiveServer(empty, port=0, token=TOKEN):
        pass
    assert not caplog.records  # loopback: nothing to warn about


def test_serve_passes_the_token(instrumented):
    with otel_tokens.serve(port=0, token=TOKEN) as live:
        assert request(live.port)[0] == 401
        assert request(live.port, f"/api/statistics?token={TOKEN}")[0] == 200
        assert live.page_url.endswith(f"?token={TOKEN}")


# -- the command ---------------------------------------------------------------------------------------
def serve_command(tmp_path: Path, *flags: str, env: dict[str, str] | None = None,
                  **popen: Any) -> tuple[subprocess.Popen, str]:
    log = tmp_path / "usage.jsonl"
    log.write_text("".join(json.dumps(row) + "\n" for row in LOG))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_TOKENS_")}
    environment.update(env or {}, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "otel_tokens", "serve", str(log), "--port", "0", *flags],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, **popen)
    line = process.stderr.readline()
    assert " on http://127.0.0.1:" in line, line + process.stderr.read()
    return process, line.split(" on ", 1)[1].split()[0]


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    assert process.wait(timeout=30) == 0
    return process.stderr.read()


@pytest.mark.parametrize("flags, env", [
    (("--token", TOKEN), {}),
    ((), {OTEL_TOKENS_SERVE_TOKEN: TOKEN}),
    (("--token", TOKEN), {OTEL_TOKENS_SERVE_TOKEN: "the-flag-wins"}),
    (("--new-token",), {}),
])
def test_the_command_prints_the_url_with_its_token(tmp_path, flags, env):
    process, url = serve_command(tmp_path, *flags, env=env)
    try:
        parts = urlsplit(url)
        token = parts.query.removeprefix("token=")
        assert parts.path == "/" and parts.query.startswith("token=") and len(token) >= 16
        if "--new-token" not in flags:
            assert token == TOKEN
        assert request(parts.port, f"/?{parts.query}")[0] == 200
        status, _, body = request(parts.port, f"/api/statistics?{parts.query}")
        assert status == 200 and json.loads(body)["total_calls"] == len(LOG)
        assert request(parts.port, "/api/statistics")[0] == 401
        assert request(parts.port, f"/api/statistics?{parts.query}", host="attacker.example")[0] == 403
    finally:
        assert "Traceback" not in stop(process)


def test_the_command_without_a_token_answers_loopback_names_only(tmp_path):
    process, url = serve_command(tmp_path)
    try:
        port = urlsplit(url).port
        assert url == f"http://127.0.0.1:{port}/"
        assert request(port, host=f"localhost:{port}")[0] == 200
        assert request(port, host="attacker.example")[0] == 403
    finally:
        stop(process)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_the_command_stops_cleanly_on_a_signal_even_started_in_the_background(tmp_path, signame):
    import signal

    # A background job of a script starts with SIGINT ignored; Ctrl-C and kill -INT must still stop it.
    process, url = serve_command(tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        port = urlsplit(url).port
        assert request(port)[0] == 200
        process.send_signal(getattr(signal, signame))
        assert process.wait(timeout=30) == 0
        assert process.stderr.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    with pytest.raises(OSError):
        request(port)


def test_the_command_rejects_a_bad_token_and_both_token_flags(tmp_path, capsys, monkeypatch):
    from otel_tokens._internal.commands.cli import main

    monkeypatch.delenv(OTEL_TOKENS_SERVE_TOKEN, raising=False)
    log = tmp_path / "usage.jsonl"
    log.write_text("")
    assert main(["serve", str(log), "--port", "0", "--token", "has space"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("otel-tokens: error: token must be printable ASCII") and "has space" not in err
    assert main(["serve", str(log), "--token", TOKEN, "--new-token"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


# -- in the browser ------------------------------------------------------------------------------------
@pytest.fixture
def rebinding_browser(tmp_path, monkeypatch):
    """Chromium that resolves rebind.example to 127.0.0.1, as a DNS rebinding attack makes it do."""
    rules = "--host-resolver-rules=MAP rebind.example 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"
    flags = tuple(rules if flag.startswith("--host-resolver-rules=") else flag for flag in browser_module.FLAGS)
    monkeypatch.setattr(browser_module, "FLAGS", flags)
    chromium = Browser(tmp_path / "chromium-profile")
    yield chromium
    chromium.close()


@needs_chromium
def test_a_rebound_name_gets_403_in_the_browser(instrumented, rebinding_browser):
    otel_tokens.record_usage(model="gpt-4o", provider="openai", input_tokens=10, output_tokens=5, agent="secret-agent")
    with otel_tokens.serve(port=0) as live:
        page = rebinding_browser.open(f"http://rebind.example:{live.port}/")
        try:
            text = page.evaluate("document.body.innerText")
            assert text.startswith("forbidden:") and "secret-agent" not in text
            # What the attacker's script would do next, from the rebound origin.
            assert page.evaluate("fetch('/api/statistics').then(r => r.status)") == 403
        finally:
            page.close()
        page = rebinding_browser.open(live.url)
        try:
            assert page.evaluate("fetch('/api/statistics').then(r => r.json()).then(s => s.total_calls)") == 1
        finally:
            page.close()


@needs_chromium
def test_the_page_opened_with_its_token_keeps_updating(instrumented, tmp_path):
    otel_tokens.record_usage(model="gpt-4o", provider="openai", input_tokens=10, output_tokens=5, agent="planner")
    chromium = Browser(tmp_path / "chromium-profile")
    try:
        with otel_tokens.serve(port=0, interval_s=0.2, token=TOKEN) as live:
            page = chromium.open(live.page_url)
            try:
                assert page.evaluate("window.otelTokens.stats.total_calls") == 1
                updates = page.evaluate("window.otelTokens.updates")
                for _ in range(3):
                    otel_tokens.record_usage(model="gpt-4o-mini", provider="openai", input_tokens=10,
                                             output_tokens=5, agent="writer")
                # Only fetches that carry the token get the statistics: the page passes it on.
                page.wait_until("window.otelTokens.stats.total_calls === 4", timeout=20)
                assert page.evaluate("window.otelTokens.updates") > updates
                assert page.errors() == []
            finally:
                page.close()
            page = chromium.open(live.url)  # without the token: nothing but the 401 text
            try:
                assert page.evaluate("document.body.innerText").startswith("a token is required")
            finally:
                page.close()
    finally:
        chromium.close()


def test_serving_a_usage_log_with_a_token(tmp_path, no_env_token):
    path = tmp_path / "usage.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in LOG))
    with serve_usage_log(str(path), port=0, price_book=RatesBook(), token=TOKEN) as live:
        assert request(live.port)[0] == 401
        assert json.loads(request(live.port, f"/api/statistics?token={TOKEN}")[2])["total_calls"] == len(LOG)

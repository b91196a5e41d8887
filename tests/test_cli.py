"""The otel-tokens command on real usage-log files: report formats, errors, demo dispatch, prices."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from otel_tokens._internal.accounting.usage_log import UsageLogWriter
from otel_tokens._internal.base.records import CallRecord, Labels, Request, Result, Usage
from otel_tokens._internal.commands import cli

REPO = Path(__file__).resolve().parents[1]
T0 = 1_794_985_600.0  # 2026-11-18T07:06:40Z
HAS_PRICING = importlib.util.find_spec("otel_tokens._internal.pricing.book") is not None


def record(agent, model, provider, input_tokens, output_tokens, cost, end):
    return CallRecord(
        request=Request(provider=provider, operation="chat", model=model),
        result=Result(usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens)),
        labels=Labels(agent=agent),
        duration_s=1.0,
        end_time_unix=end,
        cost_usd=cost,
        cost_source="local",
    )


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "usage.jsonl"
    with UsageLogWriter(path) as writer:
        writer.write(record("researcher", "gpt-4o-mini", "openai", 12000, 3000, 0.0036, T0 + 30))
        writer.write(record("researcher", "gpt-4o-mini", "openai", 8000, 1000, 0.0018, T0 + 60))
        writer.write(record("writer", "claude-haiku-4-5", "anthropic", 4000, 2000, 0.014, T0 + 90))
    return path


@pytest.fixture
def corrupted_log(log_path):
    with open(log_path, "ab") as handle:
        handle.write(b'{"time": "2026-11-18T07:09:00Z", "provider": "openai", "oper\n')
        handle.write(b"\x00\x00\x00\n")
    return log_path


def run(capsys, *argv):
    code = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- report ----------------------------------------------------------------------------------------
def test_text_report(capsys, log_path):
    code, out, err = run(capsys, "report", log_path)

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "otel-tokens usage report"
    assert "Calls          3" in lines
    assert "Cost           $0.0194" in lines
    assert [line.split()[0] for line in lines[lines.index("By agent") + 4: lines.index("By agent") + 6]] == [
        "writer", "researcher"]


def test_corrupted_lines_are_counted_on_stderr(capsys, corrupted_log):
    code, out, err = run(capsys, "report", corrupted_log)

    assert code == 0
    assert err == f"otel-tokens: skipped 2 corrupted line(s) in {corrupted_log} (lines 4, 5)\n"
    assert "Calls          3" in out.splitlines()


def test_json_format(capsys, log_path):
    code, out, _err = run(capsys, "report", log_path, "--format", "json", "--by", "agent,provider")

    data = json.loads(out)
    assert code == 0
    assert data["summary"]["calls"] == 3
    assert data["summary"]["total_tokens"] == 30000
    assert list(data["groups"]) == ["agent", "provider"]
    assert {row["name"]: row["calls"] for row in data["groups"]["agent"]} == {"researcher": 2, "writer": 1}


def test_csv_format(capsys, corrupted_log):
    code, out, _err = run(capsys, "report", corrupted_log, "--format", "csv", "--by", "model")

    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0
    assert [(r["section"], r["name"], r["calls"], r["total_tokens"]) for r in rows] == [
        ("total", "all", "3", "30000"),
        ("model", "claude-haiku-4-5", "1", "6000"),
        ("model", "gpt-4o-mini", "2", "24000"),
    ]
    assert rows[0]["cost_usd"] == "0.0194"


def test_markdown_format_has_tables(capsys, log_path):
    code, out, _err = run(capsys, "report", log_path, "--format", "markdown")

    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "# otel-tokens usage report"
    tables = [i for i, line in enumerate(lines) if line.startswith("|:---|")]
    assert len(tables) >= 5  # summary, agent, model, provider, operation
    assert all(lines[i - 1].startswith("| ") and lines[i + 1].startswith("| ") for i in tables)


def test_output_file(capsys, log_path, tmp_path):
    target = tmp_path / "report.json"
    code, out, err = run(capsys, "report", log_path, "--format", "json", "--output", target)

    assert (code, out, err) == (0, "", "")
    assert json.loads(target.read_text(encoding="utf-8"))["summary"]["calls"] == 3


def test_output_to_a_bad_place_is_a_clear_error(capsys, log_path, tmp_path):
    code, _out, err = run(capsys, "report", log_path, "--output", tmp_path / "missing" / "report.txt")
    assert code == 2
    assert err.startswith("otel-tokens: error: cannot write ")
    assert "No such file or directory" in err


def test_budgets_flag(capsys, log_path):
    code, out, _err = run(capsys, "report", log_path, "--format", "json", "--budgets",
                          "researcher=0.005,writer=1.00:block")

    budgets = {b["agent"]: b for b in json.loads(out)["budgets"]}
    assert code == 0
    assert (budgets["researcher"]["status"], budgets["researcher"]["spent_usd"]) == ("exceeded", pytest.approx(0.0054))
    assert (budgets["writer"]["status"], budgets["writer"]["action"]) == ("ok", "block")


def test_bad_budgets_spec(capsys, log_path):
    code, _out, err = run(capsys, "report", log_path, "--budgets", "researcher")
    assert code == 2
    assert err.startswith("otel-tokens: error: --budgets: ")


def test_top_zero_hides_the_most_expensive_sections(capsys, log_path):
    _code, out, _err = run(capsys, "report", log_path, "--top", "0")
    assert "Most expensive" not in out


@pytest.mark.skipif(not HAS_PRICING, reason="otel_tokens._internal.pricing.book is not there yet")
def test_what_if_uses_the_price_book(capsys, log_path):
    from otel_tokens._internal.pricing.book import PriceBook

    code, out, _err = run(capsys, "report", log_path, "--format", "json", "--what-if", "gpt-4o-mini@openai",
                          "--what-if", "no-such-model-xyz")

    what_if = json.loads(out)["what_if"]
    book = PriceBook()
    expected = (2 * book.cost("openai", "gpt-4o-mini", Usage(input_tokens=10000, output_tokens=2000))
                + book.cost("openai", "gpt-4o-mini", Usage(input_tokens=4000, output_tokens=2000)))
    assert code == 0
    assert what_if[0]["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert what_if[0]["calls"] == 3
    assert what_if[1]["cost_usd"] is None
    assert what_if[1]["text"] == "no-such-model-xyz: no known price, cannot reprice."


def test_missing_file(capsys, tmp_path):
    code, out, err = run(capsys, "report", tmp_path / "absent.jsonl")
    assert (code, out) == (2, "")
    assert err == f"otel-tokens: error: usage log not found: {tmp_path / 'absent.jsonl'}\n"


def test_directory_instead_of_file(capsys, tmp_path):
    code, _out, err = run(capsys, "report", tmp_path)
    assert code == 2
    assert err.startswith("otel-tokens: error: cannot read the usage log ")


@pytest.mark.parametrize("argv", [
    ["report", "x.jsonl", "--by", "colour"],
    ["report", "x.jsonl", "--format", "yaml"],
    ["report", "x.jsonl", "--what-if", "gpt@"],
    ["report", "x.jsonl", "--top", "-1"],
    ["report"],
    [],
    ["frobnicate"],
])
def test_usage_errors_exit_2(capsys, argv):
    code, _out, err = run(capsys, *argv)
    assert code == 2
    assert err


def test_help_exits_0(capsys):
    code, out, _err = run(capsys, "--help")
    assert code == 0
    assert "report" in out and "demo" in out and "prices" in out


def test_python_dash_m(log_path):
    result = subprocess.run(
        [sys.executable, "-m", "otel_tokens", "report", str(log_path), "--format", "json"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["summary"]["calls"] == 3


def test_python_dash_m_missing_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "otel_tokens", "report", str(tmp_path / "none.jsonl")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2
    assert "usage log not found" in result.stderr


# -- demo ------------------------------------------------------------------------------------------
def test_demo_dispatches_parsed_flags(capsys, monkeypatch):
    seen = []
    fake = types.ModuleType(cli.DEMO_MODULE)
    fake.main = lambda args: seen.append(args) or 0
    monkeypatch.setitem(sys.modules, cli.DEMO_MODULE, fake)

    assert run(capsys, "demo")[0] == 0
    assert run(capsys, "demo", "--prometheus-port", "9464", "--otlp", "http://127.0.0.1:4318", "--loop",
               "--interval", "0.5", "--rounds", "7", "--service-name", "svc", "--format", "json")[0] == 0

    defaults, custom = seen
    assert (defaults.prometheus_port, defaults.otlp, defaults.loop, defaults.interval, defaults.rounds,
            defaults.service_name, defaults.format) == (None, None, False, 1.0, 3, "otel-tokens-demo", "text")
    assert (custom.prometheus_port, custom.otlp, custom.loop, custom.interval, custom.rounds,
            custom.service_name, custom.format) == (9464, "http://127.0.0.1:4318", True, 0.5, 7, "svc", "json")


def test_demo_exit_code_passes_through(capsys, monkeypatch):
    fake = types.ModuleType(cli.DEMO_MODULE)
    fake.main = lambda args: 3
    monkeypatch.setitem(sys.modules, cli.DEMO_MODULE, fake)
    assert run(capsys, "demo")[0] == 3


def test_demo_missing_module_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, cli.DEMO_MODULE, None)  # import raises ModuleNotFoundError
    code, _out, err = run(capsys, "demo")
    assert code == 2
    assert err == ("otel-tokens: error: the demo is not available in this installation "
                   "(otel_tokens._internal.commands.demo is missing)\n")


@pytest.mark.parametrize("argv", [
    ["demo", "--interval", "0"],
    ["demo", "--interval", "soon"],
    ["demo", "--rounds", "0"],
    ["demo", "--prometheus-port", "70000"],
    ["demo", "--format", "csv"],
])
def test_demo_flag_errors(capsys, monkeypatch, argv):
    monkeypatch.setitem(sys.modules, cli.DEMO_MODULE, None)
    code, _out, err = run(capsys, *argv)
    assert code == 2
    assert "error: argument" in err


# -- prices ----------------------------------------------------------------------------------------
class FakeRates:
    input = 3e-06
    output = 1.5e-05
    cache_read = 3e-07
    cache_write = 3.75e-06
    reasoning = None
    request = 0.005
    source = "override"
    tiers = (types.SimpleNamespace(above_input_tokens=200_000, input=6e-06, output=2.25e-05, cache_read=6e-07,
                                   cache_write=7.5e-06),)


class FakeBook:
    def __init__(self):
        self.asked = []

    def rates(self, provider, model):
        self.asked.append((provider, model))
        return FakeRates() if model == "known" else None

    def providers_for(self, model):
        return ("anthropic",) if model == "known" else ()

    def known_providers(self):
        return ("anthropic", "openai")


def test_prices_output(capsys, monkeypatch):
    book = FakeBook()
    monkeypatch.setattr(cli, "_price_book", lambda: book)
    code, out, _err = run(capsys, "prices", "known", "--provider", "anthropic")

    assert code == 0
    assert book.asked == [("anthropic", "known")]
    assert out.splitlines() == [
        "known (anthropic): USD per million tokens (source: override)",
        "  input        $3.00",
        "  cache read   $0.30",
        "  cache write  $3.75",
        "  output       $15.00",
        "  reasoning    billed as output",
        "  per request  $0.005",
        "  above 200,000 input tokens: input $6.00, cache read $0.60, cache write $7.50, output $22.50",
    ]


def test_prices_unknown_model(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_price_book", FakeBook)
    code, out, err = run(capsys, "prices", "unknown")
    assert (code, out, err) == (1, "", "otel-tokens: no known price for unknown\n")


@pytest.mark.skipif(not HAS_PRICING, reason="otel_tokens._internal.pricing.book is not there yet")
def test_prices_with_the_real_price_book(capsys):
    code, out, _err = run(capsys, "prices", "gpt-4o-mini", "--provider", "openai")
    assert code == 0
    assert out.splitlines()[0] == "gpt-4o-mini (openai): USD per million tokens (source: genai-prices)"
    assert out.splitlines()[1].split()[0] == "input"


# -- first-time user (issue 7) ---------------------------------------------------------------------
def real_rates(provider, model):
    from otel_tokens._internal.pricing.book import PriceBook

    rates = PriceBook().rates(provider, model)
    assert rates is not None
    return rates


@pytest.mark.parametrize(("model", "provider"), [
    ("text-embedding-3-small", "openai"),  # listed by openai and azure at the same price
    ("llama-3.1-8b-instant", "groq"),  # listed by groq alone; genai-prices cannot guess it from the name
    ("llama-3.3-70b-versatile", "groq"),
    ("claude-sonnet-4-6", "anthropic"),  # genai-prices' own guess from the name
    ("gpt-4o-mini", "openai"),
])
def test_prices_of_a_bare_name_one_provider_prices(capsys, model, provider):
    code, out, err = run(capsys, "prices", model)

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{model} ({provider}): USD per million tokens (source: genai-prices)"
    rates = real_rates(provider, model)
    from otel_tokens._internal.base.formatting import format_usd

    assert lines[1] == f"  input        {format_usd(rates.input * 1e6)}"
    assert lines[4] == f"  output       {format_usd(rates.output * 1e6)}"


def test_prices_says_which_other_providers_price_the_name_differently(capsys):
    code, out, _err = run(capsys, "prices", "mixtral-8x7b-32768")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "mixtral-8x7b-32768 (mistral): USD per million tokens (source: genai-prices)"
    assert "also priced differently by 1 other provider (choose with --provider):" in lines
    assert "  groq: input $0.24, output $0.24" in lines
    code, out, _err = run(capsys, "prices", "mixtral-8x7b-32768", "--provider", "groq")
    assert "also priced" not in out
    code, out, _err = run(capsys, "prices", "gpt-4o-mini")
    assert "also priced" not in out  # github-copilot lists it at $0: a subscription, not a price


def test_prices_of_an_ambiguous_name_names_the_providers(capsys):
    code, out, err = run(capsys, "prices", "deepseek/deepseek-v3.2")
    assert (code, out) == (2, "")
    assert err == ("otel-tokens: error: deepseek/deepseek-v3.2 is priced by several providers at different "
                   "rates (avian, openrouter); choose one with --provider\n")
    code, out, _err = run(capsys, "prices", "deepseek/deepseek-v3.2", "--provider", "openrouter")
    assert code == 0 and out.startswith("deepseek/deepseek-v3.2 (openrouter): ")


@pytest.mark.parametrize("argv", [
    ["prices", "gpt-4o", "--provider", "nonsense"],
    ["report", "LOG", "--what-if", "gpt-4o@nonsense"],
])
def test_an_unknown_provider_is_an_error_listing_the_known_ones(capsys, log_path, argv):
    code, out, err = run(capsys, *[str(log_path) if arg == "LOG" else arg for arg in argv])
    assert (code, out) == (2, "")
    assert err.startswith("otel-tokens: error: unknown provider 'nonsense'; known providers: ")
    known = err.split("known providers: ")[1].strip().split(", ")
    assert {"openai", "anthropic", "groq", "aws.bedrock", "x-ai", "ollama"} <= set(known)
    assert "gpt-4o" not in err  # no rates of another provider under the wrong name


def test_prices_for_a_known_provider_alias(capsys):
    code, out, _err = run(capsys, "prices", "claude-sonnet-4-6", "--provider", "aws.bedrock")
    assert code == 0 and out.startswith("claude-sonnet-4-6 (aws.bedrock): ")
    assert out.splitlines()[1] == "  input        $3.30"  # not anthropic's $3.00


def test_what_if_a_bare_name_one_provider_prices(capsys, log_path):
    code, out, err = run(capsys, "report", log_path, "--format", "json", "--what-if", "llama-3.3-70b-versatile")
    assert (code, err) == (0, "")
    (what_if,) = json.loads(out)["what_if"]
    rates = real_rates("groq", "llama-3.3-70b-versatile")
    # Three calls: (12000 + 8000) / 2 input and (3000 + 1000) / 2 output for gpt-4o-mini twice, then 4000/2000.
    expected = 2 * (10000 * rates.input + 2000 * rates.output) + (4000 * rates.input + 2000 * rates.output)
    assert what_if["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert what_if["calls"] == 3 and "no known price" not in what_if["text"]


def test_what_if_an_ambiguous_name_asks_for_a_provider(capsys, log_path):
    code, out, err = run(capsys, "report", log_path, "--what-if", "deepseek/deepseek-v3.2")
    assert (code, out) == (2, "")
    assert "(avian, openrouter); choose one with --what-if MODEL@PROVIDER" in err


def test_version(capsys):
    from otel_tokens.version import __version__

    code, out, _err = run(capsys, "--version")
    assert (code, out) == (0, f"otel-tokens {__version__}\n")


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_fake_server_serves_the_real_sdk_until_interrupted(signame):
    import signal

    import openai

    # As a background job of a script starts: SIGINT ignored, which Python then leaves alone.
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_tokens", "fake-server", "--port", "0"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        banner = [process.stdout.readline()]
        while not banner[-1].startswith("  what it received:") and banner[-1]:
            banner.append(process.stdout.readline())
        assert banner[0].startswith("fake OpenAI, Anthropic, Gemini and Groq APIs on http://127.0.0.1:"), banner
        base_url = next(line for line in banner if "OPENAI_BASE_URL=" in line).split("OPENAI_BASE_URL=")[1].split()[0]
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert any("ANTHROPIC_BASE_URL=" in line for line in banner)

        client = openai.OpenAI(base_url=base_url, api_key="fake", max_retries=0)
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert reply.usage.prompt_tokens > 0 and reply.choices[0].message.content

        process.send_signal(getattr(signal, signame))
        assert process.wait(timeout=30) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_fake_server_port_in_use_is_a_clear_error(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run(capsys, "fake-server", "--port", str(port))
    assert (code, out) == (2, "")
    assert err.startswith(f"otel-tokens: error: cannot listen on 127.0.0.1:{port}: ")

"""``otel-tokens demo`` as a user runs it: a subprocess with the real SDKs against the loopback fake
server, the report it prints, and the Prometheus endpoint of ``--loop``; and as on a bare install, with
some or all of the SDKs' imports refused."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("anthropic")
pytest.importorskip("google.genai")

REPO = Path(__file__).resolve().parent.parent
# Calls per round from the workflow's structure: the planner routes (1), is rate limited (1) and retries
# (1); the researcher makes 3 calls until its budget warns after round 2, then 1; the fact-checker 3
# (Gemini); the writer 2; the editor 1 until it is blocked from round 2 on (a blocked call is never
# sent, so it is not a call); the summarizer 1 (Groq).
PLANNER, RESEARCHER, RESEARCHER_ECONOMY, FACT_CHECKER, WRITER, EDITOR, SUMMARIZER = 3, 3, 1, 3, 2, 1, 1
EVERY_ROUND = PLANNER + FACT_CHECKER + WRITER + SUMMARIZER
THREE_ROUNDS = (EVERY_ROUND + RESEARCHER + EDITOR) + (EVERY_ROUND + RESEARCHER) + (
    EVERY_ROUND + RESEARCHER_ECONOMY)


def demo_env() -> dict[str, str]:
    """The test's environment without OTEL_* settings that would send the demo's telemetry elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    # Our internal errors fail the demo here, as in the rest of the suite.
    env["OTEL_TOKENS_RAISE_INTERNAL_ERRORS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_demo(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otel_tokens", "demo", *flags], capture_output=True,
                          text=True, timeout=120, env=demo_env(), cwd=REPO)


@pytest.fixture(scope="module")
def text_run() -> subprocess.CompletedProcess[str]:
    return run_demo("--rounds", "3")


def section(report: str, title: str) -> list[str]:
    """The rows of a text-report table (after its title, underline, header and rule)."""
    lines = report.splitlines()
    start = lines.index(title) + 4
    end = lines.index("", start)
    return lines[start:end]


def test_default_run_exits_cleanly_with_the_report(text_run: subprocess.CompletedProcess[str]) -> None:
    assert text_run.returncode == 0, text_run.stderr
    assert "Traceback" not in text_run.stderr
    report = text_run.stdout
    assert report.startswith("otel-tokens usage report\n")
    agents = {row.split()[0]: row.split() for row in section(report, "By agent")}
    assert {"planner", "researcher", "fact-checker", "writer", "editor", "summarizer"} <= set(agents)
    for agent in ("planner", "researcher", "fact-checker", "writer", "summarizer"):
        cost = agents[agent][8]
        assert cost.startswith("$") and cost != "$0.00", agents[agent]


def test_four_providers_through_their_sdks(text_run: subprocess.CompletedProcess[str]) -> None:
    providers = {row.split()[0]: row.split() for row in section(text_run.stdout, "By provider")}
    assert {"openai", "anthropic", "gcp.gemini", "groq"} <= set(providers)
    # Every round: fact-checker 3 calls on Gemini, summarizer 1 on Groq; all priced.
    assert int(providers["gcp.gemini"][1]) == 3 * FACT_CHECKER
    assert int(providers["groq"][1]) == 3 * SUMMARIZER
    assert providers["gcp.gemini"][10] == providers["groq"][10] == "0"  # unpriced
    models = {row.split()[0]: row.split() for row in section(text_run.stdout, "By model")}
    # Gemini's thoughts and implicit cache reads reach the report.
    assert int(models["gemini-2.5-flash"][6].replace(",", "")) > 0
    assert int(models["gemini-2.5-flash"][3].replace(",", "")) > 0


def test_report_shows_every_kind_of_token(text_run: subprocess.CompletedProcess[str]) -> None:
    tokens = re.search(r"^Tokens +[\d,]+ \(input [\d,]+, of which cache read ([\d,]+) and cache write "
                       r"([\d,]+); output [\d,]+, of which reasoning ([\d,]+)\)$", text_run.stdout, re.M)
    assert tokens, text_run.stdout
    assert all(int(count.replace(",", "")) > 0 for count in tokens.groups())


def test_budgets_warn_exceed_and_block(text_run: subprocess.CompletedProcess[str]) -> None:
    budgets = {row.split()[0]: row.split() for row in section(text_run.stdout, "Budgets")}
    # Agent, Limit, Spent, Used, Status, Window, Action, Blocked
    assert budgets["researcher"][4] == "warning"
    assert budgets["writer"][4] == "exceeded"
    assert budgets["editor"][6] == "block" and int(budgets["editor"][7]) >= 1
    assert budgets["planner"][4] == "ok"
    err = text_run.stderr
    assert "WARNING otel_tokens: agent 'researcher' has spent" in err
    assert "ERROR otel_tokens: agent 'writer' has exceeded" in err
    assert re.search(r"^editor blocked: budget for agent 'editor' would be exceeded", err, re.M)


def test_progress_rate_limit_and_unpriced_model(text_run: subprocess.CompletedProcess[str]) -> None:
    err = text_run.stderr
    assert [int(n) for n in re.findall(r"^round (\d+): \d+ calls, \$[\d.]+ so far", err, re.M)] == [1, 2, 3]
    assert "planner: gpt-4o-mini answered 429 (rate limit); retrying once" in err
    assert "no price known for model 'acme-llm-7b'" in err
    models = {row.split()[0]: row for row in section(text_run.stdout, "By model")}
    assert " n/a " in models["acme-llm-7b"]
    assert re.search(r"^Calls +\d+ \(3 errors, 4 unpriced\)$", text_run.stdout, re.M)
    assert re.search(r"^The same usage on gpt-4o-mini would cost \$", text_run.stdout, re.M)


def test_json_report_counts_every_call_the_server_answered() -> None:
    result = run_demo("--rounds", "3", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # progress goes to stderr, so stdout is the report alone
    answered = re.search(r"^the fake server answered (\d+) requests; otel-tokens counted (\d+) calls$",
                         result.stderr, re.M)
    assert answered, result.stderr
    assert int(answered[1]) == int(answered[2]) == data["summary"]["calls"] == THREE_ROUNDS
    assert data["summary"]["cost_usd"] > 0
    assert data["summary"]["errors"] == 3
    statuses = {b["agent"]: (b["status"], b["blocked_calls"]) for b in data["budgets"]}
    assert statuses == {"planner": ("ok", 0), "researcher": ("warning", 0), "writer": ("exceeded", 0),
                        "editor": ("ok", 2), "workflow:research-report": ("ok", 0), "total:all": ("ok", 0)}
    top_pairs = {(row["agent"], row["model"]) for row in data["top_agent_models"]}
    assert ("writer", "claude-sonnet-4-6") in top_pairs
    assert data["top_calls"] and data["what_if"][0]["model"] == "gpt-4o-mini"


# -- a bare install: SDKs missing ---------------------------------------------------------------------
# Runs the command in a Python whose import system refuses these modules, as if they were not installed.
WITHOUT_SDKS = """
import sys
blocked = sys.argv[1].split(",")

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if any(name == module or name.startswith(module + ".") for module in blocked):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NotInstalled())
from otel_tokens._internal.commands.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_demo_without(blocked: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_SDKS, blocked, "demo", *flags], capture_output=True,
                          text=True, timeout=120, env=demo_env(), cwd=REPO)


def test_without_any_sdk_it_names_the_extra_in_one_line_and_exits_2() -> None:
    # google.genai refused while google (protobuf's namespace) imports: the "cannot import name 'genai'" case.
    result = run_demo_without("openai,anthropic,google.genai,groq")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == ("otel-tokens demo: none of the SDKs it drives is installed (openai, anthropic, "
                             "google-genai, groq); install them with: pip install 'otel-tokens[demo]'\n")


def providers_of(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    answered = re.search(r"^the fake server answered (\d+) requests; otel-tokens counted (\d+) calls$",
                         result.stderr, re.M)
    assert answered and answered[1] == answered[2], result.stderr
    return {row["name"]: row["calls"] for row in json.loads(result.stdout)["groups"]["provider"]}


# Calls of three rounds per provider. OpenAI alone: the planner's 3, the researcher's Responses stream and
# embeddings (its budget never warns without Claude), the writer's gpt-4o stream, and the editor's call in
# round 1 only (blocked after); Anthropic: the researcher's and the writer's call.
OPENAI_ALONE, ANTHROPIC, GEMINI, GROQ = 3 * (PLANNER + 2 + 1) + EDITOR, 3 * 2, 3 * FACT_CHECKER, 3 * SUMMARIZER


@pytest.mark.parametrize("blocked, skipped, extras, running", [
    ("anthropic,google.genai", "Anthropic, Gemini (not installed: anthropic, google-genai)", "anthropic,gemini",
     {"openai": OPENAI_ALONE, "groq": GROQ}),
    # Without the openai SDK, Groq still runs on its own SDK.
    ("openai", "OpenAI (not installed: openai)", "openai", {"anthropic": ANTHROPIC, "gcp.gemini": GEMINI,
                                                            "groq": GROQ}),
    # Without both, Groq has no SDK left to run on.
    ("openai,groq", "OpenAI, Groq (not installed: openai, groq)", "openai,groq",
     {"anthropic": ANTHROPIC, "gcp.gemini": GEMINI}),
])
def test_missing_sdks_skip_their_providers_and_the_rest_run(blocked, skipped, extras, running) -> None:
    result = run_demo_without(blocked, "--rounds", "3", "--format", "json")
    assert providers_of(result) == running
    assert result.stderr.startswith(
        f"otel-tokens demo: skipping {skipped}; pip install 'otel-tokens[{extras}]' adds them, "
        "pip install 'otel-tokens[demo]' everything the demo uses\n")


def test_with_every_sdk_nothing_is_skipped(text_run: subprocess.CompletedProcess[str]) -> None:
    assert "skipping" not in text_run.stderr


def test_extras_are_named_for_what_they_hold() -> None:
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    providers = {name: specs for name, specs in extras.items()
                 if name not in ("all", "demo", "test", "litellm", "crewai")}
    assert sorted(extras["all"]) == sorted(spec for specs in providers.values() for spec in specs)
    assert {"openai", "anthropic", "gemini", "groq", "bedrock", "mistral", "cohere", "ollama", "prometheus",
            "redis", "google-generativeai"} == set(providers)
    sdks = {spec.split(">")[0] for spec in extras["demo"]}
    assert sdks == {"openai", "anthropic", "google-genai", "groq", "opentelemetry-exporter-prometheus"}
    assert not any(spec.startswith(("litellm", "crewai")) for spec in extras["all"])


# -- --loop with --prometheus-port ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(url: str) -> dict[tuple[str, str], float]:
    """{(metric name, agent): value} of the samples that carry gen_ai_agent_name (summed per pair)."""
    samples: dict[tuple[str, str], float] = {}
    with urllib.request.urlopen(url, timeout=2) as response:
        text = response.read().decode("utf-8")
    for line in text.splitlines():
        match = re.match(r'^([a-zA-Z_:][\w:]*)\{(.*)\} (\S+)$', line)
        agent = re.search(r'gen_ai_agent_name="([^"]*)"', match[2]) if match else None
        if agent:
            key = (match[1], agent[1])
            samples[key] = samples.get(key, 0.0) + float(match[3])
    return samples


def test_loop_serves_prometheus_metrics_and_stops_cleanly_on_sigterm() -> None:
    pytest.importorskip("opentelemetry.exporter.prometheus")
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "otel_tokens", "demo", "--loop", "--interval", "0.2",
         "--prometheus-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=demo_env(), cwd=REPO)
    samples: dict[tuple[str, str], float] = {}
    try:
        deadline = time.monotonic() + 90  # generous: a loaded machine runs a round slowly
        while time.monotonic() < deadline and demo.poll() is None:
            try:
                samples = scrape(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                samples = {}
            utilization = {agent: value for (name, agent), value in samples.items()
                           if name == "otel_tokens_budget_utilization"}
            if 0.9 <= utilization.get("researcher", 0) < 1.0 and utilization.get("writer", 0) >= 1.0:
                break
            time.sleep(0.25)
        demo.send_signal(signal.SIGTERM)
        out, err = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0, err
    assert "Traceback" not in err
    assert f"Prometheus metrics: http://127.0.0.1:{port}/metrics" in err

    utilization = {agent: value for (name, agent), value in samples.items()
                   if name == "otel_tokens_budget_utilization"}
    assert 0.9 <= utilization["researcher"] < 1.0, utilization
    assert utilization["writer"] >= 1.0, utilization
    assert utilization["planner"] < 0.9
    spend = {agent for (name, agent) in samples if name == "otel_tokens_cost_USD_total"}
    assert {"planner", "researcher", "writer", "editor"} <= spend
    # Time to first chunk from the streams.
    assert any(name.startswith("gen_ai_client_operation_time_to_first_chunk_seconds") for name, _ in samples)

    # SIGTERM ends the loop after its round: the report is printed and the budgets kept their states.
    assert out.startswith("otel-tokens usage report\n")
    budgets = {row.split()[0]: row.split()[4] for row in section(out, "Budgets")}
    assert (budgets["researcher"], budgets["writer"]) == ("warning", "exceeded")

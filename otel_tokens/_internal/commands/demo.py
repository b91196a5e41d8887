"""``otel-tokens demo``: a small multi-agent workflow against a loopback fake LLM, instrumented.

No API keys and no network: :class:`FakeLLMServer` answers the real ``openai``, ``anthropic``,
``google-genai`` and ``groq`` SDK clients on 127.0.0.1 with realistic usage, four providers in all.
One round of the ``research-report`` workflow:

    planner     routes on acme-llm-7b (self-hosted, no known price), then plans on gpt-4o-mini; the
                first attempt is rate limited (429) and retried once
    researcher  claude-sonnet-4-6 with prompt caching, o4-mini reasoning over the Responses API
                (streamed), text-embedding-3-small; near its budget it moves to acme-llm-7b
    fact-checker  gemini-2.5-flash (google-genai) with thoughts and, from round 2, implicit cache reads
                of the sources; a gemini-2.5-flash-lite stream; gemini-embedding-001 embeddings
    writer      claude-sonnet-4-6 ``messages.stream()`` with extended thinking and cached context,
                then a gpt-4o chat stream
    editor      a gpt-4o review under a blocking budget
    summarizer  llama-3.3-70b-versatile on Groq, streamed (usage in the last chunk's ``x_groq``): the
                ``groq`` SDK when otel-tokens instruments it, else the ``openai`` SDK on Groq's
                OpenAI-compatible API (``https://api.groq.com/openai/v1``, routed to the fake server)

Every round from the third on still makes cache reads and writes, reasoning tokens, two streams (time
to first chunk), a failed call and unpriced calls, so each dashboard panel has fresh data.

Budgets (the stack's alert tests rely on them): the researcher passes 90 % in round 2 and then, spending
only on the unpriced model, stays at 95 % (lifetime window); the writer goes from 75 % to over 100 %
in round 2 and stays over while the demo runs (1h window); the editor's calls are blocked from round 2.

Progress goes to stderr and the report to stdout, so ``--format json`` output parses. ``--interval``
paces ``--loop``; a fixed number of rounds runs back to back.

The SDKs are imported when the demo starts, not with this module: a provider whose SDK is missing is
skipped (a line names it and the extra that installs it), and with none installed the demo says to
``pip install 'otel-tokens[demo]'`` and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
import threading
from typing import Any

import otel_tokens
from otel_tokens._internal.base.formatting import format_usd
from otel_tokens._internal.commands.fake_server import FakeLLMServer
from otel_tokens._internal.commands.stopping import restore_signals, stop_on_signals
from otel_tokens._internal.setup.telemetry import configure_providers, shutdown_providers

WORKFLOW = "research-report"
# (provider, module, its SDK's name, the extra that installs it): the SDKs the demo drives.
SDKS = (("OpenAI", "openai", "openai", "openai"), ("Anthropic", "anthropic", "anthropic", "anthropic"),
        ("Gemini", "google.genai", "google-genai", "gemini"), ("Groq", "groq", "groq", "groq"))
DEMO_EXTRA = "pip install 'otel-tokens[demo]'"
GROQ_MODEL = "llama-3.3-70b-versatile"
GROQ_OPENAI_URL = "https://api.groq.com/openai/v1"
SELF_HOSTED_MODEL = "acme-llm-7b"  # a custom model on an OpenAI-compatible endpoint: no known price
WHAT_IF_MODEL = "gpt-4o-mini"
# USD, sized to the fake server's deterministic usage. The researcher spends $0.0065 in round 1 and
# $0.0018 in round 2 (75 %, then 95 %); the writer $0.0134 then $0.0087 (75 %, then 123 %); the
# editor's call costs $0.0019 and is projected at about $0.003 (the prompt at the full input price, the
# output gpt-4o calls really produced), so the second one does not fit under $0.0045.
BUDGETS: dict[str, dict[str, Any]] = {
    "planner": {"limit_usd": 1.00},
    "researcher": {"limit_usd": 0.0087},
    "writer": {"limit_usd": 0.0180, "window": "1h"},
    "editor": {"limit_usd": 0.0045, "action": "block"},
}
# Budgets of the other scopes, sized never to warn in a demo run (they feed the dashboard's scope panels).
SCOPE_BUDGETS: dict[str, dict[str, Any]] = {
    WORKFLOW: {"limit_usd": 20.00, "window": "1d", "scope": "workflow"},
    "all": {"limit_usd": 50.00, "window": "30d", "scope": "total"},
}

# Long, stable prompt prefixes: providers cache only prompts of 1,024 tokens or more.
SOURCES = " ".join(
    f"Source {n}: LLM spend grows with prompt length, output length and retries; caching the stable "
    f"part of a prompt cuts input cost by up to ninety percent (note {n})." for n in range(1, 31))
STYLE_GUIDE = " ".join(
    f"Rule {n}: write short sentences, lead with the number that matters, name the agent and the model, "
    f"and say what a reader should do next (rule {n})." for n in range(1, 31))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def import_sdks() -> dict[str, Any]:
    """The demo's SDK modules by module name; None for one that is not installed."""
    modules: dict[str, Any] = {}
    for _provider, module, _sdk, _extra in SDKS:
        try:
            modules[module] = importlib.import_module(module)
        except ImportError:  # also a half-installed one: "cannot import name 'genai' from 'google'"
            modules[module] = None
    return modules


def skipped_providers(sdks: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(provider, SDK, extra) of each provider the demo cannot call; Groq also runs on the openai SDK."""
    missing = {module for module, found in sdks.items() if found is None}
    return [(provider, sdk, extra) for provider, module, sdk, extra in SDKS if module in missing
            and not (module == "groq" and "openai" not in missing)]


class Workflow:
    """The agents of a ``research-report`` round and the SDK clients they share; a client is None when
    its SDK is missing, and the calls through it are skipped."""

    def __init__(self, server: FakeLLMServer, sdks: dict[str, Any]) -> None:
        openai, anthropic, genai = sdks["openai"], sdks["anthropic"], sdks["google.genai"]
        self.openai_sdk = openai
        self.openai = openai.OpenAI(base_url=server.openai_base_url, api_key="demo-key") if openai else None
        self.anthropic = (anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="demo-key")
                          if anthropic else None)
        self.gemini = (genai.Client(api_key="demo-key", http_options={"base_url": server.gemini_base_url})
                       if genai else None)
        self.groq, self.groq_route = _groq_client(server, sdks["groq"], openai)
        self.rate_limited = 0
        self.blocked = 0
        self._said: set[str] = set()

    def _once(self, key: str, message: str) -> None:
        """An event gets a line the first time; the round lines count it after that."""
        if key not in self._said:
            self._said.add(key)
            _say(message)

    def run_round(self, number: int) -> None:
        topic = f"Where does our LLM budget go, week {number}?"
        with otel_tokens.workflow(WORKFLOW):
            plan = self.plan(topic)
            notes = self.research(topic, plan)
            self.fact_check(notes)
            draft = self.write(number, notes)
            self.review(draft)
            self.summarize(draft)

    def _chat(self, model: str, prompt: str, **kwargs: Any) -> str:
        response = self.openai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], **kwargs)
        return response.choices[0].message.content or ""

    @otel_tokens.agent("planner")
    def plan(self, topic: str) -> str:
        if self.openai is None:
            return topic
        route = self._chat(SELF_HOSTED_MODEL, f"Which agents should handle: {topic}")
        try:
            # The fake server answers 429 to this header, as a busy provider would.
            self._chat("gpt-4o-mini", f"Plan a report on: {topic}", extra_headers={"x-fake-error": "429"})
        except self.openai_sdk.RateLimitError as err:
            self.rate_limited += 1
            self._once("429", f"planner: gpt-4o-mini answered {err.status_code} (rate limit); retrying once")
        return self._chat("gpt-4o-mini", f"Plan a report on: {topic}\nRouting: {route}")

    @otel_tokens.agent("researcher")
    def research(self, topic: str, plan: str) -> str:
        budget = otel_tokens.get_statistics()["budgets"].get("researcher", {})
        if budget.get("status", "ok") != "ok" and self.openai is not None:
            # A budget-aware agent: near its limit it moves to the self-hosted model, which its budget
            # does not count, so it stays at "warning" instead of running past 100 %.
            self._once("economy", f"researcher: {_percent(budget['utilization'])} of its budget used; "
                                  f"moving to the self-hosted {SELF_HOSTED_MODEL}")
            return self._chat(SELF_HOSTED_MODEL, f"Research: {topic}\nPlan: {plan}")
        findings = f"{topic}\n{plan}"
        if self.anthropic is not None:
            # Prompt caching: the sources are read from the cache after round 1, and this round's
            # question, behind a second breakpoint, is written to it.
            message = self.anthropic.messages.create(
                model="claude-sonnet-4-6", max_tokens=400,
                system=[{"type": "text", "text": SOURCES, "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": [
                    {"type": "text", "text": findings, "cache_control": {"type": "ephemeral"}}]}])
            findings = "".join(block.text for block in message.content if block.type == "text")
        if self.openai is None:
            return findings
        events = self.openai.responses.create(
            model="o4-mini", input=f"Check these findings: {findings}", reasoning={"effort": "medium"},
            stream=True)
        checked = "".join(event.delta for event in events if event.type == "response.output_text.delta")
        self.openai.embeddings.create(model="text-embedding-3-small", input=[findings, checked])
        return f"{findings}\n{checked}"

    @otel_tokens.agent("fact-checker")
    def fact_check(self, notes: str) -> str:
        if self.gemini is None:
            return notes
        # The sources as system instruction: Gemini's implicit cache reads them back from round 2 on.
        verdict = self.gemini.models.generate_content(
            model="gemini-2.5-flash", contents=f"Which of these claims do the sources support?\n{notes}",
            config={"system_instruction": SOURCES, "max_output_tokens": 600})
        summary = "".join(chunk.text or "" for chunk in self.gemini.models.generate_content_stream(
            model="gemini-2.5-flash-lite", contents=f"One line on: {verdict.text}"))
        self.gemini.models.embed_content(model="gemini-embedding-001", contents=[notes, summary])
        return summary

    @otel_tokens.agent("writer")
    def write(self, number: int, notes: str) -> str:
        draft = notes
        if self.anthropic is not None:
            with self.anthropic.messages.stream(
                model="claude-sonnet-4-6", max_tokens=2048,
                thinking={"type": "enabled", "budget_tokens": 1024},
                system=[{"type": "text", "text": STYLE_GUIDE, "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": [
                    {"type": "text", "text": f"Draft section {number} from these notes:\n{notes}",
                     "cache_control": {"type": "ephemeral"}}]}],
            ) as stream:
                draft = "".join(stream.text_stream)
        if self.openai is None:
            return draft
        chunks = self.openai.chat.completions.create(
            model="gpt-4o", stream=True,
            messages=[{"role": "system", "content": STYLE_GUIDE},
                      {"role": "user", "content": f"Polish this draft:\n{draft}"}])
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    @otel_tokens.agent("editor")
    def review(self, draft: str) -> None:
        if self.openai is None:
            return
        try:
            # The budget projects the style guide at the full input price plus the output gpt-4o calls
            # produced so far (capped by max_tokens). The call costs less (the guide is a cache read), but
            # enough that the next one is refused.
            self.openai.chat.completions.create(
                model="gpt-4o", max_tokens=150,
                messages=[{"role": "system", "content": STYLE_GUIDE},
                          {"role": "user", "content": f"Review this draft:\n{draft}"}])
        except otel_tokens.BudgetExceededError as err:
            self.blocked += 1
            self._once("blocked", f"editor blocked: {err}")

    @otel_tokens.agent("summarizer")
    def summarize(self, draft: str) -> str:
        if self.groq is None:
            return draft
        stream = self.groq.chat.completions.create(
            model=GROQ_MODEL, stream=True, messages=[{"role": "user", "content": f"Summarize:\n{draft}"}])
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def _groq_client(server: FakeLLMServer, groq: Any, openai: Any) -> tuple[Any, str]:
    """The groq SDK when otel-tokens instruments it; else the openai SDK on Groq's OpenAI-compatible
    URL, which otel-tokens names ``groq``, with its requests routed to the fake server; else None."""
    if groq is not None and importlib.util.find_spec("otel_tokens.instrumentation.groq") is not None:
        return groq.Groq(base_url=server.groq_base_url, api_key="demo-key"), "the groq SDK"
    if openai is None:
        return None, ""
    if hasattr(openai, "DefaultHttpx2Client"):  # openai 3.x
        import httpx2 as http

        client_class = openai.DefaultHttpx2Client
    else:
        import httpx as http

        client_class = openai.DefaultHttpxClient
    port = server.port

    class ToFakeServer(http.HTTPTransport):  # type: ignore[name-defined, misc]
        def handle_request(self, request: Any) -> Any:
            request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)
            return super().handle_request(request)

    client = openai.OpenAI(base_url=GROQ_OPENAI_URL, api_key="demo-key",
                           http_client=client_class(transport=ToFakeServer()))
    return client, "the openai SDK on Groq's OpenAI-compatible API"


def _percent(utilization: float | None) -> str:
    # None: a $0 limit with spend (statistics are strict JSON, so no infinity).
    return "n/a" if utilization is None else f"{utilization:.0%}"


def _progress(number: int, workflow: Workflow) -> str:
    stats = otel_tokens.get_statistics()
    budgets = "  ".join(f"{agent} {_percent(state['utilization'])}" for agent, state in stats["budgets"].items())
    return (f"round {number}: {stats['total_calls']} calls, {format_usd(stats['total_cost_usd'])} so far, "
            f"{workflow.rate_limited} rate limited, {workflow.blocked} blocked | budget used: {budgets}")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    sdks = import_sdks()
    skipped = skipped_providers(sdks)
    if len(skipped) == len(SDKS):
        _say(f"otel-tokens demo: none of the SDKs it drives is installed ({', '.join(s[2] for s in SDKS)}); "
             f"install them with: {DEMO_EXTRA}")
        return 2
    if skipped:
        providers, missing, extras = (", ".join(names) for names in zip(*skipped, strict=True))
        _say(f"otel-tokens demo: skipping {providers} (not installed: {missing}); "
             f"pip install 'otel-tokens[{extras.replace(' ', '')}]' adds them, {DEMO_EXTRA} everything the demo uses")
    try:
        tracer_provider, meter_provider = configure_providers(
            otlp_endpoint=args.otlp, prometheus_port=args.prometheus_port, service_name=args.service_name,
            force=True)
    except (OSError, RuntimeError) as err:  # the port is taken, or the Prometheus exporter is missing
        _say(f"otel-tokens demo: {err}")
        return 2
    otel_tokens.instrument(tracer_provider, meter_provider)
    for name, budget in {**BUDGETS, **SCOPE_BUDGETS}.items():
        otel_tokens.set_budget(name, **budget)
    # allow_retries=False: the provoked 429 fails at once instead of being retried inside the SDK.
    server = FakeLLMServer(latency_s=0.01, chunk_delay_s=0.003, allow_retries=False).start()
    stop = threading.Event()
    previous = stop_on_signals(stop)
    try:
        _say(f"otel-tokens demo: fake OpenAI, Anthropic, Gemini and Groq APIs on {server.base_url} "
             "(no keys, no network)")
        if args.prometheus_port is not None:
            _say(f"Prometheus metrics: http://127.0.0.1:{args.prometheus_port}/metrics")
        if args.otlp:
            _say(f"OTLP/HTTP export of traces and metrics to {args.otlp}")
        workflow = Workflow(server, sdks)
        if workflow.groq is not None:
            _say(f"summarizer: Groq through {workflow.groq_route}")
        number = 0
        while not stop.is_set() and (args.loop or number < args.rounds):
            number += 1
            workflow.run_round(number)
            _say(_progress(number, workflow))
            if args.loop:
                stop.wait(args.interval)
        calls = otel_tokens.get_statistics()["total_calls"]
        _say(f"the fake server answered {server.request_count()} requests; "
             f"otel-tokens counted {calls} calls\n")
        sys.stdout.write(otel_tokens.report(args.format, what_if=[WHAT_IF_MODEL]))
        sys.stdout.flush()
    finally:
        restore_signals(previous)
        # Flushes the OTLP exporters, within OTEL_TOKENS_SHUTDOWN_TIMEOUT.
        shutdown_providers()
        otel_tokens.uninstrument()
        server.stop()
    return 0

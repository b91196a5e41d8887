"""CrewAI: a real crew (two agents, two tasks) against the loopback fake server, attributed with no user
code: every LLM call carries its agent's role and its task's label, under an ``invoke_agent`` span per
agent execution, on every route CrewAI takes (its native OpenAI and Anthropic clients, or LiteLLM)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

if importlib.util.find_spec("crewai") is None:
    pytest.skip("crewai is not installed: it runs in the .venv-litellm leg of .ci/run", allow_module_level=True)

# CrewAI's own telemetry and version check must not phone home; LiteLLM's price map stays local.
for _name, _value in {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}.items():
    os.environ.setdefault(_name, _value)

from tests.providers.loopback import refuse_non_loopback  # noqa: E402

with pytest.MonkeyPatch.context() as _guard:
    refuse_non_loopback(_guard)
    import crewai
    from crewai.events.event_bus import CrewAIEventsBus

import otel_tokens  # noqa: E402
import otel_tokens._internal.calls.context  # noqa: E402
from otel_tokens import semconv as A  # noqa: E402
from otel_tokens._internal.base.records import Usage  # noqa: E402
from otel_tokens._internal.commands.fake_server import FakeLLMServer  # noqa: E402
from otel_tokens._internal.providers.crewai import TASK_LABEL_MAX, task_label  # noqa: E402
from tests.providers.assertions import reference_cost  # noqa: E402

RESEARCH_TASK = "research"
WRITING_DESCRIPTION = "Write a short summary of the research about token pricing for the finance team, in plain words"
WRITING_LABEL = task_label(crewai.Task(description=WRITING_DESCRIPTION, expected_output="x"))


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    refuse_non_loopback(monkeypatch)


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake


def make_crew(llm):
    researcher = crewai.Agent(role="Researcher", goal="Find facts about token prices", backstory="Careful.",
                              llm=llm, max_iter=2)
    writer = crewai.Agent(role="Writer", goal="Explain findings", backstory="Clear.", llm=llm, max_iter=2)
    tasks = [
        crewai.Task(name=RESEARCH_TASK, description="Research token pricing.", expected_output="Facts",
                    agent=researcher),
        crewai.Task(description=WRITING_DESCRIPTION, expected_output="A summary", agent=writer),
    ]
    return crewai.Crew(agents=[researcher, writer], tasks=tasks, process=crewai.Process.sequential)


def run_crew(llm):
    return make_crew(llm).kickoff()


def role_of(request):
    """Which agent sent a request: CrewAI's system prompt starts with "You are {role}."."""
    # (a system message, Anthropic's system field, or folded into the first user turn by LiteLLM)
    return "Researcher" if "You are Researcher" in json.dumps(request.body) else "Writer"


def assert_attributed(telemetry, server, provider):
    calls = telemetry.llm_spans()
    agents = {s.context.span_id: s for s in telemetry.spans("invoke_agent")}
    assert sorted(s.name for s in agents.values()) == ["invoke_agent Researcher", "invoke_agent Writer"]
    # Exactly one span per LLM call, whatever the route (count_tokens calls are not LLM calls).
    requests = [r for r in server.requests
                if r.path in ("/v1/chat/completions", "/v1/messages") or r.path.lower().endswith("generatecontent")]
    assert len(calls) == len(requests) >= 2
    expected_task = {"Researcher": RESEARCH_TASK, "Writer": WRITING_LABEL}
    for span in calls:
        role = span.attributes[A.GEN_AI_AGENT_NAME]
        assert span.attributes[A.OTEL_TOKENS_TASK_NAME] == expected_task[role]
        assert span.attributes[A.GEN_AI_PROVIDER_NAME] == provider
        parent = agents[span.parent.span_id]  # the call runs inside its agent's execution span
        assert parent.attributes[A.GEN_AI_AGENT_NAME] == role
        assert parent.attributes[A.GEN_AI_OPERATION_NAME] == "invoke_agent"
    by_request = sorted(role_of(r) for r in requests)
    assert sorted(s.attributes[A.GEN_AI_AGENT_NAME] for s in calls) == by_request


def test_native_openai_crew_costs_per_agent_and_task(instrumented, telemetry, server):
    llm = crewai.LLM(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="sk-fake-crew")
    assert type(llm).__name__ == "OpenAICompletion"  # CrewAI's native client, on the openai SDK
    run_crew(llm)
    assert_attributed(telemetry, server, "openai")

    # Per agent, the tokens the server billed and their genai-prices cost.
    expected: dict[str, list[float]] = {"Researcher": [0, 0, 0.0], "Writer": [0, 0, 0.0]}
    for request in server.requests:
        usage = Usage(input_tokens=request.usage["prompt_tokens"], output_tokens=request.usage["completion_tokens"],
                      cache_read_tokens=request.usage["prompt_tokens_details"]["cached_tokens"])
        row = expected[role_of(request)]
        row[0] += usage.input_tokens
        row[1] += usage.output_tokens
        row[2] += reference_cost("gpt-4o-mini", usage, "openai")
    statistics = otel_tokens.get_statistics()
    for role, (input_tokens, output_tokens, cost) in expected.items():
        entry = statistics["by_agent"][role]
        assert (entry["input_tokens"], entry["output_tokens"]) == (input_tokens, output_tokens)
        assert entry["cost_usd"] == pytest.approx(cost, abs=1e-11)
    assert statistics["by_task"][RESEARCH_TASK]["cost_usd"] == pytest.approx(expected["Researcher"][2], abs=1e-11)
    assert statistics["by_task"][WRITING_LABEL]["cost_usd"] == pytest.approx(expected["Writer"][2], abs=1e-11)

    text = otel_tokens.report()
    # (the text report cuts long labels to its column width)
    for expected_text in ("By agent", "By task", "Researcher", "Writer", RESEARCH_TASK, WRITING_LABEL[:30]):
        assert expected_text in text, (expected_text, text)
    groups = json.loads(otel_tokens.report("json"))["groups"]
    tasks = {row.get("key", row.get("name")): row for row in groups["task"]}
    assert tasks[RESEARCH_TASK]["cost_usd"] == pytest.approx(expected["Researcher"][2], abs=1e-11)


async def test_async_kickoff_crew(instrumented, telemetry, server):
    await make_crew(crewai.LLM(model="gpt-4o-mini", base_url=server.openai_base_url,
                               api_key="sk-fake-crew")).kickoff_async()
    assert_attributed(telemetry, server, "openai")


def test_native_anthropic_crew(instrumented, telemetry, server):
    llm = crewai.LLM(model="anthropic/claude-sonnet-4-5", base_url=server.anthropic_base_url,
                     api_key="sk-ant-fake-crew", max_tokens=512)
    assert type(llm).__name__ == "AnthropicCompletion"
    run_crew(llm)
    assert_attributed(telemetry, server, "anthropic")


def test_native_gemini_crew(instrumented, telemetry, server):
    llm = crewai.LLM(model="gemini/gemini-2.5-flash", api_key="fake-gemini-key",
                     client_params={"http_options": {"base_url": server.gemini_base_url}})
    assert type(llm).__name__ == "GeminiCompletion"  # CrewAI's native client, on google-genai
    run_crew(llm)
    assert_attributed(telemetry, server, "gcp.gemini")


def test_litellm_route_crew(instrumented, telemetry, server):
    llm = crewai.LLM(model="anthropic/claude-sonnet-4-5", is_litellm=True, base_url=server.anthropic_base_url,
                     api_key="sk-ant-fake-crew", max_tokens=512)
    run_crew(llm)
    assert_attributed(telemetry, server, "anthropic")


def test_failed_agent_execution_ends_its_span_with_the_error(instrumented, telemetry, server):
    llm = crewai.LLM(model="gpt-4o-mini-error-400", base_url=server.openai_base_url, api_key="sk-fake-crew")
    with pytest.raises(Exception):  # noqa: B017 - whichever error CrewAI re-raises; the SDK's is below
        run_crew(llm)
    calls = telemetry.llm_spans()
    assert calls and all(s.attributes[A.ERROR_TYPE] == "BadRequestError" for s in calls)
    assert all(s.attributes[A.GEN_AI_AGENT_NAME] == "Researcher" for s in calls)
    agent_spans = telemetry.spans("invoke_agent Researcher")
    assert agent_spans and agent_spans[-1].status.status_code.name == "ERROR"
    # The scope closed with it: a call made afterwards is not labelled.
    import openai

    openai.OpenAI(base_url=server.openai_base_url, api_key="sk-fake").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "after"}]
    )
    assert A.GEN_AI_AGENT_NAME not in telemetry.llm_spans()[-1].attributes


def test_agent_kickoff_without_a_crew_is_attributed(instrumented, telemetry, server):
    llm = crewai.LLM(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="sk-fake-crew")
    analyst = crewai.Agent(role="Analyst", goal="Answer", backstory="Brief.", llm=llm, max_iter=2)
    analyst.kickoff("What drives token cost?")
    calls = telemetry.llm_spans()
    assert calls and all(s.attributes[A.GEN_AI_AGENT_NAME] == "Analyst" for s in calls)
    assert [s.name for s in telemetry.spans("invoke_agent")] == ["invoke_agent Analyst"]


def test_budget_set_for_a_role_applies_to_its_calls(instrumented, telemetry, server):
    otel_tokens.set_budget("Writer", limit_usd=1.0)
    run_crew(crewai.LLM(model="gpt-4o-mini", base_url=server.openai_base_url, api_key="sk-fake-crew"))
    budget = otel_tokens.get_statistics()["budgets"]["Writer"]
    assert budget["spent_usd"] == pytest.approx(otel_tokens.get_statistics()["by_agent"]["Writer"]["cost_usd"])
    assert budget["spent_usd"] > 0


def test_an_execution_left_open_closes_with_its_task(instrumented, telemetry):
    from crewai.events.event_bus import crewai_event_bus
    from crewai.events.types.agent_events import AgentExecutionStartedEvent
    from crewai.events.types.task_events import TaskCompletedEvent, TaskStartedEvent
    from crewai.tasks.task_output import TaskOutput

    analyst = crewai.Agent(role="Analyst", goal="g", backstory="b", llm=crewai.LLM(model="gpt-4o-mini", api_key="k"))
    job = crewai.Task(name="triage", description="d", expected_output="x", agent=analyst)
    crewai_event_bus.emit(job, TaskStartedEvent(context="", task=job))
    crewai_event_bus.emit(analyst, AgentExecutionStartedEvent(agent=analyst, task=job, tools=[], task_prompt="p"))
    labels = otel_tokens._internal.calls.context.current_labels()
    assert (labels.agent, labels.task) == ("Analyst", "triage")
    # No agent_execution_completed (an interrupted execution): the task's end closes both scopes.
    output = TaskOutput(description="d", agent="Analyst", raw="done")
    crewai_event_bus.emit(job, TaskCompletedEvent(output=output, task=job))
    labels = otel_tokens._internal.calls.context.current_labels()
    assert (labels.agent, labels.task) == (None, None)
    assert [s.name for s in telemetry.spans("invoke_agent")] == ["invoke_agent Analyst"]


def test_uninstrument_restores_the_event_bus(telemetry, server):
    original = CrewAIEventsBus.__dict__["emit"]
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    assert CrewAIEventsBus.__dict__["emit"] is not original
    otel_tokens.uninstrument()
    assert CrewAIEventsBus.__dict__["emit"] is original


def test_task_label_is_the_name_or_the_shortened_description():
    assert task_label(crewai.Task(name="  triage ", description="d", expected_output="x")) == "triage"
    assert len(WRITING_LABEL) == TASK_LABEL_MAX and WRITING_LABEL.endswith("…")
    assert WRITING_LABEL.startswith("Write a short summary of the research")
    assert task_label(crewai.Task(description="Line one\n   line two", expected_output="x")) == "Line one line two"

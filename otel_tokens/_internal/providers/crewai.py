"""CrewAI events, read into agent and task scopes: parsing only.

CrewAI announces every agent execution and every task on its event bus, with start and end events
emitted from the code that runs them (so in the context its LLM calls are made in). This module turns
such an event into what otel-tokens labels calls with; the instrumentor opens and closes the scopes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from otel_tokens import semconv

# A task without a name is labelled by its description, cut to this length (a metric-friendly label).
TASK_LABEL_MAX = 60

_STARTS = {
    "agent_execution_started": "agent",
    "lite_agent_execution_started": "agent",
    "task_started": "task",
}
_ENDS = {
    "agent_execution_completed": "agent",
    "agent_execution_error": "agent",
    "lite_agent_execution_completed": "agent",
    "lite_agent_execution_error": "agent",
    "task_completed": "task",
    "task_failed": "task",
}
_FAILURES = frozenset({"agent_execution_error", "lite_agent_execution_error", "task_failed"})


@dataclass(frozen=True, slots=True)
class ScopeEvent:
    kind: Literal["agent", "task"]
    # Pairs an end event with its start: the agent or task object (or the lite agent's id).
    key: Any
    starts: bool
    name: str | None = None
    error_type: str | None = None
    error: str | None = None


def task_label(task: Any) -> str | None:
    name = getattr(task, "name", None)
    if isinstance(name, str) and name.strip():
        return name.strip()
    description = getattr(task, "description", None)
    if not isinstance(description, str) or not description.strip():
        return None
    text = " ".join(description.split())
    return text if len(text) <= TASK_LABEL_MAX else text[: TASK_LABEL_MAX - 1].rstrip() + "…"


def _agent(event: Any) -> tuple[Any, str | None]:
    agent = getattr(event, "agent", None)
    if agent is not None:
        role = getattr(agent, "role", None)
        return id(agent), role.strip() if isinstance(role, str) and role.strip() else None
    info = getattr(event, "agent_info", None)  # lite agents (Agent.kickoff) describe themselves in a dict
    if isinstance(info, dict):
        role = info.get("role")
        return ("lite", info.get("id") or role), role.strip() if isinstance(role, str) and role.strip() else None
    return None, None


def scope_event(event: Any) -> ScopeEvent | None:
    """The scope an event opens or closes; None for every other event."""
    kind_name = getattr(event, "type", None)
    kind = _STARTS.get(kind_name) or _ENDS.get(kind_name)
    if kind is None:
        return None
    starts = kind_name in _STARTS
    if kind == "agent":
        key, name = _agent(event)
    else:
        task = getattr(event, "task", None)
        key, name = (id(task), task_label(task)) if task is not None else (None, None)
    if key is None:
        return None
    error_type = error = None
    if kind_name in _FAILURES:
        raised = getattr(event, "error_type", None)
        error_type = raised.__qualname__ if isinstance(raised, type) else semconv.ERROR_TYPE_OTHER
        message = getattr(event, "error", None)
        error = message if isinstance(message, str) else None
    return ScopeEvent(kind, key, starts, name, error_type, error)  # type: ignore[arg-type]

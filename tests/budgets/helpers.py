"""Shared by the budget tests and their worker processes: one call shape with a known cost; the Gemini
workflow of issue #20."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MODEL = "gpt-4o-mini"
# Dense text: tiktoken counts more tokens than the fake server charges, so a blocking budget's projection
# (prompt + max_tokens) is above the actual cost (about 1.3x), and admitted calls never overshoot.
PROMPT = "q7 z9 x3 k8 w2 j5 v4 b6 n1 m0 p7 r3 t9 y2 u8"
MAX_TOKENS = 5


def worker(*args: str, store: str, budgets: str, **popen: Any) -> subprocess.Popen[str]:
    """``python -m tests.budgets.worker *args``: a process of its own, instrumented from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_TOKENS_")}
    env.update({
        "OTEL_TOKENS_RAISE_INTERNAL_ERRORS": "1", "OTEL_TOKENS_STORE": store, "OTEL_TOKENS_BUDGETS": budgets,
        "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
    })
    return subprocess.Popen([sys.executable, "-m", "tests.budgets.worker", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, **popen)


def ask(client: Any, prompt: str = PROMPT) -> Any:
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
    )


async def ask_async(client: Any, prompt: str = PROMPT) -> Any:
    return await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
    )


def call_cost(base_url: str, prompt: str = PROMPT) -> float:
    """The exact USD cost of :func:`ask`: the fake server's usage priced by genai-prices itself (the
    probe goes through an uninstrumented client, so nothing is counted)."""
    import httpx

    from otel_tokens._internal.base.records import Usage
    from tests.providers.assertions import reference_cost

    with httpx.Client() as http:
        raw = http.post(f"{base_url}/chat/completions", json={
            "model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": MAX_TOKENS,
        }).json()
    usage = raw["usage"]
    return reference_cost(MODEL, Usage(usage["prompt_tokens"], usage["completion_tokens"]), "openai")


# -- the Gemini workflow of issue #20 ------------------------------------------------------------------------
GEMINI_MODEL = "gemini-2.5-flash"
GEMINI_RECORDINGS = Path(__file__).parent.parent / "providers" / "recordings" / "gemini"
# Eight steps over the same notes; workflow_<n>.json is each step's reply.
NOTES = ("Revenue in the northern region grew by eleven percent while returns fell; the retail channel lagged "
         "behind online orders, and the new pricing tier drew interest from mid-sized customers. ")
STEPS = [
    ("Extract the key figures from these sales notes.", 3),
    ("Classify each figure as growth, decline or flat.", 2),
    ("Find the three most surprising changes and say why.", 4),
    ("Draft a one-paragraph summary for the board.", 3),
    ("List follow-up questions for the regional managers.", 2),
    ("Suggest two experiments for the retail channel.", 2),
    ("Check the summary against the extracted figures.", 4),
    ("Write the final memo with a title and three bullet points.", 3),
]


def workflow_usages() -> list[Any]:
    """Each step's billed usage (output: the answer and the thinking), from its recorded reply."""
    from otel_tokens._internal.base.records import Usage

    usages = []
    for step in range(1, len(STEPS) + 1):
        metadata = json.loads((GEMINI_RECORDINGS / f"workflow_{step}.json").read_text())["usageMetadata"]
        usages.append(Usage(metadata["promptTokenCount"],
                            metadata["candidatesTokenCount"] + metadata["thoughtsTokenCount"]))
    return usages


def workflow_cost() -> float:
    from tests.providers.assertions import reference_cost

    return sum(reference_cost(GEMINI_MODEL, usage, "google") for usage in workflow_usages())


def ask_step(client: Any, step: int) -> Any:
    task, repeat = STEPS[step - 1]
    return client.models.generate_content(model=GEMINI_MODEL, contents=f"{task}\n\n" + NOTES * repeat)


def run_workflow(limit_usd: float | None, steps: int = len(STEPS)) -> tuple[list[int], float]:
    """The first ``steps`` steps under one per-request budget (None: no limit), each refusal caught as an
    app would; (refused steps, spend)."""
    import otel_tokens
    from tests.providers.gemini_mock import GeminiMock

    mock = GeminiMock().reply(*(f"workflow_{step}.json" for step in range(1, steps + 1)))
    client = mock.client()
    refused = []
    with otel_tokens.agent("analyst"), otel_tokens.budget(limit_usd=limit_usd) as b:
        for step in range(1, steps + 1):
            try:
                ask_step(client, step)
            except otel_tokens.BudgetExceededError:
                refused.append(step)
                mock._queue.popleft()  # that step's reply was never asked for
    return refused, b.spent_usd


def first_step_projection() -> float:
    """The USD the first step projects, read from its refusal under a limit of $0."""
    import otel_tokens
    from tests.providers.gemini_mock import GeminiMock

    with otel_tokens.agent("analyst"), otel_tokens.budget(limit_usd=0.0):
        try:
            ask_step(GeminiMock().client(), 1)
        except otel_tokens.BudgetExceededError as refused:
            return refused.projected_usd
    raise AssertionError("a call was sent under a limit of $0")

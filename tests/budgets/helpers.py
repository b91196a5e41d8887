"""Shared by the budget tests and their worker processes: one call shape with a known cost."""

from __future__ import annotations

from typing import Any

MODEL = "gpt-4o-mini"
# Dense text: tiktoken counts more tokens than the fake server charges, so a blocking budget's projection
# (prompt + max_tokens) is above the actual cost (about 1.3x), and admitted calls never overshoot.
PROMPT = "q7 z9 x3 k8 w2 j5 v4 b6 n1 m0 p7 r3 t9 y2 u8"
MAX_TOKENS = 5


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

"""A FastAPI app with a hard LLM spend limit per request: 402 Payment Required when it is passed.

Each ``POST /research`` runs a small agent workflow (a planner, then a writer per step of the plan)
under ``otel_tokens.budget(limit_usd=...)``. A call that would take the request past its limit is
refused before it is sent (``BudgetExceededError``), and the app answers 402 with the details.
The budget lives in the request's context, so concurrent requests never share or reset it.

    pip install 'otel-tokens[openai]' fastapi uvicorn
    OPENAI_API_KEY=... uvicorn examples.fastapi_budget:app
    curl -X POST localhost:8000/research -H 'content-type: application/json' \\
         -d '{"question": "Why is the sky blue?", "steps": 3}'

Against the loopback fake server instead of OpenAI:
``otel-tokens fake-server --port 8001`` and
``OPENAI_BASE_URL=http://127.0.0.1:8001/v1 OPENAI_API_KEY=fake``.
"""

from __future__ import annotations

import os
from typing import Any

import openai
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import otel_tokens

MODEL = os.environ.get("RESEARCH_MODEL", "gpt-4o-mini")
LIMIT_USD = float(os.environ.get("RESEARCH_LIMIT_USD", "0.10"))


class Question(BaseModel):
    question: str
    steps: int = Field(default=2, ge=1, le=10)


def create_app(client: openai.AsyncOpenAI | None = None, limit_usd: float = LIMIT_USD) -> FastAPI:
    """The app; ``client`` defaults to one built from the OPENAI_* environment on first use."""
    app = FastAPI(title="research, with a per-request LLM budget")
    clients: list[openai.AsyncOpenAI] = [client] if client is not None else []

    def llm() -> openai.AsyncOpenAI:
        if not clients:
            clients.append(openai.AsyncOpenAI())
        return clients[0]

    async def ask(prompt: str) -> str:
        response = await llm().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=64
        )
        return response.choices[0].message.content or ""

    @app.exception_handler(otel_tokens.BudgetExceededError)
    async def budget_exceeded(request: Request, error: otel_tokens.BudgetExceededError) -> JSONResponse:
        return JSONResponse(status_code=402, content={"error": "llm_budget_exceeded", **error.to_dict()})

    @app.post("/research")
    async def research(body: Question) -> dict[str, Any]:
        async with otel_tokens.budget(limit_usd=limit_usd) as spend:
            with otel_tokens.workflow("research"):
                with otel_tokens.agent("planner"):
                    plan = await ask(f"Plan {body.steps} steps to answer: {body.question}")
                notes = []
                with otel_tokens.agent("writer"):
                    for step in range(body.steps):
                        notes.append(await ask(f"Step {step + 1} of this plan: {plan}"))
        return {"answer": " ".join(notes), "spent_usd": spend.spent_usd, "remaining_usd": spend.remaining_usd}

    return app


otel_tokens.instrument()
app = create_app()

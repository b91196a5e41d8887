"""Serve recorded Groq responses through the groq SDK's own httpx stack (a mock transport)."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

import groq
import httpx

RECORDINGS = Path(__file__).parent / "recordings" / "groq"
API_KEY = "gsk_test_SECRET_key_42"


class GroqMock:
    """Serves recordings by path; ``reply()`` queues a specific one, ``reply_stream()`` a changed stream."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self._queue: deque[tuple[str | bytes, int]] = deque()

    def reply(self, recording: str, status: int = 200) -> GroqMock:
        self._queue.append((recording, status))
        return self

    def reply_stream(self, last_chunk_usage: dict) -> GroqMock:
        """``chat_stream.sse`` with its last chunk's ``x_groq.usage`` replaced."""
        events = (RECORDINGS / "chat_stream.sse").read_text().split("\n\n")
        data = [json.loads(e[6:]) for e in events if e.startswith("data: {")]
        data[-1]["x_groq"]["usage"] = last_chunk_usage
        body = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in data) + "data: [DONE]\n\n"
        self._queue.append((body.encode(), 200))
        return self

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.requests.append((request.url.path, body))
        if self._queue:
            name, status = self._queue.popleft()
        elif request.url.path.endswith("/embeddings"):
            name, status = "embeddings.json", 200
        else:
            name, status = ("chat_stream.sse" if body.get("stream") else "chat_completion.json"), 200
        if isinstance(name, bytes):
            return httpx.Response(status, content=name, headers={"content-type": "text/event-stream"})
        kind = "text/event-stream" if name.endswith(".sse") else "application/json"
        return httpx.Response(status, content=(RECORDINGS / name).read_bytes(), headers={"content-type": kind})

    def http_client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))

    def async_http_client(self) -> httpx.AsyncClient:
        handler = self.handler

        async def handle(request: httpx.Request) -> httpx.Response:
            await request.aread()
            return handler(request)

        return httpx.AsyncClient(transport=httpx.MockTransport(handle))

    def client(self, **kwargs: Any) -> Any:
        return groq.Groq(api_key=API_KEY, http_client=self.http_client(), max_retries=0, **kwargs)

    def async_client(self, **kwargs: Any) -> Any:
        return groq.AsyncGroq(api_key=API_KEY, http_client=self.async_http_client(), max_retries=0, **kwargs)

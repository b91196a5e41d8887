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
    """Serves recordings by path; ``reply()`` queues a specific one."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self._queue: deque[tuple[str, int]] = deque()

    def reply(self, recording: str, status: int = 200) -> GroqMock:
        self._queue.append((recording, status))
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

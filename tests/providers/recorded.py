"""Serve recorded responses, in the provider's own wire format, through an SDK's own HTTP stack.

The SDK gets a real ``httpx`` / ``httpx2`` client whose transport is a ``MockTransport`` calling
:meth:`Recorded.handler`: requests are kept for assertions, and each is answered with the next queued
recording or else the default for its path (and stream flag). The content type follows the file:
``.json``, ``.sse`` (server-sent events) or ``.ndjson`` (newline-delimited JSON).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

RECORDINGS = Path(__file__).parent / "recordings"

CONTENT_TYPES = {".json": "application/json", ".sse": "text/event-stream", ".ndjson": "application/x-ndjson"}


class Recorded:
    def __init__(self, provider: str, http: Any, route: Callable[[str, dict], str]) -> None:
        """``http`` is the SDK's HTTP module (``httpx`` or ``httpx2``); ``route(path, body)`` names the
        default recording for a request."""
        self.directory = RECORDINGS / provider
        self.http = http
        self._route = route
        self.requests: list[tuple[str, dict, dict]] = []
        self._queue: deque[tuple[str, int]] = deque()

    def reply(self, recording: str, status: int = 200) -> Recorded:
        """Answer the next request with this recording."""
        self._queue.append((recording, status))
        return self

    def load(self, name: str) -> Any:
        return json.loads((self.directory / name).read_text())

    def lines(self, name: str) -> list[str]:
        return (self.directory / name).read_text().splitlines()

    def handler(self, request: Any) -> Any:
        body = json.loads(request.content) if request.content else {}
        path = request.url.path
        self.requests.append((path, body, dict(request.headers)))
        name, status = self._queue.popleft() if self._queue else (self._route(path, body), 200)
        content_type = CONTENT_TYPES[Path(name).suffix]
        return self.http.Response(
            status, content=(self.directory / name).read_bytes(), headers={"content-type": content_type}
        )

    def transport(self) -> Any:
        return self.http.MockTransport(self.handler)

    def async_transport(self) -> Any:
        handler = self.handler

        async def handle(request: Any) -> Any:
            await request.aread()
            return handler(request)

        return self.http.MockTransport(handle)

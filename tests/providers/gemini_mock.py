"""Serve recorded Gemini API (and Vertex AI) responses through google-genai's own HTTP stack (httpx2 for
google-genai 3.x, httpx before).

Routes by the method in the URL (``:generateContent``, ``:streamGenerateContent?alt=sse``,
``:batchEmbedContents``, ``:predict``); a queued reply wins over the default for its route.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

from google import genai
from google.genai import _api_client, types

if getattr(_api_client, "httpx2", None) is not None:  # google-genai 3.x
    import httpx2 as http
else:  # google-genai 1.x / 2.x
    import httpx as http

RECORDINGS = Path(__file__).parent / "recordings" / "gemini"
API_KEY = "AIza-test-SECRET-key-123"

DEFAULT_REPLIES = {
    "generateContent": "generate_content.json",
    "streamGenerateContent": "stream.sse",
    "batchEmbedContents": "batch_embed.json",
    "predict": "vertex_predict_embed.json",
}


def load(name: str) -> Any:
    return json.loads((RECORDINGS / name).read_text())


class GeminiMock:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, dict]] = []
        self._queue: deque[tuple[str, int]] = deque()

    def reply(self, *recordings: str, status: int = 200) -> GeminiMock:
        """Answer the next requests with these recordings, in order."""
        self._queue.extend((name, status) for name in recordings)
        return self

    def handler(self, request: Any) -> Any:
        body = json.loads(request.content) if request.content else {}
        self.requests.append((str(request.url), body, dict(request.headers)))
        method = request.url.path.rsplit(":", 1)[-1]
        name, status = self._queue.popleft() if self._queue else (DEFAULT_REPLIES[method], 200)
        content = (RECORDINGS / name).read_bytes()
        kind = "text/event-stream" if name.endswith(".sse") else "application/json"
        return http.Response(status, content=content, headers={"content-type": kind})

    def _options(self) -> types.HttpOptions:
        async_handler = self.handler

        async def handle(request: Any) -> Any:
            await request.aread()
            return async_handler(request)

        return types.HttpOptions(
            httpx_client=http.Client(transport=http.MockTransport(self.handler)),
            httpx_async_client=http.AsyncClient(transport=http.MockTransport(handle)),
        )

    def client(self) -> genai.Client:
        return genai.Client(api_key=API_KEY, http_options=self._options())

    def vertex_client(self) -> genai.Client:
        from google.oauth2.credentials import Credentials

        # A token that is valid as given: nothing is refreshed over the network.
        return genai.Client(
            vertexai=True, project="acme-prod", location="us-central1",
            credentials=Credentials(token="ya29.test-SECRET-token"),
            http_options=self._options(),
        )

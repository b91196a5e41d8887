"""Serve recorded OpenAI responses through the SDK's own HTTP stack (httpx2 for openai 3.x, httpx before).

Chat streams are served as OpenAI's server does: the usage-only chunk (and the ``usage`` key) only when
the request asked for ``stream_options.include_usage``.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

import openai

RECORDINGS = Path(__file__).parent / "recordings" / "openai"

if hasattr(openai, "DefaultHttpx2Client"):  # openai 3.x
    import httpx2 as http

    SyncHttpClient, AsyncHttpClient = openai.DefaultHttpx2Client, openai.DefaultAsyncHttpx2Client
else:  # openai 1.x / 2.x
    import httpx as http

    SyncHttpClient, AsyncHttpClient = openai.DefaultHttpxClient, openai.DefaultAsyncHttpxClient

DEFAULT_REPLIES = {
    "/chat/completions": "chat_completion.json",
    "/responses": "response.json",
    "/embeddings": "embeddings.json",
    "/completions": "completion.json",
    "/images/generations": "images_generate.json",
    "/images/edits": "images_edit.json",
}
STREAM_REPLIES = {
    "/chat/completions": "chat_stream.sse",
    "/responses": "response_stream.sse",
    "/completions": "completion_stream.sse",
    "/images/generations": "images_generate_stream.sse",
    "/images/edits": "images_edit_stream.sse",
}


def load(name: str) -> Any:
    return json.loads((RECORDINGS / name).read_text())


def sse_events(name: str) -> list[dict]:
    text = (RECORDINGS / name).read_text()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


class OpenAIMock:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, dict]] = []
        self._queue: deque[tuple[str, int]] = deque()

    def reply(self, recording: str, status: int = 200) -> OpenAIMock:
        """Answer the next request with this recording (queued; otherwise defaults by path)."""
        self._queue.append((recording, status))
        return self

    def handler(self, request: Any) -> Any:
        body = _form(request) if request.headers.get("content-type", "").startswith("multipart/") else (
            json.loads(request.content) if request.content else {}
        )
        path = request.url.path
        self.requests.append((path, body, dict(request.headers)))
        # Longest suffix first: Azure puts deployments in the path, and /chat/completions ends in /completions.
        path = next((p for p in sorted(DEFAULT_REPLIES, key=len, reverse=True) if request.url.path.endswith(p)),
                    request.url.path)  # e.g. /batches/{id}: answered only by a queued reply
        if self._queue:
            name, status = self._queue.popleft()
        elif body.get("stream") in (True, "true"):
            name, status = STREAM_REPLIES[path], 200
        else:
            name, status = DEFAULT_REPLIES[path], 200
        content = (RECORDINGS / name).read_bytes()
        if name.endswith(".sse"):
            if path in ("/chat/completions", "/completions"):
                content = _chat_sse(content, body)
            return http.Response(status, content=content, headers={"content-type": "text/event-stream"})
        return http.Response(status, content=content, headers={"content-type": "application/json"})

    def client(self, base_url: str = "https://api.openai.com/v1", cls: Any = None, **kwargs: Any) -> Any:
        cls = cls or openai.OpenAI
        return cls(
            api_key="sk-test-SECRET-key-123",
            base_url=base_url,
            http_client=SyncHttpClient(transport=http.MockTransport(self.handler)),
            max_retries=0,
            **kwargs,
        )

    def async_client(self, base_url: str = "https://api.openai.com/v1", **kwargs: Any) -> Any:
        async_handler = self.handler

        async def handle(request: Any) -> Any:
            await request.aread()
            return async_handler(request)

        return openai.AsyncOpenAI(
            api_key="sk-test-SECRET-key-123",
            base_url=base_url,
            http_client=AsyncHttpClient(transport=http.MockTransport(handle)),
            max_retries=0,
            **kwargs,
        )


def _form(request: Any) -> dict:
    """A multipart/form-data body (images.edit) as its fields: text as sent, a file as its name and size."""
    from email.parser import BytesParser
    from email.policy import HTTP

    head = f"content-type: {request.headers['content-type']}\r\n\r\n".encode()
    fields: dict[str, Any] = {}
    for part in BytesParser(policy=HTTP).parsebytes(head + request.content).iter_parts():
        name, filename = part.get_param("name", header="content-disposition"), part.get_filename()
        payload = part.get_payload(decode=True)
        value = {"filename": filename, "size": len(payload)} if filename else payload.decode()
        if name in fields:  # a repeated field (several images)
            fields[name] = [*(fields[name] if isinstance(fields[name], list) else [fields[name]]), value]
        else:
            fields[name] = value
    return fields


def _chat_sse(content: bytes, body: dict) -> bytes:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if include_usage:
        return content
    out = []
    for block in content.decode().split("\n\n"):
        if not block.startswith("data: {"):
            if block:
                out.append(block)
            continue
        chunk = json.loads(block[6:])
        if not chunk["choices"] and chunk.get("usage"):
            continue
        chunk.pop("usage", None)
        out.append("data: " + json.dumps(chunk, separators=(",", ":")))
    return ("\n\n".join(out) + "\n\n").encode()

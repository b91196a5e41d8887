"""A loopback HTTP server on 127.0.0.1 that answers with recorded responses, for SDKs that build their
own HTTP clients (LiteLLM's own handlers, CrewAI's native providers), and a guard that lets tests reach
loopback only."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

RECORDINGS = Path(__file__).parent / "recordings"


def _is_loopback(host: Any) -> bool:
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def refuse_non_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections and name lookups for anything but loopback fail loudly instead of passing."""
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def check(address: Any) -> None:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            raise AssertionError(f"network access attempted: {address!r}")

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        check(address)
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> Any:
        check(address)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(host):
            raise AssertionError(f"name lookup attempted: {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


class RecordedServer:
    """Answers POSTs from recordings: ``route(suffix, json_name, sse_name)`` picks by path suffix and by
    whether the request streams (``"stream": true`` in the body or ``alt=sse`` in the query);
    ``reply(name, status)`` queues a one-off answer; ``transform(content, body)`` may rewrite a stream
    as the server would for that request. Requests are kept as ``(path, query, body, headers)``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, dict[str, str]]] = []
        self._routes: list[tuple[str, str | None, str | None, Transform | None]] = []
        self._queue: deque[tuple[str, int]] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def route(
        self, suffix: str, json_name: str | None, sse_name: str | None = None, transform: Transform | None = None
    ) -> RecordedServer:
        self._routes.append((suffix, json_name, sse_name, transform))
        return self

    def reply(self, name: str, status: int = 200) -> RecordedServer:
        self._queue.append((name, status))
        return self

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> RecordedServer:
        handler = _handler(self._answer)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def _answer(self, path: str, query: str, body: dict, headers: dict[str, str]) -> tuple[int, str, bytes]:
        with self._lock:
            self.requests.append((path, query, body, headers))
            queued = self._queue.popleft() if self._queue else None
        transform = None
        if queued is not None:
            name, status = queued
        else:
            streaming = body.get("stream") is True or "alt=sse" in query
            for suffix, json_name, sse_name, _transform in self._routes:
                if path.endswith(suffix):
                    name = sse_name if streaming else json_name
                    break
            else:
                name = None
            if name is None:
                return 404, "application/json", b'{"error": {"message": "no recording"}}'
            status = 200
        kind = "text/event-stream" if name.endswith(".sse") else "application/json"
        content = (RECORDINGS / name).read_bytes()
        if transform is not None and name.endswith(".sse"):
            content = transform(content, body)
        return status, kind, content


Transform = Callable[[bytes, dict], bytes]


def _handler(answer: Callable[..., tuple[int, str, bytes]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            path, _, query = self.path.partition("?")
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, kind, content = answer(path, query, body if isinstance(body, dict) else {}, headers)
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    return Handler

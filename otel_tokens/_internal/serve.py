"""The live page: a small HTTP server on loopback for the running process's statistics or a usage log.

    GET /                      the HTML report, refreshing itself from /api/statistics
    GET /api/statistics        the get_statistics() JSON
    GET /api/report?format=F   the report (text, markdown, json, csv, html); optional &by=agent,model

Off unless started; binds 127.0.0.1 unless told otherwise; serves only aggregates (no prompt or
completion text ever reaches the statistics). Runs in a daemon thread; :meth:`LiveServer.close` stops it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_logger = logging.getLogger("otel_tokens")

# (statistics, price book) for each request.
Source = Callable[[], tuple[dict[str, Any], Any]]


class LiveServer:
    """A running live page; ``url``, ``host``, ``port``, ``close()``; a context manager."""

    def __init__(self, source: Source, *, host: str = "127.0.0.1", port: int = 8765, interval_s: float = 5.0,
                 title: str = "otel-tokens live usage") -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in 0-65535 (0: any free port), got {port!r}")
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        if isinstance(interval_s, bool) or not isinstance(interval_s, int | float) or not (
                math.isfinite(interval_s) and interval_s >= 0.1):
            raise ValueError(f"interval_s must be a number of seconds >= 0.1, got {interval_s!r}")
        handler = type("Handler", (_Handler,), {"source": staticmethod(source), "interval_s": float(interval_s),
                                                "title": title})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as err:
            raise OSError(err.errno, f"cannot serve on {host}:{port}: {err.strerror or err}") from err
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="otel-tokens-serve", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        """Stop serving and free the port. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LiveServer {self.url}{' closed' if self._closed else ''}>"


class _Handler(BaseHTTPRequestHandler):
    source: Source
    interval_s: float
    title: str
    server_version = "otel-tokens"

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        try:
            if parts.path in ("/", "/index.html"):
                from otel_tokens._internal.html_report import render_html
                from otel_tokens._internal.report import with_recommendations

                stats, book = self.source()
                page = render_html(with_recommendations(stats, book), title=self.title,
                                   live_interval_s=self.interval_s)
                self._send(200, "text/html; charset=utf-8", page)
            elif parts.path == "/api/statistics":
                from otel_tokens._internal.formatting import machine_values
                from otel_tokens._internal.report import with_recommendations

                stats, book = self.source()
                body = json.dumps(machine_values(dict(with_recommendations(stats, book))), allow_nan=False)
                self._send(200, "application/json", body)
            elif parts.path == "/api/report":
                self._report(query)
            else:
                self._send(404, "text/plain; charset=utf-8", "not found: try /, /api/statistics or /api/report\n")
        except Exception:
            _logger.exception("otel_tokens: the live page failed to answer %s", parts.path)
            self._send(500, "text/plain; charset=utf-8", "internal error; see the application log\n")

    def _report(self, query: Mapping[str, list[str]]) -> None:
        from otel_tokens._internal.report import DEFAULT_BY, render_report

        fmt = (query.get("format") or ["text"])[0]
        by = (query.get("by") or [",".join(DEFAULT_BY)])[0]
        stats, book = self.source()
        try:
            text = render_report(stats, fmt, by=by, price_book=book)
        except ValueError as err:
            self._send(400, "text/plain; charset=utf-8", f"{err}\n")
            return
        types = {"json": "application/json", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8",
                 "markdown": "text/markdown; charset=utf-8"}
        self._send(200, types.get(fmt, "text/plain; charset=utf-8"), text)

    def do_POST(self) -> None:  # noqa: N802
        self._send(405, "text/plain; charset=utf-8", "read-only: use GET\n")

    do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

    def _send(self, status: int, content_type: str, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug("otel_tokens live page: " + format, *args)


def serve_runtime(runtime: Callable[[], Any], **options: Any) -> LiveServer:
    """The live page of this process: each request reads the runtime's statistics."""

    def source() -> tuple[dict[str, Any], Any]:
        current = runtime()
        return current.statistics(), current.price_book

    return LiveServer(source, **options)


class _LogSource:
    """A usage log's statistics, re-read when the file changes (size or modification time)."""

    def __init__(self, path: str, budgets: Any = (), price_book: Any = None) -> None:
        self.path = path
        self.budgets = budgets
        self.price_book = price_book
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._stats: dict[str, Any] | None = None

    def __call__(self) -> tuple[dict[str, Any], Any]:
        from otel_tokens._internal.report import budgets_from_usage_lines, stats_from_usage_lines
        from otel_tokens._internal.usage_log import read_usage_log

        with self._lock:
            try:
                status = os.stat(self.path)
                seen: tuple[int, int] | None = (status.st_size, status.st_mtime_ns)
            except FileNotFoundError:
                seen = None
            if self._stats is None or seen != self._seen:
                lines = read_usage_log(self.path)[0] if seen is not None else []
                stats = stats_from_usage_lines(lines)
                if self.budgets:
                    stats["budgets"] = budgets_from_usage_lines(lines, self.budgets)
                self._stats, self._seen = stats, seen
            if self.price_book is None:  # built once: recommendations reprice on it every request
                from otel_tokens._internal.pricing import PriceBook

                self.price_book = PriceBook()
            return dict(self._stats), self.price_book


def serve_usage_log(path: str, *, budgets: Any = (), price_book: Any = None, **options: Any) -> LiveServer:
    """The live page of a usage log (another process may be appending to it)."""
    return LiveServer(_LogSource(path, budgets, price_book), **options)


__all__ = ["LiveServer", "serve_runtime", "serve_usage_log"]

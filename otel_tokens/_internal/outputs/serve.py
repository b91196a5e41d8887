"""The live page: a small HTTP server on loopback for the running process's statistics or a usage log.

    GET /                      the HTML report, refreshing itself from /api/statistics
    GET /api/statistics        the get_statistics() JSON
    GET /api/report?format=F   the report (text, markdown, json, csv, html); optional &by=agent,model

Off unless started; binds 127.0.0.1 unless told otherwise; serves only aggregates (no prompt or
completion text ever reaches the statistics). Runs in a daemon thread; :meth:`LiveServer.close` stops it.

On loopback it answers only requests whose ``Host`` is a loopback name or the bound address (403
otherwise), so a web page that rebinds its own DNS name to 127.0.0.1 cannot read the statistics. With a
token (``token=`` or ``OTEL_TOKENS_SERVE_TOKEN``) every request must carry it, as ``?token=`` or
``Authorization: Bearer``; the page passes it on to its API requests.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from otel_tokens._internal.accounting.usage_log import read_usage_log

# Imported here, not where a request needs them: requests are served on threads, which import nothing.
from otel_tokens._internal.base.formatting import machine_values
from otel_tokens._internal.base.settings import OTEL_TOKENS_SERVE_TOKEN
from otel_tokens._internal.outputs.html_report import render_html
from otel_tokens._internal.outputs.report import (
    DEFAULT_BY,
    budgets_from_usage_lines,
    render_report,
    stats_from_usage_lines,
    with_recommendations,
)
from otel_tokens._internal.pricing.book import PriceBook

_logger = logging.getLogger("otel_tokens")
_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s]*")
_TOKEN_CHARACTERS = re.compile(r"[!-~]+")

# (statistics, price book) for each request.
Source = Callable[[], tuple[dict[str, Any], Any]]


class LiveServer:
    """A running live page; ``url``, ``host``, ``port``, ``close()``; a context manager."""

    def __init__(self, source: Source, *, host: str = "127.0.0.1", port: int = 8765, interval_s: float = 5.0,
                 title: str = "otel-tokens live usage", token: str | None = None) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in 0-65535 (0: any free port), got {port!r}")
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        if isinstance(interval_s, bool) or not isinstance(interval_s, int | float) or not (
                math.isfinite(interval_s) and interval_s >= 0.1):
            raise ValueError(f"interval_s must be a number of seconds >= 0.1, got {interval_s!r}")
        token = _checked_token(token)
        handler = type("Handler", (_Handler,), {"source": staticmethod(source), "interval_s": float(interval_s),
                                                "title": title, "token": token})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as err:
            raise OSError(err.errno, f"cannot serve on {host}:{port}: {err.strerror or err}") from err
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._token = token
        loopback = _is_loopback(host)
        handler.allowed_hosts = _loopback_names(host) if loopback else None
        handler.bound_port = self.port
        if not loopback:
            advice = "" if token else f"; require a token with token= or {OTEL_TOKENS_SERVE_TOKEN}"
            _logger.warning("the live page on %s:%s is reachable from other machines%s",
                            host, self.port, advice)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otel-tokens-serve", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def page_url(self) -> str:
        """``url`` with ``?token=...`` when a token is required: the address to open."""
        return f"{self.url}?{urlencode({'token': self._token})}" if self._token else self.url

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


def _checked_token(token: str | None) -> str | None:
    """The token argument, else OTEL_TOKENS_SERVE_TOKEN; a bad one raises without showing it (a secret)."""
    name = "token"
    if token is None:
        name, token = OTEL_TOKENS_SERVE_TOKEN, os.environ.get(OTEL_TOKENS_SERVE_TOKEN, "").strip() or None
        if token is None:
            return None
    if not isinstance(token, str):
        raise ValueError(f"{name} must be a string, got {type(token).__name__}")
    if not _TOKEN_CHARACTERS.fullmatch(token):
        raise ValueError(f"{name} must be printable ASCII without spaces (e.g. from secrets.token_urlsafe()); "
                         "the value given, not shown here, is not")
    return token


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_names(host: str) -> frozenset[str]:
    """Host header names (without port) of a loopback server; any 127.x address is accepted too."""
    bound = f"[{host}]" if ":" in host else host
    return frozenset({"localhost", "127.0.0.1", "[::1]", bound.lower()})


def _host_allowed(header: str | None, allowed: frozenset[str], port: int) -> bool:
    """Whether a Host header names this loopback server: an allowed name or 127.x, and its port if any."""
    header = (header or "").strip().lower()
    if header.startswith("["):
        name, _, rest = header.partition("]")
        name += "]"
        if rest and not rest.startswith(":"):
            return False
        given_port = rest[1:]
    else:
        name, _, given_port = header.partition(":")
    if given_port and given_port != str(port):
        return False
    if name in allowed:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return isinstance(address, ipaddress.IPv4Address) and address.is_loopback


class _Handler(BaseHTTPRequestHandler):
    source: Source
    interval_s: float
    title: str
    token: str | None
    allowed_hosts: frozenset[str] | None  # None: not on loopback, any Host
    bound_port: int
    server_version = "otel-tokens"

    def _refused(self, query: Mapping[str, list[str]]) -> bool:
        """Answers 403 for a foreign Host and 401 for a missing or wrong token; True when it did."""
        if self.allowed_hosts is not None and not _host_allowed(self.headers.get("Host"), self.allowed_hosts,
                                                                 self.bound_port):
            self._send(403, "text/plain; charset=utf-8", "forbidden: this page answers only to its loopback "
                                                         f"address, e.g. http://127.0.0.1:{self.bound_port}/\n")
            return True
        if self.token is not None:
            scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer":
                given = (query.get("token") or [""])[0]
            if not hmac.compare_digest(given.strip().encode("utf-8"), self.token.encode("utf-8")):
                self._send(401, "text/plain; charset=utf-8", "a token is required: open the URL printed at start "
                                                             "(?token=...) or send Authorization: Bearer\n",
                           (("WWW-Authenticate", "Bearer"),))
                return True
        return False

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if self._refused(query):
            return
        try:
            if parts.path in ("/", "/index.html"):
                stats, book = self.source()
                page = render_html(with_recommendations(stats, book), title=self.title,
                                   live_interval_s=self.interval_s)
                self._send(200, "text/html; charset=utf-8", page)
            elif parts.path == "/api/statistics":

                stats, book = self.source()
                body = json.dumps(machine_values(dict(with_recommendations(stats, book))), allow_nan=False)
                self._send(200, "application/json", body)
            elif parts.path == "/api/report":
                self._report(query)
            else:
                self._send(404, "text/plain; charset=utf-8", "not found: try /, /api/statistics or /api/report\n")
        except Exception:
            _logger.exception("the live page failed to answer %s", parts.path)
            self._send(500, "text/plain; charset=utf-8", "internal error; see the application log\n")

    def _report(self, query: Mapping[str, list[str]]) -> None:
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
        if not self._refused(parse_qs(urlsplit(self.path).query)):
            self._send(405, "text/plain; charset=utf-8", "read-only: use GET\n")

    do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

    def _send(self, status: int, content_type: str, body: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line carries ?token=...; the log never does.
        _logger.debug("live page: %s", _TOKEN_IN_QUERY.sub(r"\1***", format % args))


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

                self.price_book = PriceBook()
            return dict(self._stats), self.price_book


def serve_usage_log(path: str, *, budgets: Any = (), price_book: Any = None, **options: Any) -> LiveServer:
    """The live page of a usage log (another process may be appending to it)."""
    return LiveServer(_LogSource(path, budgets, price_book), **options)


__all__ = ["LiveServer", "serve_runtime", "serve_usage_log"]

"""A loopback Bedrock Runtime: botocore talks to it over its real HTTP stack (urllib3, SigV4 signing,
the rest-json and event-stream parsers) and gets recorded responses in Bedrock's wire format.

JSON responses are served as recorded. Streams are recorded as their events (readable JSON) and framed
here as AWS event-stream messages: a prelude (total length, headers length, CRC32), typed headers, the
payload and a CRC32 of the whole message; ``tests/providers/test_bedrock.py`` checks the framing with
botocore's own ``EventStreamBuffer``. ``InvokeModelWithResponseStream`` chunk payloads are recorded as
the model's JSON and sent base64-encoded in ``{"bytes": ...}``, as Bedrock sends them.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

RECORDINGS = Path(__file__).parent / "recordings" / "bedrock"
_STRING = 7  # event-stream header value type: UTF-8 string


def load(name: str) -> dict:
    return json.loads((RECORDINGS / name).read_text())


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", _STRING, len(raw_value)) + raw_value


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message."""
    header_bytes = b"".join(_header(name, value) for name, value in headers.items())
    prelude = struct.pack("!II", 12 + len(header_bytes) + len(payload) + 4, len(header_bytes))
    message = prelude + struct.pack("!I", binascii.crc32(prelude)) + header_bytes + payload
    return message + struct.pack("!I", binascii.crc32(message))


def event_frame(event: dict) -> bytes:
    """A recorded event: ``{"event": type, "payload": {...}}``, ``{"chunk": {...}}`` (InvokeModel
    stream chunk) or ``{"exception": type, "payload": {...}}``."""
    if "chunk" in event:
        data = json.dumps(event["chunk"]).encode()
        payload = json.dumps({"bytes": base64.b64encode(data).decode()}).encode()
        headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    elif "exception" in event:
        payload = json.dumps(event["payload"]).encode()
        headers = {
            ":exception-type": event["exception"], ":content-type": "application/json", ":message-type": "exception",
        }
    else:
        payload = json.dumps(event["payload"]).encode()
        headers = {":event-type": event["event"], ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, payload)


def stream_body(recording: dict) -> bytes:
    return b"".join(event_frame(event) for event in recording["events"])


class BedrockServer:
    """Answers ``/model/{modelId}/{converse,converse-stream,invoke,invoke-with-response-stream}`` with
    queued recordings; with none queued, ``other.json`` (a non-runtime Bedrock API). A recording with
    ``cut_after`` sends only that many body bytes, then drops the connection."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self._queue: deque[str] = deque()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self._answer(self.rfile.read(length))

            def _answer(self, body: bytes) -> None:
                server.requests.append((self.command, unquote(self.path), dict(self.headers), body))
                name = server._queue.popleft() if server._queue else "other.json"
                status, headers, content = server.response(name)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                cut = load(name).get("cut_after")
                if cut is not None:  # the connection drops mid-body
                    self.wfile.write(content[:cut])
                    self.close_connection = True
                    return
                self.wfile.write(content)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def reply(self, *recordings: str) -> BedrockServer:
        self._queue.extend(recordings)
        return self

    def response(self, name: str) -> tuple[int, dict[str, str], bytes]:
        recording = load(name)
        headers = {"x-amzn-requestid": "5c1e2f3a-7b9d-4e60-a1f8-93d2c4b6e017", **recording.get("headers", {})}
        if "events" in recording:
            headers.setdefault("content-type", "application/vnd.amazon.eventstream")
            return recording.get("status", 200), headers, stream_body(recording)
        body = recording["body"]
        content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
        return recording.get("status", 200), headers, content

    def __enter__(self) -> BedrockServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5)

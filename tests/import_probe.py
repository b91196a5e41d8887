"""Run as a script: a scenario of otel-tokens in use, printing (as JSON) every module imported off the main
thread either by a thread otel-tokens started or by otel-tokens code running on an application thread.

An import racing the application's own imports can hand it a half-initialised module, so neither may
happen: what a thread needs is imported before it starts, and the call path imports nothing.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import sys
import threading
import time

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "otel_tokens")
OUR_THREADS = ("otel_tokens", "otel-tokens")
found: list[dict[str, str]] = []


def _importer() -> str | None:
    """The file of the nearest frame outside the import machinery and this probe."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith("<frozen importlib") or name == __file__ or "importlib" in name):
            return name
        frame = frame.f_back
    return None


class Probe(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        thread = threading.current_thread()
        if thread is threading.main_thread():
            return None
        importer = _importer() or ""
        ours = thread.name.startswith(OUR_THREADS) or importer.startswith(PACKAGE_DIR)
        if ours and fullname not in sys.modules:
            found.append({"module": fullname, "thread": thread.name, "importer": importer})
        return None


def main(scenario: str) -> None:
    import atexit

    # Registered first, so it runs last: after otel-tokens' own exit work (report, provider shutdown).
    atexit.register(lambda: print(json.dumps(found), flush=True))
    sys.meta_path.insert(0, Probe())
    SCENARIOS[scenario]()


# -- scenarios ------------------------------------------------------------------------------------


def _openai_client(handler):
    import httpx2
    import openai

    http_client = getattr(openai, "DefaultHttpx2Client", None) or openai.DefaultHttpxClient
    return openai.OpenAI(api_key="sk-test-probe-0000000000000000", base_url="https://api.openai.com/v1",
                         max_retries=0, http_client=http_client(transport=httpx2.MockTransport(handler)))


def _chat_handler(request):
    import httpx2

    body = json.loads(request.content or b"{}")
    if body.get("stream"):
        chunks = [
            {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello there"}}]},
            {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]  # no usage chunk: the call is estimated
        text = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
        return httpx2.Response(200, text=text, headers={"content-type": "text/event-stream"})
    return httpx2.Response(200, json={
        "id": "c0", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    })


def _calls_on_a_worker_thread() -> None:
    """The app's own thread pool makes calls (plain, streamed without usage, failing) under a budget."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx2
    import openai

    import otel_tokens

    def work() -> None:
        client = _openai_client(_chat_handler)
        messages = [{"role": "user", "content": "hello"}]
        with otel_tokens.agent("researcher"), otel_tokens.workflow("probe"):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,
                                                     stream_options=None):
                pass
            failing = _openai_client(lambda request: httpx2.Response(500, json={"error": {"message": "down"}}))
            try:
                failing.chat.completions.create(model="gpt-4o-mini", messages=messages)
            except openai.APIError:
                pass
        otel_tokens.get_statistics()

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(work) for _ in range(2)]:
            future.result()
    time.sleep(0.6)  # the budget store's flusher runs every 0.25 s


def auto_and_calls() -> None:
    """`import otel_tokens.auto` with a usage log, budgets, a shared store and a report at exit."""
    import otel_tokens.auto  # noqa: F401

    _calls_on_a_worker_thread()


def serve_page() -> None:
    import urllib.request

    import otel_tokens

    otel_tokens.instrument()
    _calls_on_a_worker_thread()
    server = otel_tokens.serve(port=0)
    try:
        for path in ("/", "/api/statistics"):
            with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=10) as response:
                response.read()
    finally:
        server.close()


def async_calls() -> None:
    """AsyncOpenAI under asyncio: with a shared store, each budget check's round trip runs on a worker."""
    import asyncio

    import httpx2
    import openai

    import otel_tokens

    otel_tokens.instrument()
    http_client = getattr(openai, "DefaultAsyncHttpx2Client", None) or openai.DefaultAsyncHttpxClient

    async def handler(request):
        return _chat_handler(request)

    async def main() -> None:
        client = openai.AsyncOpenAI(api_key="sk-test-probe-0000000000000000", base_url="https://api.openai.com/v1",
                                    max_retries=0, http_client=http_client(transport=httpx2.MockTransport(handler)))
        messages = [{"role": "user", "content": "hello"}]
        with otel_tokens.agent("researcher"), otel_tokens.workflow("probe"):
            for _ in range(3):
                await client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    asyncio.run(main())
    time.sleep(0.6)


SCENARIOS = {"auto_and_calls": auto_and_calls, "serve_page": serve_page, "async_calls": async_calls}

if __name__ == "__main__":
    main(sys.argv[1])

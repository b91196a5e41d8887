"""A worker process for the fleet and restart tests: the real OpenAI SDK, instrumented from the
environment (OTEL_TOKENS_STORE, OTEL_TOKENS_BUDGETS), calling the fake server.

    python -m tests.budgets.worker fleet BASE_URL THREADS ATTEMPTS
        Each thread makes ATTEMPTS calls (a blocked one waits 20 ms and tries again); prints one JSON
        line: {"sent": calls that went out, "blocked": ..., "cost": their summed settled cost}.
    python -m tests.budgets.worker restart BASE_URL SLOW_BASE_URL CALLS
        Makes CALLS calls, printing "settled <cost>" after each, then "hanging" and a call to a server
        that does not answer: the test kills the process with SIGKILL while that call is in flight.
    python -m tests.budgets.worker gemini RUNS
        Runs the Gemini workflow of issue #20 (the real google-genai SDK over recorded replies) RUNS times
        with no limit; prints one JSON line: {"calls": ..., "cost": ...}.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import openai

import otel_tokens
from tests.budgets.helpers import ask, run_workflow


def fleet(base_url: str, threads: int, attempts: int) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    lock = threading.Lock()
    totals = {"sent": 0, "blocked": 0}

    def run() -> None:
        for _ in range(attempts):
            try:
                ask(client)
            except otel_tokens.BudgetExceededError:
                with lock:
                    totals["blocked"] += 1
                time.sleep(0.02)
                continue
            with lock:
                totals["sent"] += 1

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stats = otel_tokens.get_statistics()
    print(json.dumps({**totals, "cost": stats["total_cost_usd"], "calls": stats["total_calls"]}), flush=True)


def restart(base_url: str, slow_base_url: str, calls: int) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    for _ in range(calls):
        before = otel_tokens.get_statistics()["total_cost_usd"]
        ask(client)
        print(f"settled {otel_tokens.get_statistics()['total_cost_usd'] - before!r}", flush=True)
    print("hanging", flush=True)
    slow = openai.OpenAI(base_url=slow_base_url, api_key="sk-test", max_retries=0, timeout=600)
    ask(slow)


def gemini(runs: int) -> None:
    for _ in range(runs):
        run_workflow(None)
    stats = otel_tokens.get_statistics()
    print(json.dumps({"calls": stats["total_calls"], "cost": stats["total_cost_usd"]}), flush=True)


def main() -> None:
    otel_tokens.instrument()
    mode, *args = sys.argv[1:]
    if mode == "fleet":
        fleet(args[0], int(args[1]), int(args[2]))
    elif mode == "gemini":
        gemini(int(args[0]))
    else:
        restart(args[0], args[1], int(args[2]))
    otel_tokens.uninstrument()


if __name__ == "__main__":
    main()

"""What otel-tokens adds to an OpenAI call: bare vs instrumented, same mocked call, separate processes.

    python benchmarks/overhead.py            # 5 interleaved rounds, prints medians
    python benchmarks/overhead.py --rounds 9 --calls 3000
    python benchmarks/overhead.py --instructions   # instructions per call under callgrind (load-proof)

Modes: ``bare`` (the SDK alone), ``floor`` (a minimal hand-written wrapper that emits exactly the span,
attributes and metric points otel-tokens emits for the same call, with no parsing, pricing, ledger or
budgets: what the OpenTelemetry SDK itself costs) and ``instrumented`` (otel-tokens). Instrumented minus
floor is what our own code costs.

Kinds: a chat call (sync, async), a 200-chunk stream as most callers make it (otel-tokens asks the
server for usage and hides the extra chunk), and the same stream with the caller asking for usage
itself (both modes then read identical chunks, which isolates the proxy's per-chunk cost).

The SDK runs over its real HTTP stack against an in-process mock transport, so what is measured is the
SDK plus our wrapper, not the network (the workload is ``_workload.py``'s, shared with ``peers.py``). Instrumented runs record everything: a span through a
BatchSpanProcessor, the ledger span processor, every metric (read by an in-memory reader), and cost.
Each process warms up, then times batches; a round runs bare and instrumented back to back so the
machine's drift hits both alike. Reported: median per-call microseconds and the difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import _workload
from _workload import KINDS, per_call

ROOT = Path(__file__).resolve().parent.parent
MODES = ("bare", "floor", "instrumented")
LIBRARY = {"bare": "bare", "floor": "floor", "instrumented": "otel-tokens"}


def child(kind: str, mode: str, calls: int, chunks: int, count_only: bool = False) -> dict:
    result = per_call(LIBRARY[mode], kind, calls, chunks, count_only)
    return {**result, "mode": mode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="calls per process (streams: a tenth)")
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per call under valgrind's callgrind instead of timing")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of: " + ", ".join(KINDS))
    parser.add_argument("--child", nargs=2, metavar=("KIND", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--count-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, mode = args.child
        calls = args.calls // 10 if kind.startswith("stream") and not args.count_only else args.calls
        print(json.dumps(child(kind, mode, calls, args.chunks, args.count_only)))
        return
    _workload.write_bytecode()
    kinds = tuple(kind for kind in args.kinds.split(",") if kind)
    if args.instructions:
        instructions(args.chunks, kinds)
        return

    results: dict[tuple[str, str], list[float]] = {}
    for round_index in range(args.rounds):
        for kind in KINDS:
            modes = MODES if round_index % 2 == 0 else tuple(reversed(MODES))
            for mode in modes:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", kind, mode, "--calls", str(args.calls),
                     "--chunks", str(args.chunks)],
                    capture_output=True, text=True, check=True, cwd=ROOT,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault((kind, mode), []).append(result["us_per_call"])

    print(f"{'call':<14}{'bare µs':>10}{'floor µs':>10}{'otel-tokens µs':>16}{'floor added':>13}"
          f"{'ours added':>12}{'over floor':>12}")
    added = {}
    for kind in KINDS:
        bare = statistics.median(results[(kind, "bare")])
        floor = statistics.median(results[(kind, "floor")])
        inst = statistics.median(results[(kind, "instrumented")])
        added[kind] = inst - bare
        print(f"{kind:<14}{bare:>10.1f}{floor:>10.1f}{inst:>16.1f}{floor - bare:>13.1f}{added[kind]:>12.1f}"
              f"{inst - floor:>12.1f}")
    # A stream pays the per-call cost once (span, metrics) plus a per-chunk cost.
    per_chunk = (added["stream_usage"] - added["sync"]) / args.chunks
    print(f"per stream chunk: {per_chunk:.2f} µs  ((stream_usage added - sync added) / {args.chunks} chunks)")
    print(f"exact usage for a caller who did not ask (one more chunk, usage fields): "
          f"{added['stream'] - added['stream_usage']:.1f} µs per stream")
    print(f"({args.rounds} interleaved rounds; medians of per-process medians)")


def _instructions_of(kind: str, mode: str, calls: int, chunks: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--child", kind, mode, "--calls", str(calls), "--chunks", str(chunks), "--count-only"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    (line,) = [line for line in out.stderr.splitlines() if "Collected :" in line]
    return int(line.rsplit(":", 1)[1])


def instructions(chunks: int, kinds: tuple[str, ...]) -> None:
    """Instructions per call: (count at 2n calls - count at n calls) / n, so start-up and warm-up cancel.
    Deterministic for the same inputs, whatever else the machine is doing."""
    print(f"{'call':<14}{'bare':>12}{'floor':>12}{'otel-tokens':>14}{'floor added':>13}{'ours added':>12}"
          f"{'over floor':>12}   (instructions per call)")
    for kind in kinds:
        n = 20 if kind.startswith("stream") else 200
        per_call = {}
        for mode in MODES:
            per_call[mode] = (_instructions_of(kind, mode, 2 * n, chunks) - _instructions_of(kind, mode, n, chunks)) / n
        bare, floor, ours = per_call["bare"], per_call["floor"], per_call["instrumented"]
        print(f"{kind:<14}{bare:>12,.0f}{floor:>12,.0f}{ours:>14,.0f}{floor - bare:>13,.0f}{ours - bare:>12,.0f}"
              f"{ours - floor:>12,.0f}")


if __name__ == "__main__":
    main()

"""What otel-tokens costs at start-up: import + instrument, the first call, and which imports dominate.

    .venv/bin/python benchmarks/startup.py                 # 7 rounds of fresh processes, then -X importtime
    .venv/bin/python benchmarks/startup.py --rounds 15 --top 20

Each round runs, each in a fresh process (medians [min..max] over rounds):
- ``auto, fresh process``: ``import otel_tokens.auto`` as an app's first line (nothing else imported; the
  SDK patches wait for openai's import). Includes building providers from the ``OTEL_*`` environment.
- ``auto, after openai``: the app has imported openai and built its client, then ``import
  otel_tokens.auto`` (which now patches openai), then the first call.
- ``instrument(), after openai``: the app has imported openai and the OpenTelemetry SDK and built its
  providers, then ``import otel_tokens`` and ``otel_tokens.instrument(tracer_provider=..., meter_provider=...)``
  (the set-up ``peers.py`` compares), then the first call.
- ``bare``: the first call with no instrumentation; "first call vs bare" subtracts it, same round.
The first call goes over the mock transport of ``_workload.py``, so it is the SDK's and our first-call
work (price data, lazily built tables), not the network.

Then ``python -X importtime`` for ``import otel_tokens`` and ``import otel_tokens.auto`` (medians over
``--importtime-runs`` runs): the heaviest imports by self time, summed per package, and a cProfile of
``import otel_tokens.auto`` listing our functions by cumulative time, so the lead can see what to make
lazy and what work runs at import.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _workload

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODES = ("bare", "auto-fresh", "auto", "instrument")
LABELS = {"auto-fresh": "`import otel_tokens.auto`, fresh process", "auto": "`import otel_tokens.auto`, after openai",
          "instrument": "`otel_tokens.instrument()`, after openai"}


def child(mode: str) -> dict:
    if mode == "auto-fresh":
        start = time.perf_counter()
        import otel_tokens.auto  # noqa: F401

        return {"import_instrument_ms": (time.perf_counter() - start) * 1e3}
    import _workload

    if mode == "instrument":
        return _workload.startup("otel-tokens")
    harness = _workload.Harness("bare")
    start = time.perf_counter()
    if mode == "auto":
        import otel_tokens.auto  # noqa: F401
    import_instrument = time.perf_counter() - start
    start = time.perf_counter()
    harness.sync_call()
    return {"import_instrument_ms": import_instrument * 1e3, "first_call_ms": (time.perf_counter() - start) * 1e3}


def run(mode: str) -> dict:
    # No OTEL_* exporter set: auto builds providers that export nothing, as for an app with no collector.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTEL_TOKENS_"))}
    out = subprocess.run([sys.executable, str(Path(__file__)), "--child", mode], capture_output=True, text=True,
                         cwd=ROOT, env=env)
    if out.returncode:
        raise SystemExit(f"{mode} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def spread(values: list[float], sign: bool = False) -> str:
    fmt = "{:+.1f}" if sign else "{:.1f}"
    middle = fmt.format(statistics.median(values))
    return middle if len(values) == 1 else f"{middle} [{fmt.format(min(values))}..{fmt.format(max(values))}]"


def timings(rounds: int) -> list[str]:
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for mode in MODES:  # compiles bytecode and warms the file cache outside the rounds
        run(mode)
    for round_index in range(rounds):
        for mode in MODES if round_index % 2 == 0 else tuple(reversed(MODES)):
            results[mode].append(run(mode))
    bare = [result["first_call_ms"] for result in results["bare"]]
    lines = ["| start-up | import + instrument, ms | first call vs bare, ms |", "|---|---|---|"]
    for mode in MODES[1:]:
        startup = [result["import_instrument_ms"] for result in results[mode]]
        first = [result["first_call_ms"] - bare_ms for result, bare_ms in zip(results[mode], bare, strict=True)
                 if "first_call_ms" in result]
        lines.append(f"| {LABELS[mode]} | {spread(startup)} | {spread(first, sign=True) if first else '—'} |")
    lines.append("")
    lines.append(f"bare first call: {spread(bare)} ms")
    return lines


IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
MARK = "-- statement --"


def group(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "otel_tokens":
        return module  # our own modules one by one
    return ".".join(parts[:2]) if parts[0] in ("opentelemetry", "openai") else parts[0]


def importtime(statement: str, runs: int, top: int) -> list[str]:
    """The statement's imports by self time (a module's own execution, its imports excluded), summed by
    package. Self times, not the tree: modules that ``importlib.import_module`` loads are not logged,
    so their time lands in the importer's self time and the printed nesting cannot be trusted."""
    by_group: dict[str, list[int]] = {}
    totals = []
    for _ in range(runs):
        code = f"import sys; sys.stderr.write({MARK!r} + '\\n'); {statement}"
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                             cwd=ROOT, check=True)
        sums: dict[str, int] = {}
        for match in IMPORTTIME.finditer(out.stderr.split(MARK, 1)[1]):
            self_us, _cumulative, _indent, name = match.groups()
            sums[group(name)] = sums.get(group(name), 0) + int(self_us)
        totals.append(sum(sums.values()))
        for name, value in sums.items():
            by_group.setdefault(name, []).append(value)
    medians = {name: statistics.median(values + [0] * (runs - len(values))) for name, values in by_group.items()}
    lines = [f"`{statement}`: {statistics.median(totals) / 1e3:.1f} ms of imports (median of {runs}); "
             f"heaviest by self ms, summed per package (our modules one by one):"]
    for name, value in sorted(medians.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"  {value / 1e3:7.1f}  {name}")
    return lines


def profile(statement: str, top: int) -> list[str]:
    """Our functions that run during the statement, by cumulative time under cProfile: the work done at
    import beyond loading modules (building providers, instrumenting, loading data)."""
    code = ("import cProfile, io, pstats, sys\n"
            "profiler = cProfile.Profile()\n"
            f"profiler.runctx({statement!r}, globals(), {{}})\n"
            "stream = io.StringIO()\n"
            "pstats.Stats(profiler, stream=stream).sort_stats('cumulative').print_stats(r'otel_tokens/', int(sys.argv[1]))\n"
            "print(stream.getvalue())")
    out = subprocess.run([sys.executable, "-c", code, str(top)], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    rows = [line for line in out.stdout.splitlines() if "otel_tokens/" in line and line.split()[0][0].isdigit()]
    lines = [f"`{statement}` under cProfile: our functions by cumulative ms (calls):"]
    for row in rows:
        fields = row.split(None, 5)
        where = fields[5].split("otel_tokens/", 1)[1]
        lines.append(f"  {float(fields[3]) * 1e3:7.1f}  ({fields[0]})  otel_tokens/{where}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--importtime-runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    _workload.write_bytecode()
    load_before = os.getloadavg()[0]
    started = time.time()
    lines = timings(args.rounds)
    for statement in ("import otel_tokens", "import otel_tokens.auto"):
        lines += ["", *importtime(statement, args.importtime_runs, args.top)]
    lines += ["", *profile("import otel_tokens.auto", args.top)]
    print("\n".join(lines))
    print(f"\ncommand: python benchmarks/startup.py {' '.join(sys.argv[1:])}  ({time.time() - started:.0f} s; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()

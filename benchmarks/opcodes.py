"""Where a call's time goes, deterministically: Python opcodes executed per sync call, by component.

    .venv/bin/python benchmarks/opcodes.py              # bare, floor, otel-tokens (+ peers if peers.py built them)
    .venv/bin/python benchmarks/opcodes.py --top 40     # also our 40 costliest functions

Each library runs ``_workload.py``'s sync chat call in a fresh process (the peers in the venvs ``peers.py``
builds under ``.bench-venvs/``), warms up, then traces ``--calls`` calls with ``sys.settrace`` opcode
events and counts opcodes per function. Opcode counts do not depend on the machine's load, and on this
workload they track callgrind's instruction counts closely (about 80 instructions an opcode for every
library), so they explain ``peers.py --instructions`` figures function by function. What they miss is
work in C (the SDK's pydantic parsing, ``object.__setattr__`` in frozen dataclasses), which is why
``--instructions`` remains the figure of record.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER_VENVS = ROOT / ".bench-venvs"

# (component, path prefix) in order; the first match wins. Our own code is split by job.
COMPONENTS = (
    ("ours: engine and adapter (parse the request and response)", ("otel_tokens/_internal/calls/engine.py",
                                                                    "otel_tokens/_internal/providers/",
                                                                    "otel_tokens/_internal/calls/streams.py",
                                                                    "otel_tokens/_internal/calls/context.py")),
    ("ours: recorder (span and metric attributes, the record)", ("otel_tokens/_internal/calls/recorder.py",
                                                                 "otel_tokens/_internal/base/records.py")),
    ("ours: cost", ("otel_tokens/_internal/pricing/book.py", "otel_tokens/_internal/pricing/rates.py")),
    ("ours: budgets", ("otel_tokens/_internal/budgets/manager.py", "otel_tokens/_internal/budgets/request.py")),
    ("ours: totals (ledger, metric totals, activity)", ("otel_tokens/_internal/accounting/ledger.py",
                                                        "otel_tokens/_internal/base/instruments.py",
                                                        "otel_tokens/_internal/accounting/analytics.py")),
    ("ours: other", ("otel_tokens/",)),
    ("floor wrapper", ("benchmarks/floor.py",)),
    ("dataclass __init__ (records)", ("<string>",)),
    ("peer instrumentation", ("opentelemetry/instrumentation/", "opentelemetry/util/genai/", "openinference/")),
    ("OpenTelemetry SDK and API", ("opentelemetry/",)),
    ("wrapt", ("wrapt/",)),
)


def _component(filename: str) -> str:
    path = filename.split("site-packages/")[-1]
    for root in ("otel_tokens/", "benchmarks/"):  # our package from any checkout (--ours-python)
        if root in path:
            path = path[path.index(root):]
    for name, prefixes in COMPONENTS:
        if path.startswith(prefixes):
            return name
    return "openai SDK, httpx2, stdlib"


def child(library: str, calls: int) -> dict:
    sys.path.insert(0, str(HERE))
    import _workload

    harness = _workload.Harness(library)
    harness.instrument()
    for _ in range(200):
        harness.sync_call()
    counts: collections.Counter = collections.Counter()

    def tracer(frame, event, arg):  # noqa: ANN001, ANN202 - sys.settrace's signature
        if event == "call":
            frame.f_trace_opcodes = True
        elif event == "opcode":
            code = frame.f_code
            counts[(code.co_filename, code.co_name)] += 1
        return tracer

    sys.settrace(tracer)
    for _ in range(calls):
        harness.sync_call()
    sys.settrace(None)
    components: collections.Counter = collections.Counter()
    functions = {}
    for (filename, name), count in counts.items():
        component = _component(filename)
        components[component] += count / calls
        if component.startswith("ours"):
            short = filename.split("otel_tokens/", 1)[-1]  # the same name from any checkout
            functions[f"{short}:{name}"] = count / calls
    return {"total": sum(counts.values()) / calls, "components": dict(components), "functions": functions}


def run(python: Path, library: str, calls: int) -> dict:
    out = subprocess.run([str(python), __file__, "--child", library, "--calls", str(calls)],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"{library} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--top", type=int, default=0, help="also list our N costliest functions")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.calls)))
        return
    ours = Path(sys.executable)
    libraries = {"bare": ours, "floor": ours, "otel-tokens": ours}
    for library, venv in (("contrib", "contrib"), ("openinference", "openinference")):
        python = PEER_VENVS / venv / "bin" / "python"
        if python.exists():
            libraries[library] = python
    results = {library: run(python, library, args.calls) for library, python in libraries.items()}
    bare = results["bare"]
    names = [name for name, _ in COMPONENTS] + ["openai SDK, httpx2, stdlib"]
    print("| opcodes per sync call, added to bare | " + " | ".join(list(results)[1:]) + " |")
    print("|---|" + "---|" * (len(results) - 1))
    for name in names:
        row = [results[lib]["components"].get(name, 0) - bare["components"].get(name, 0) for lib in list(results)[1:]]
        if any(abs(value) >= 1 for value in row):
            print(f"| {name} | " + " | ".join(f"{value:+,.0f}" for value in row) + " |")
    print("| **total** | " + " | ".join(f"**{results[lib]['total'] - bare['total']:+,.0f}**"
                                       for lib in list(results)[1:]) + " |")
    print(f"\nbare: {bare['total']:,.0f} opcodes per sync call. command: python benchmarks/opcodes.py "
          + " ".join(sys.argv[1:]))
    if args.top:
        print(f"\nour {args.top} costliest functions (opcodes per call):")
        functions = sorted(results["otel-tokens"]["functions"].items(), key=lambda item: -item[1])
        for name, count in functions[: args.top]:
            print(f"{count:8.1f}  {name}")


if __name__ == "__main__":
    main()

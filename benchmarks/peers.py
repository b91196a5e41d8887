"""otel-tokens against its peers: the same OpenAI workload, each library in its own venv, fresh processes.

    python benchmarks/peers.py                     # builds .bench-venvs/ once, then 7 interleaved rounds
    python benchmarks/peers.py --rounds 3 --rss-calls 5000
    python benchmarks/peers.py --instructions      # instructions under callgrind: the same for any load

Libraries: ``bare`` (the SDK alone, the baseline), ``floor`` (``floor.py``: the least code that emits
otel-tokens' telemetry through the OpenTelemetry SDK), ``otel-tokens`` (the repo's ``.venv``, or
``--ours-python``), the OpenTelemetry contrib instrumentation ``opentelemetry-instrumentation-openai-v2``
and OpenInference's ``openinference-instrumentation-openai``. The peers get venvs under ``.bench-venvs/``
with the openai, httpx2 and OpenTelemetry versions of ours pinned. The workload is ``_workload.py``'s
(shared with ``overhead.py``): every library with a BatchSpanProcessor to a no-op exporter and a
MeterProvider with an in-memory reader, content capture off, each library at its default settings.

Each round runs every measurement for every library in a fresh process, the library order alternating,
so drift in the machine's load hits all alike. Reported per library, as medians [min..max] over rounds:
- added per sync / async call: µs per call minus bare's in the same round;
- per stream chunk: (added per 200-chunk stream, the caller asking for usage - added per sync call) / 200;
- import + instrument: ms to import the library and instrument, in a process that has already imported
  openai and the OpenTelemetry SDK and built its clients and providers;
- first call vs bare: ms of the first call after instrumenting, minus bare's first call;
- RSS growth: resident memory growth over ``--rss-calls`` sync calls after a 500-call warm-up.
``--instructions`` reports the same (less RSS) in instructions, counted by callgrind over windows that
hold only the calls or only the import + instrument (a process outside its windows is not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _workload

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = ROOT / ".bench-venvs"
LIBRARIES = ("bare", "floor", "otel-tokens", "contrib", "openinference")
PER_CALL = ("sync", "async", "stream_usage")
# Peer requirements. openai-v2 2.4b0 imports opentelemetry.util.genai.instruments, which util-genai 1.2b0
# removed, so it needs util-genai 1.1b0; it also imports httpx, which openai 3.x no longer brings.
PEERS = {
    "contrib": ("opentelemetry-instrumentation-openai-v2==2.4b0", "opentelemetry-util-genai==1.1b0", "httpx"),
    "openinference": ("openinference-instrumentation-openai==0.1.66",),
}
# What every venv must share with ours, pinned to our venv's versions.
SHARED = ("openai", "httpx2", "opentelemetry-api", "opentelemetry-sdk", "wrapt")
SHOWN = {  # versions printed with the results
    "otel-tokens": ("otel-tokens",),
    "contrib": ("opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai"),
    "openinference": ("openinference-instrumentation-openai", "openinference-instrumentation"),
}
COMMON = ("openai", "httpx2", "opentelemetry-sdk")
LABELS = {"floor": "floor (SDK work only)", "otel-tokens": "**otel-tokens**", "contrib": "OTel contrib openai-v2",
          "openinference": "OpenInference"}


def versions(python: str, names: tuple[str, ...]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\n"
            "def v(n):\n"
            "    try: return m.version(n)\n"
            "    except m.PackageNotFoundError: return None\n"
            "print(json.dumps({n: v(n) for n in sys.argv[1:]}))")
    out = subprocess.run([python, "-c", code, *names], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def build_venv(name: str, requirements: list[str]) -> str:
    """A venv under .bench-venvs/ with exactly these requirements; rebuilt only when they change."""
    path = VENVS / name
    stamp = path / "bench-requirements.txt"
    python = str(path / "bin" / "python")
    wanted = "\n".join(requirements) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"building {path} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "--pre", *requirements], check=True)
    stamp.write_text(wanted)
    return python


def pythons(ours: str | None) -> dict[str, str]:
    """The interpreter of each library: ours (bare and floor too) and one venv per peer."""
    if ours is None:
        repo_venv = ROOT / ".venv" / "bin" / "python"
        ours = str(repo_venv) if repo_venv.exists() else build_venv(
            "otel-tokens", [f"-e{ROOT}", "openai", "httpx2", "httpx"])
    ours_versions = versions(ours, (*SHARED, "httpx"))
    result = {"bare": ours, "floor": ours, "otel-tokens": ours}
    for peer, requirements in PEERS.items():
        # A bare name in a peer's requirements (httpx) is pinned to ours too, when ours has it.
        requirements = [f"{req}=={ours_versions[req]}" if ours_versions.get(req) else req for req in requirements]
        pinned = [f"{name}=={ours_versions[name]}" for name in SHARED if ours_versions[name]]
        result[peer] = build_venv(peer, [*requirements, *pinned])
    return result


def child(python: str, measure: str, library: str, args: argparse.Namespace) -> dict:
    out = subprocess.run(
        [python, str(Path(__file__)), "--child", measure, library, *child_options(measure, args)],
        capture_output=True, text=True, cwd=ROOT,
    )
    if out.returncode:
        raise SystemExit(f"{library} {measure} failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    check_recorded(library, measure, result)
    return result


def child_options(measure: str, args: argparse.Namespace) -> list[str]:
    calls = args.calls // 10 if measure.startswith("stream") else args.calls
    return ["--calls", str(calls), "--chunks", str(args.chunks), "--rss-calls", str(args.rss_calls)]


def check_recorded(library: str, measure: str, result: dict) -> None:
    """A library that silently failed to instrument would look free: every call must have made a span."""
    if library != "bare" and result.get("calls") and result["spans"] < result["calls"]:
        raise SystemExit(f"{library} {measure}: {result['spans']} spans for {result['calls']} calls")


def run_child(argv: list[str]) -> None:
    import _workload

    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2)
    parser.add_argument("--calls", type=int)
    parser.add_argument("--chunks", type=int)
    parser.add_argument("--rss-calls", type=int)
    parser.add_argument("--marks", action="store_true")
    args = parser.parse_args(argv)
    measure, library = args.child
    if measure == "startup":
        result = _workload.startup(library, marks=args.marks)
    elif measure == "rss":
        result = _workload.rss_growth(library, args.rss_calls)
    else:
        result = _workload.per_call(library, measure, args.calls, args.chunks, marks=args.marks)
    print(json.dumps(result))


def spread(values: list[float], unit: str, digits: int = 0, sign: bool = False) -> str:
    middle = statistics.median(values)
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    if len(values) == 1:
        return f"{fmt.format(middle)} {unit}"
    return f"{fmt.format(middle)} {unit} [{fmt.format(min(values))}..{fmt.format(max(values))}]"


def measure_wall(py: dict[str, str], args: argparse.Namespace) -> dict:
    measures = (*PER_CALL, "startup", "rss")
    for library in LIBRARIES:  # compiles bytecode and warms the file cache outside the rounds
        child(py[library], "startup", library, args)
    rounds: list[dict] = []
    for round_index in range(args.rounds):
        order = LIBRARIES if round_index % 2 == 0 else tuple(reversed(LIBRARIES))
        results = {}
        for measure in measures:
            for library in order:
                results[(measure, library)] = child(py[library], measure, library, args)
        rounds.append(results)
        print(f"round {round_index + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.1f}",
              file=sys.stderr)
    return {"rounds": rounds}


def wall_table(data: dict, args: argparse.Namespace) -> list[str]:
    rounds = data["rounds"]

    def added(library: str, measure: str) -> list[float]:
        return [r[(measure, library)]["us_per_call"] - r[(measure, "bare")]["us_per_call"] for r in rounds]

    lines = ["| library | added per sync call | per async call | per stream chunk | import + instrument "
             f"| first call vs bare | RSS growth over {args.rss_calls // 1000}k calls |",
             "|---|---|---|---|---|---|---|"]
    for library in LIBRARIES[1:]:
        sync, asynchronous = added(library, "sync"), added(library, "async")
        chunk = [(s - y) / args.chunks for s, y in zip(added(library, "stream_usage"), sync, strict=True)]
        startup = [r[("startup", library)]["import_instrument_ms"] for r in rounds]
        first = [r[("startup", library)]["first_call_ms"] - r[("startup", "bare")]["first_call_ms"] for r in rounds]
        rss = [r[("rss", library)]["rss_growth_mb"] for r in rounds]
        lines.append(f"| {LABELS[library]} | {spread(sync, 'µs')} | {spread(asynchronous, 'µs')} "
                     f"| {spread(chunk, 'µs', 2)} | {spread(startup, 'ms', 1)} | {spread(first, 'ms', 1, True)} "
                     f"| {spread(rss, 'MB', 1)} |")
    bare = {m: [r[(m, "bare")]["us_per_call"] for r in rounds] for m in PER_CALL}
    first = [r[("startup", "bare")]["first_call_ms"] for r in rounds]
    rss = [r[("rss", "bare")]["rss_growth_mb"] for r in rounds]
    lines.append("")
    lines.append(f"bare SDK: sync {spread(bare['sync'], 'µs')}, async {spread(bare['async'], 'µs')}, "
                 f"{args.chunks}-chunk stream {spread(bare['stream_usage'], 'µs')} per call; first call "
                 f"{spread(first, 'ms', 1)}; RSS growth {spread(rss, 'MB', 1)}.")
    return lines


def callgrind_windows(command: list[str]) -> list[int]:
    """Instructions in each window the child marks (see ``_workload.mark``): from ``on`` to the first
    ``dump`` or ``off``, then to the next. Valgrind starts with instrumentation off, so start-up and
    warm-up run at near native speed and are not counted."""
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp) / "callgrind.out"
        with open(Path(tmp) / "stderr", "w+") as stderr:
            process = subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}",
                 *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT,
                # A fixed hash seed: dict and set layouts, and so the counts, repeat from run to run.
                env={**os.environ, "PYTHONHASHSEED": "0"})
            for line in process.stdout:
                if not line.startswith("mark "):
                    continue
                # Switching instrumentation off would drop the counts: a window ends with a dump instead.
                option = ["-i", "on"] if line.split()[1] == "on" else ["-d"]
                subprocess.run(["callgrind_control", *option, str(process.pid)], capture_output=True, check=True)
                process.stdin.write("\n")
                process.stdin.flush()
            if process.wait():
                stderr.seek(0)
                raise SystemExit(f"callgrind run failed: {shlex.join(command)}\n{stderr.read()[-3000:]}")
        # A dump resets the counters: each ``.N`` file is one window (the file without suffix is the exit).
        dumps = sorted(Path(tmp).glob("callgrind.out.*"), key=lambda path: int(path.suffix[1:]))
        return [_total(path) for path in dumps]


def _total(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError(f"no total in {path}")


def measure_instructions(py: dict[str, str], args: argparse.Namespace) -> dict:
    calls = {"sync": args.calls_counted, "async": args.calls_counted,
             "stream_usage": max(2, args.calls_counted // 10)}
    for library in LIBRARIES:  # compiles bytecode outside the counted windows, as measure_wall does
        child(py[library], "startup", library, args)
    jobs = []
    for library in LIBRARIES:
        for measure in (*PER_CALL, "startup"):
            command = [py[library], str(Path(__file__)), "--child", measure, library, "--marks",
                       "--calls", str(calls.get(measure, 1)), "--chunks", str(args.chunks), "--rss-calls", "0"]
            jobs.append(((measure, library), command))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        counts = dict(zip([key for key, _ in jobs], pool.map(callgrind_windows, [c for _, c in jobs]), strict=True))
    per_call = {key: counts[key][0] / calls[key[0]] for key in counts if key[0] != "startup"}
    return {"per_call": per_call, "startup": {key[1]: counts[key] for key in counts if key[0] == "startup"}}


def instruction_table(data: dict, args: argparse.Namespace) -> list[str]:
    per_call, startup = data["per_call"], data["startup"]

    def k(value: float) -> str:
        return f"{value / 1e3:,.0f}k" if abs(value) >= 1e4 else f"{value:,.0f}"

    lines = ["| library | added per sync call | per async call | per stream chunk | import + instrument "
             "| first call vs bare |", "|---|---|---|---|---|---|"]
    for library in LIBRARIES[1:]:
        sync = per_call[("sync", library)] - per_call[("sync", "bare")]
        asynchronous = per_call[("async", library)] - per_call[("async", "bare")]
        chunk = (per_call[("stream_usage", library)] - per_call[("stream_usage", "bare")] - sync) / args.chunks
        import_instrument, first_call = startup[library][0], startup[library][1] - startup["bare"][1]
        lines.append(f"| {LABELS[library]} | {k(sync)} | {k(asynchronous)} | {k(chunk)} | {k(import_instrument)} "
                     f"| {'+' if first_call >= 0 else ''}{k(first_call)} |")
    lines.append("")
    lines.append(f"bare SDK: sync {k(per_call[('sync', 'bare')])}, async {k(per_call[('async', 'bare')])}, "
                 f"{args.chunks}-chunk stream {k(per_call[('stream_usage', 'bare')])} instructions per call; "
                 f"first call {k(startup['bare'][1])}.")
    return lines


def main() -> None:
    if "--child" in sys.argv:
        run_child(sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per process (streams: a tenth)")
    parser.add_argument("--chunks", type=int, default=200, help="chunks per stream")
    parser.add_argument("--rss-calls", type=int, default=20000)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under valgrind's callgrind instead of timing")
    parser.add_argument("--calls-counted", type=int, default=100,
                        help="calls in each callgrind window (streams: a tenth)")
    parser.add_argument("--jobs", type=int, default=2, help="callgrind runs at once")
    parser.add_argument("--ours-python", help="interpreter with otel-tokens installed (default: .venv, else built)")
    args = parser.parse_args()

    _workload.write_bytecode()
    py = pythons(args.ours_python)
    started = time.time()
    load_before = os.getloadavg()
    data = measure_instructions(py, args) if args.instructions else measure_wall(py, args)
    lines = instruction_table(data, args) if args.instructions else wall_table(data, args)
    load_after = os.getloadavg()
    print("\n".join(lines))
    print()
    shown = {}
    for library in ("otel-tokens", "contrib", "openinference"):
        shown.update(versions(py[library], SHOWN[library]))
    common = {library: versions(py[library], COMMON) for library in ("otel-tokens", "contrib", "openinference")}
    print("versions: " + ", ".join(f"{name} {version}" for name, version in shown.items()))
    same = all(value == common["otel-tokens"] for value in common.values())
    print("shared: " + ", ".join(f"{name} {version}" for name, version in common["otel-tokens"].items())
          + ("" if same else f" (differs: {common})"))
    print(f"command: python benchmarks/peers.py {shlex.join(sys.argv[1:])}  "
          f"({time.time() - started:.0f} s; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, "
          f"{os.cpu_count()} cores)")


if __name__ == "__main__":
    main()

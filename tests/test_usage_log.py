"""The usage log: exact line format, crash safety, concurrent writers, tolerant reading."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from otel_tokens._internal.accounting.usage_log import (
    LINE_KEYS,
    UsageLogWriter,
    format_time,
    parse_line,
    parse_time,
    read_usage_log,
    record_to_line,
    scan_usage_log,
)
from otel_tokens._internal.base.records import CallRecord, Labels, Request, Result, Usage

REPO = Path(__file__).resolve().parents[1]
END = 1_794_985_600.25  # 2026-11-18T07:06:40.250000Z


def make_record(**overrides) -> CallRecord:
    values = dict(
        request=Request(provider="openai", operation="chat", model="gpt-4o-mini"),
        result=Result(
            usage=Usage(input_tokens=1215, output_tokens=45, cache_read_tokens=1152, reasoning_tokens=0),
            response_model="gpt-4o-mini-2024-07-18",
            tool_calls=2,
        ),
        labels=Labels(agent="planner", workflow="triage", task="t-1", user="u-7"),
        duration_s=0.4123456789,
        end_time_unix=END,
        time_to_first_chunk_s=0.12,
        cost_usd=7.2e-05,
        cost_source="local",
        input_cost_usd=4.5e-05,
        output_cost_usd=2.7e-05,
    )
    values.update(overrides)
    return CallRecord(**values)


def test_record_to_line_exact():
    assert record_to_line(make_record()) == (
        '{"time": "2026-11-18T07:06:40.250000Z", "provider": "openai", "model": "gpt-4o-mini-2024-07-18", '
        '"request_model": "gpt-4o-mini", "agent": "planner", "workflow": "triage", "task": "t-1", '
        '"user": "u-7", "operation": "chat", "input_tokens": 1215, "output_tokens": 45, '
        '"cache_read_tokens": 1152, "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_usd": 7.2e-05, '
        '"cost_source": "local", "estimated": false, "usage_invalid": false, "duration_s": 0.412346, '
        '"ttfc_s": 0.12, "error": null, "input_cost_usd": 4.5e-05, "output_cost_usd": 2.7e-05, "tool_calls": 2, '
        '"source": null, "tier": null, "tool_fee_usd": 0.0, "server_tool_calls": 0, "unpriced_dimensions": [], '
        '"batch_id": null}'
    )


def test_line_keys_in_order():
    assert list(json.loads(record_to_line(make_record()))) == list(LINE_KEYS)


def test_error_call_without_usage_and_unpriced():
    record = make_record(result=None, labels=Labels(), cost_usd=None, cost_source="local",
                         time_to_first_chunk_s=None, error_type="RateLimitError")
    line = json.loads(record_to_line(record))

    assert line["model"] == "gpt-4o-mini"  # no response: the requested model
    assert [line[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens")] == [None, None, None]
    assert (line["cost_usd"], line["cost_source"], line["error"], line["agent"]) == (None, None, "RateLimitError", None)
    assert line["estimated"] is False


def test_estimated_usage_and_unicode_stay_one_ascii_line():
    record = make_record(labels=Labels(agent="résumé\nwriter"),
                         result=Result(usage=Usage(input_tokens=3, output_tokens=4, estimated=True)))
    text = record_to_line(record)
    assert "\n" not in text and text.isascii()
    assert json.loads(text)["agent"] == "résumé\nwriter"
    assert json.loads(text)["estimated"] is True


def test_missing_end_time_uses_now():
    before = time.time()
    line = parse_line(record_to_line(make_record(end_time_unix=0.0)))
    assert before - 0.001 <= line["_unix_time"] <= time.time() + 0.001


def test_time_round_trip():
    assert format_time(END) == "2026-11-18T07:06:40.250000Z"
    assert parse_time("2026-11-18T07:06:40.250000Z") == END
    assert parse_time("2026-11-18T08:06:40.25+01:00") == END
    assert parse_time("2026-11-18T07:06:40.25") == END  # no offset: UTC


def test_writer_appends_and_reader_reads_back(tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_text(record_to_line(make_record(labels=Labels(agent="earlier"))) + "\n")
    with UsageLogWriter(path) as writer:
        writer.write(make_record())
        writer.write(make_record(result=None, error_type="TimeoutError"))

    lines, skipped = read_usage_log(path)
    assert skipped == 0
    assert [line["agent"] for line in lines] == ["earlier", "planner", "planner"]
    assert lines[1]["input_tokens"] == 1215
    assert lines[1]["_unix_time"] == END
    assert lines[2]["error"] == "TimeoutError"
    assert path.read_bytes().count(b"\n") == 3


def test_bad_path_is_a_clear_value_error(tmp_path):
    missing_dir = tmp_path / "no" / "such" / "dir" / "usage.jsonl"
    with pytest.raises(ValueError, match=r"cannot open the usage log .*usage\.jsonl.*No such file or directory"):
        UsageLogWriter(missing_dir)
    with pytest.raises(ValueError, match="Is a directory"):
        UsageLogWriter(tmp_path)


def test_io_errors_are_logged_once_and_lines_dropped(tmp_path, caplog):
    path = tmp_path / "usage.jsonl"
    writer = UsageLogWriter(path)
    read_only = os.open(path, os.O_RDONLY)
    os.dup2(read_only, writer._fd)  # the descriptor turns unwritable under the writer (EBADF)
    os.close(read_only)
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        writer.write(make_record())
        writer.write(make_record())
    writer.close()

    assert writer.dropped_lines == 2
    assert len([r for r in caplog.records if "cannot write to the usage log" in r.getMessage()]) == 1
    assert path.read_bytes() == b""


def test_writes_after_close_are_dropped(tmp_path):
    path = tmp_path / "usage.jsonl"
    writer = UsageLogWriter(path)
    writer.write(make_record())
    writer.close()
    writer.close()
    assert writer.write_line("{}") is False
    writer.write(make_record())
    assert writer.closed
    assert writer.dropped_lines == 2
    lines, skipped = read_usage_log(path)
    assert (len(lines), skipped) == (1, 0)


def test_sixteen_threads_two_writers_no_interleaving(tmp_path):
    path = tmp_path / "usage.jsonl"
    writers = [UsageLogWriter(path), UsageLogWriter(path)]  # two opens, like two processes
    per_thread = 200
    start = threading.Barrier(16)

    def work(thread: int) -> None:
        writer = writers[thread % 2]
        start.wait()
        for i in range(per_thread):
            # Long labels make lines bigger than a pipe buffer, so interleaving would show.
            writer.write(make_record(labels=Labels(agent=f"t{thread}", task=f"{i}", user="x" * 5000)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for writer in writers:
        writer.close()

    lines, skipped = read_usage_log(path)
    assert skipped == 0
    assert len(lines) == 16 * per_thread
    assert sorted((line["agent"], int(line["task"])) for line in lines) == sorted(
        (f"t{n}", i) for n in range(16) for i in range(per_thread))


_WRITER_SCRIPT = textwrap.dedent("""
    import sys
    from otel_tokens._internal.base.records import CallRecord, Labels, Request, Result, Usage
    from otel_tokens._internal.accounting.usage_log import UsageLogWriter

    writer = UsageLogWriter(sys.argv[1])
    request = Request(provider="anthropic", operation="chat", model="claude-haiku-4-5")
    i = 0
    while True:
        i += 1
        writer.write(CallRecord(request=request, result=Result(usage=Usage(input_tokens=i, output_tokens=1)),
                                labels=Labels(agent=sys.argv[2], task="y" * (i % 9000)),
                                end_time_unix=1_795_000_000.0, cost_usd=0.001))
""")


def test_sigkill_leaves_only_whole_lines(tmp_path):
    path = tmp_path / "usage.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER_SCRIPT, str(path), f"p{n}"], env=env)
             for n in range(2)]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 2_000_000):
            time.sleep(0.02)
    finally:
        for proc in procs:
            os.kill(proc.pid, signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=10)
    assert [proc.returncode for proc in procs] == [-signal.SIGKILL, -signal.SIGKILL]

    data = path.read_bytes()
    lines, skipped = read_usage_log(path)
    # A kill can interrupt a large write: at most one torn line per killed writer, never more.
    assert skipped <= 2
    assert len(lines) > 100
    for agent in ("p0", "p1"):
        counts = [line["input_tokens"] for line in lines if line["agent"] == agent]
        # Every completed line is there and whole, even one appended right after the other's torn one.
        assert counts == list(range(1, len(counts) + 1))
    assert data.count(b"\n") >= len(lines)


def test_a_line_appended_after_a_torn_one_is_recovered(tmp_path):
    first = record_to_line(make_record())
    second = record_to_line(make_record(labels=Labels(agent="after-the-tear")))
    path = tmp_path / "usage.jsonl"
    path.write_bytes((first + "\n" + first[: len(first) // 3] + second + "\n").encode())
    lines, skipped = read_usage_log(path)
    assert skipped == 1
    assert [line["agent"] for line in lines] == ["planner", "after-the-tear"]


def test_reader_skips_and_counts_bad_lines(tmp_path):
    good = record_to_line(make_record())
    no_usage = record_to_line(make_record(result=None, error_type="APIError"))
    minimal = json.dumps({"time": "2026-11-18T07:06:40Z", "provider": "openai", "operation": "chat",
                          "input_tokens": 10, "output_tokens": 2})
    bad = [
        good[: len(good) // 2],  # torn line
        "[1, 2, 3]",  # not an object
        json.dumps({"time": "2026-11-18T07:06:40Z", "provider": "openai", "operation": "chat"}),  # no tokens
        good.replace('"input_tokens": 1215', '"input_tokens": "1215"'),
        good.replace('"input_tokens": 1215', '"input_tokens": -1'),
        good.replace('"input_tokens": 1215', '"input_tokens": true'),
        good.replace('"2026-11-18T07:06:40.250000Z"', '"yesterday"'),
        good.replace('"cost_usd": 7.2e-05', '"cost_usd": "cheap"'),
        good.replace('"agent": "planner"', '"agent": 5'),
        "not json at all",
    ]
    path = tmp_path / "usage.jsonl"
    with open(path, "wb") as handle:
        handle.write((good + "\n").encode())
        for line in bad:
            handle.write((line + "\n").encode())
        handle.write(b"\xff\xfe\x00garbage\n")
        handle.write(b"\n   \n")  # blank lines are not corruption
        handle.write((no_usage + "\n" + minimal).encode())  # the last line lacks its newline

    lines, skipped = read_usage_log(path)

    assert skipped == len(bad) + 1 == 11
    assert len(lines) == 3
    assert lines[1]["input_tokens"] is None and lines[1]["error"] == "APIError"
    filled = lines[2]
    assert (filled["cache_read_tokens"], filled["reasoning_tokens"], filled["cost_usd"], filled["agent"]) == (
        0, 0, None, None)
    assert filled["estimated"] is False
    assert set(LINE_KEYS) <= filled.keys()


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_usage_log(tmp_path / "absent.jsonl")


# -- writer and reader agree (issue 7, defect 9) ---------------------------------------------------
ODD_TEXT = [None, "", "gpt-4o", 123, 4.5, True, "ünïcödé ✓", "a\nb\"c\\", "\ud800 lone surrogate", "x" * 300,
            "sk-proj-Q7fVb2LmX9tR4sKd8NwP3yHc"]
ODD_COUNTS = [0, 1, 1187, 10**12, 10**12 + 1, -1, -100, 3.0, 2.5, float("nan"), float("inf"), -float("inf"),
              "12", None, True, 1e999]
ODD_AMOUNTS = [None, 0.0, 0.000208, 0.00020800000000000001, 1e-13, 5, -5.0, float("nan"), float("inf"), "0.1",
               True, 1e308]
ODD_TIMES = [END, 0.0, -1.0, float("nan"), float("inf"), 1e20, "yesterday", None]


def odd_record(rng) -> CallRecord:
    """A record with whatever a bug, a provider or a user could put in it."""
    pick = rng.choice
    usage = None
    if rng.random() < 0.8:
        usage = Usage(*(pick(ODD_COUNTS) for _ in range(5)), estimated=pick([True, False, "yes"]),
                      invalid=pick([False, False, True]))
    return CallRecord(
        request=Request(provider=pick(ODD_TEXT), operation=pick(ODD_TEXT), model=pick(ODD_TEXT)),
        result=Result(usage=usage, response_model=pick(ODD_TEXT)) if rng.random() < 0.9 else None,
        labels=Labels(agent=pick(ODD_TEXT), workflow=pick(ODD_TEXT), task=pick(ODD_TEXT), user=pick(ODD_TEXT)),
        duration_s=pick(ODD_AMOUNTS + [0.4123456789]),
        end_time_unix=pick(ODD_TIMES),
        time_to_first_chunk_s=pick(ODD_AMOUNTS),
        error_type=pick(ODD_TEXT),
        cost_usd=pick(ODD_AMOUNTS),
        cost_source=pick(ODD_TEXT),
        usage_invalid=rng.random() < 0.1,  # the recorder's flag: the provider's usage was replaced by an estimate
    )


def assert_valid_line(line: dict) -> None:
    for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        value = line[key]
        assert value is None or (type(value) is int and value >= 0), (key, value)
    for key in ("cost_usd", "duration_s", "ttfc_s"):
        value = line[key]
        assert value is None or (type(value) in (int, float) and math.isfinite(value) and value >= 0), (key, value)
    for key in ("provider", "operation"):
        assert isinstance(line[key], str)
    for key in ("model", "request_model", "agent", "workflow", "task", "user", "cost_source", "error"):
        assert line[key] is None or isinstance(line[key], str), (key, line[key])
    assert type(line["estimated"]) is bool and type(line["usage_invalid"]) is bool
    assert line["cost_source"] is None or line["cost_usd"] is not None
    json.dumps({k: v for k, v in line.items()}, allow_nan=False)


def test_every_line_the_writer_writes_the_reader_reads(tmp_path):
    rng = random.Random(7)
    records = [odd_record(rng) for _ in range(2000)] + [make_record()]
    path = tmp_path / "usage.jsonl"
    with UsageLogWriter(path) as writer:
        for record in records:
            writer.write(record)
        assert writer.dropped_lines == 0

    lines, skipped = read_usage_log(path)

    assert skipped == 0 and len(lines) == len(records)
    for record, line in zip(records, lines, strict=True):
        assert_valid_line(line)
        again = parse_line(record_to_line(record))  # one record, one line: only a "now" time differs
        assert {k: v for k, v in again.items() if k not in ("time", "_unix_time")} == \
            {k: v for k, v in line.items() if k not in ("time", "_unix_time")}
        if record.end_time_unix == END:
            assert line["time"] == "2026-11-18T07:06:40.250000Z"
        usage = record.usage
        keys = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
        raw = [getattr(usage, key) for key in keys] if usage is not None else [None] * 5
        trusted = not (usage is not None and usage.invalid) and all(
            value is None or (type(value) in (int, float) and math.isfinite(value) and 0 <= value <= 10**12)
            for value in raw)
        if trusted:  # counts are kept exactly (whole floats as ints), absent ones as null
            assert [line[key] for key in keys] == [None if value is None else round(value) for value in raw]
            assert line["usage_invalid"] is record.usage_invalid
        else:  # one count that is not a token count: none is trusted, and the line says so
            assert [line[key] for key in keys] == [None] * 5 and line["usage_invalid"] is True
        if isinstance(record.model, str):
            assert line["model"] == record.model
        if "sk-proj-" in str(record.error_type):
            assert "sk-proj-" not in line["error"]


def test_reader_names_the_file_and_the_corrupt_lines_in_one_warning(tmp_path, caplog):
    good = record_to_line(make_record())
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join([good, "{torn", good, good.replace('"input_tokens": 1215', '"input_tokens": -3'),
                               good]) + "\n")
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        lines, skipped = read_usage_log(path)
    assert (len(lines), skipped) == (3, 2)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == f"skipped 2 corrupted line(s) in {path} (lines 2, 4)"


def test_many_corrupt_lines_are_named_briefly(tmp_path):
    path = tmp_path / "usage.jsonl"
    path.write_text("garbage\n" * 25)
    scan = scan_usage_log(path)
    assert scan.bad_line_numbers == list(range(1, 26)) and scan.lines == []
    assert scan.describe_skipped(path).endswith("(lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 15 more)")


def test_lines_of_older_writers_without_the_new_keys_are_read(tmp_path):
    old = record_to_line(make_record()).replace(', "usage_invalid": false', "")
    assert "usage_invalid" not in old
    line = parse_line(old)
    assert line is not None and line["usage_invalid"] is False and line["input_tokens"] == 1215


def test_log_file_is_created_0600_and_a_symlink_is_refused(tmp_path):
    path = tmp_path / "usage.jsonl"
    with UsageLogWriter(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    with pytest.raises(ValueError, match=r"OTEL_TOKENS_LOG=.*symbolic link"):
        UsageLogWriter(link)

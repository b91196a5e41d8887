"""Fixtures for the stack tests: real Prometheus, Alertmanager and the demo, as local processes.

Binaries come from PROMETHEUS_BIN, PROMTOOL_BIN, ALERTMANAGER_BIN and AMTOOL_BIN, else from PATH
(Debian names the Alertmanager binary prometheus-alertmanager). When one is missing the tests that need
it skip, unless CI is set: then they fail, so a CI image without the binaries cannot pass silently.

The demo is started as ``python -m otel_tokens demo``; OTEL_TOKENS_DEMO_COMMAND replaces that prefix
(for example with another emitter while developing these tests).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
RULES_DIR = REPO / "prometheus" / "rules"
ALERTMANAGER_CONFIG = REPO / "alertmanager" / "alertmanager.yml"

# The demo's default service.name, and the scrape job named after it so `job` means what it means on
# the OTLP path (where Prometheus derives it from service.name).
DEMO_JOB = "otel-tokens-demo"
DEMO_INTERVAL_SECONDS = "1"
# Every wait in these tests is bounded by this.
MAX_WAIT_SECONDS = 60.0


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_binary(env_var: str, *names: str) -> str | None:
    explicit = os.environ.get(env_var)
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            pytest.fail(f"{env_var}={explicit} is not an executable file", pytrace=False)
        return explicit
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_binary(env_var: str, *names: str) -> str:
    """The binary's path; a skip when it is missing locally, a failure when CI is set."""
    path = find_binary(env_var, *names)
    if path:
        return path
    reason = f"{' or '.join(names)} not found: install it or set {env_var}"
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so the stack tests must not be skipped)", pytrace=False)
    pytest.skip(reason)


def binary_version(path: str) -> tuple[int, int, int]:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"version (\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    if not match:
        pytest.fail(f"cannot read the version of {path}: {out.stdout}{out.stderr}", pytrace=False)
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return require_binary("PROMETHEUS_BIN", "prometheus")


@pytest.fixture(scope="session")
def promtool_bin() -> str:
    return require_binary("PROMTOOL_BIN", "promtool")


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    return require_binary("ALERTMANAGER_BIN", "alertmanager", "prometheus-alertmanager")


@pytest.fixture(scope="session")
def amtool_bin() -> str:
    return require_binary("AMTOOL_BIN", "amtool")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return response.read()


def wait_until(
    check: Callable[[], Any], what: str, timeout: float = MAX_WAIT_SECONDS, interval: float = 0.25,
    diagnostics: Callable[[], str] = lambda: "",
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` and diagnostics on timeout."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last_error, result = exc, None
        if result:
            return result
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{detail}\n{diagnostics()}", pytrace=False)


class Process:
    """A child process whose output goes to a log file, stopped by its own pid on teardown."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd)

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def assert_running(self) -> None:
        code = self.popen.poll()
        if code is not None:
            pytest.fail(f"{self.name} exited with status {code}:\n{self.log_tail()}", pytrace=False)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()


# -- webhook receiver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    received_at: float  # time.time() when the POST arrived
    payload: dict[str, Any]


class WebhookReceiver:
    """Records every Alertmanager webhook POST sent to it, on a loopback port."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                delivery = Delivery(time.time(), json.loads(body or b"{}"))
                with receiver._changed:
                    receiver.deliveries.append(delivery)
                    receiver._changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep pytest output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def find(self, predicate: Callable[[dict[str, Any]], bool]) -> tuple[Delivery, dict[str, Any]] | None:
        with self._changed:
            for delivery in self.deliveries:
                for alert in delivery.payload.get("alerts", []):
                    if predicate(alert):
                        return delivery, alert
        return None

    def wait_for_alert(self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float,
                       diagnostics: Callable[[], str]) -> tuple[Delivery, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.find(predicate)
                if found:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(timeout=min(remaining, 1.0))
        received = [
            (a["labels"].get("alertname"), a["labels"].get("gen_ai_agent_name"), a.get("status"))
            for d in self.deliveries for a in d.payload.get("alerts", [])
        ]
        pytest.fail(f"no webhook delivery of {what} within {timeout:.0f}s; received {received}\n{diagnostics()}",
                    pytrace=False)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- test copies of the configs --------------------------------------------------------------------


def write_prometheus_config(directory: Path, *, scrape_target: str, alertmanager_target: str,
                            prometheus_major: int) -> Path:
    """The repo's prometheus.yml and rules, with 1 s intervals and the demo as the only scrape target."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    if prometheus_major < 3:
        # Prometheus 2 rejects the otlp: block; these tests scrape, so they do not need it.
        config.pop("otlp", None)
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager_target]}]}]
    config["scrape_configs"] = [
        {"job_name": DEMO_JOB, "scrape_interval": "1s", "static_configs": [{"targets": [scrape_target]}]}
    ]
    shutil.copytree(RULES_DIR, directory / "rules")
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_alertmanager_config(directory: Path, webhook_url: str) -> Path:
    """The repo's alertmanager.yml with every timer at its minimum and every webhook sent to the test."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())

    def hurry(route: dict[str, Any]) -> None:
        route["group_wait"] = "0s"
        route["group_interval"] = "1s"
        route["repeat_interval"] = "1h"
        for child in route.get("routes", []):
            hurry(child)

    hurry(config["route"])
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def demo_command() -> list[str]:
    override = os.environ.get("OTEL_TOKENS_DEMO_COMMAND")
    return shlex.split(override) if override else [sys.executable, "-m", "otel_tokens", "demo"]


# -- the stack -------------------------------------------------------------------------------------


@dataclass
class Stack:
    prometheus_url: str
    alertmanager_url: str
    demo_metrics_url: str
    webhook: WebhookReceiver
    started_at: float
    processes: list[Process] = field(default_factory=list)

    def diagnostics(self) -> str:
        parts = []
        for process in self.processes:
            state = "running" if process.popen.poll() is None else f"exited {process.popen.returncode}"
            parts.append(f"--- {process.name} ({state}), log {process.log_path}:\n{process.log_tail(15)}")
        return "\n".join(parts)

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.prometheus_url}{path}?{urllib.parse.urlencode(params)}"
        try:
            body = json.loads(http_get(url, timeout=10))
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus refused {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("/api/v1/query", query=expr)["result"]

    def query_range(self, expr: str, seconds: float, step: str = "5s") -> list[dict[str, Any]]:
        end = time.time()
        return self.api("/api/v1/query_range", query=expr, start=f"{end - seconds:.3f}", end=f"{end:.3f}",
                        step=step)["result"]

    def first_sample_at_or_above(self, selector: str, threshold: float) -> float | None:
        """Timestamp of the first scraped sample of ``selector`` at or above ``threshold``."""
        window = int(time.time() - self.started_at) + 10
        samples = []
        for series in self.query(f"{selector}[{window}s]"):
            samples.extend((float(ts), float(value)) for ts, value in series["values"])
        crossing = [ts for ts, value in sorted(samples) if value >= threshold]
        return crossing[0] if crossing else None


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, prometheus_bin: str,
          alertmanager_bin: str) -> Iterator[Stack]:
    """Alertmanager -> webhook, Prometheus scraping the demo every second, and the demo looping."""
    base = tmp_path_factory.mktemp("stack")
    webhook = WebhookReceiver()
    processes: list[Process] = []
    prometheus_port, alertmanager_port, demo_port = free_port(), free_port(), free_port()
    stack = Stack(
        prometheus_url=f"http://127.0.0.1:{prometheus_port}",
        alertmanager_url=f"http://127.0.0.1:{alertmanager_port}",
        demo_metrics_url=f"http://127.0.0.1:{demo_port}/metrics",
        webhook=webhook,
        started_at=time.time(),
        processes=processes,
    )
    try:
        am_dir = base / "alertmanager"
        am_dir.mkdir()
        processes.append(Process("alertmanager", [
            alertmanager_bin,
            f"--config.file={write_alertmanager_config(am_dir, webhook.url)}",
            f"--storage.path={am_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            "--cluster.listen-address=",  # no gossip port: a single local instance
        ], base))
        wait_until(lambda: http_get(f"{stack.alertmanager_url}/-/ready"), "Alertmanager to be ready",
                   diagnostics=stack.diagnostics)

        # Prometheus before the demo, so it sees the budgets from the first rounds on.
        prom_dir = base / "prometheus"
        prom_dir.mkdir()
        config = write_prometheus_config(
            prom_dir, scrape_target=f"127.0.0.1:{demo_port}",
            alertmanager_target=f"127.0.0.1:{alertmanager_port}",
            prometheus_major=binary_version(prometheus_bin)[0],
        )
        processes.append(Process("prometheus", [
            prometheus_bin,
            f"--config.file={config}",
            f"--storage.tsdb.path={prom_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ], base))
        wait_until(lambda: http_get(f"{stack.prometheus_url}/-/ready"), "Prometheus to be ready",
                   diagnostics=stack.diagnostics)
        # Prometheus applies its targets a few seconds after start; the demo starts once scraping does
        # (`up` is recorded, still 0), so the scrapes see the budgets cross rather than the aftermath.
        wait_until(lambda: stack.query(f'up{{job="{DEMO_JOB}"}}'), "Prometheus to start scraping",
                   diagnostics=stack.diagnostics)

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        demo = Process("demo", [
            *demo_command(), "--prometheus-port", str(demo_port), "--loop",
            "--interval", DEMO_INTERVAL_SECONDS, "--service-name", DEMO_JOB,
        ], base, env=env, cwd=REPO)
        processes.append(demo)

        def demo_serves_budgets() -> bool:
            demo.assert_running()
            return b"otel_tokens_budget_utilization" in http_get(stack.demo_metrics_url)

        wait_until(demo_serves_budgets, "the demo to serve otel_tokens_budget_utilization on /metrics",
                   diagnostics=stack.diagnostics)
        wait_until(lambda: stack.query(f'up{{job="{DEMO_JOB}"}} == 1'), "Prometheus to scrape the demo",
                   diagnostics=stack.diagnostics)
        yield stack
    finally:
        for process in reversed(processes):
            process.stop()
        webhook.close()

"""The ``otel-tokens`` command (also ``python -m otel_tokens``).

    otel-tokens report usage.jsonl [--by agent,model] [--format text|markdown|json|csv]
                                   [--what-if MODEL[@provider]] [--budgets SPEC] [--top N] [--output FILE]
    otel-tokens demo [--rounds N] [--loop] [--interval SECONDS] [--prometheus-port PORT] [--otlp URL] ...
    otel-tokens prices MODEL [--provider PROVIDER]
    otel-tokens prepare
    otel-tokens fake-server [--port PORT] [--host HOST]
    otel-tokens --version
    otel-tokens export usage.jsonl [--format csv|jsonl] [--output FILE]
    otel-tokens serve [usage.jsonl] [--host 127.0.0.1] [--port 8765] [--interval SECONDS] [--budgets SPEC]
                      [--token TOKEN | --new-token]

Exit codes: 0 done, 1 nothing to show (``prices`` for an unknown model), 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TextIO

PROG = "otel-tokens"
DEMO_MODULE = "otel_tokens._internal.commands.demo"
_REPORT_FORMATS = ("text", "markdown", "json", "csv", "html")
_DEMO_FORMATS = ("text", "markdown", "json", "html")
_DIMENSIONS = ("agent", "model", "provider", "operation", "workflow", "task", "user", "tier")


class _UsageError(Exception):
    """A problem with the command line or its inputs: printed, exit status 2."""


def _dimensions(text: str) -> tuple[str, ...]:
    parts = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [part for part in parts if part not in _DIMENSIONS]
    if not parts or unknown:
        raise argparse.ArgumentTypeError(
            f"invalid dimension list {text!r}; use a comma-separated list of {', '.join(_DIMENSIONS)}")
    return parts


def _model_ref(text: str) -> str:
    model, at, provider = text.strip().rpartition("@")
    if not text.strip() or (at and (not model or not provider)):
        raise argparse.ArgumentTypeError(f"expected MODEL or MODEL@PROVIDER, got {text!r}")
    return text.strip()


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text}")
    return value


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0-65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from otel_tokens.version import __version__

    parser = argparse.ArgumentParser(prog=PROG, description="LLM token and cost reports on OpenTelemetry.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    report = commands.add_parser(
        "report", help="summarise a usage log (OTEL_TOKENS_LOG)",
        description="Read a usage log written with OTEL_TOKENS_LOG and print a cost report.")
    report.add_argument("path", metavar="PATH", help="the usage log (JSON lines)")
    report.add_argument("--by", type=_dimensions, default=("agent", "model", "provider", "operation"),
                        metavar="DIMS", help=f"group tables to show, comma-separated from {','.join(_DIMENSIONS)} "
                                             "(default: agent,model,provider,operation)")
    report.add_argument("--format", choices=_REPORT_FORMATS, default="text", help="output format (default: text)")
    report.add_argument("--what-if", type=_model_ref, action="append", default=[], metavar="MODEL[@PROVIDER]",
                        help="also show what the same usage would cost on this model (repeatable)")
    report.add_argument("--budgets", metavar="SPEC",
                        help="check spend against budgets, in the OTEL_TOKENS_BUDGETS form "
                             "(e.g. researcher=0.50,writer=1.00@1h)")
    report.add_argument("--top", type=_non_negative_int, default=5, metavar="N",
                        help="rows in the most-expensive sections (default: 5; 0 hides them)")
    report.add_argument("--output", metavar="FILE", help="write the report to FILE instead of stdout")
    report.set_defaults(handler=_report)

    demo = commands.add_parser(
        "demo", help="run the instrumented demo against a local fake LLM server",
        description="Run scripted agents against a loopback fake OpenAI, Anthropic, Gemini and Groq server, with "
                    "metrics. Providers whose SDK is not installed are skipped; pip install 'otel-tokens[demo]' "
                    "installs them all.")
    demo.add_argument("--prometheus-port", type=_port, metavar="PORT",
                      help="serve Prometheus metrics on this port")
    demo.add_argument("--otlp", metavar="URL", help="also export traces and metrics over OTLP to URL")
    demo.add_argument("--loop", action="store_true", help="keep running rounds until interrupted")
    demo.add_argument("--interval", type=_positive_seconds, default=1.0, metavar="SECONDS",
                      help="pause between rounds (default: 1.0)")
    demo.add_argument("--rounds", type=_positive_int, default=3, metavar="N",
                      help="rounds to run without --loop (default: 3)")
    demo.add_argument("--service-name", default="otel-tokens-demo", metavar="NAME",
                      help="service.name resource attribute (default: otel-tokens-demo)")
    demo.add_argument("--format", choices=_DEMO_FORMATS, default="text",
                      help="format of the final report (default: text)")
    demo.set_defaults(handler=_demo)

    prices = commands.add_parser(
        "prices", help="show the per-million-token rates for a model",
        description="Show the rates otel-tokens uses to price a model, in USD per million tokens.")
    prices.add_argument("model", metavar="MODEL")
    prices.add_argument("--provider", metavar="PROVIDER", help="provider name, e.g. openai, anthropic")
    prices.set_defaults(handler=_prices)

    prepare = commands.add_parser(
        "prepare", help="build the price data for the installed genai-prices now (for container images)",
        description="Build and cache the price index for the installed genai-prices, so that no process "
                    "pays for it at start-up (run it in an image build, after pip install). The cache "
                    "directory is OTEL_TOKENS_CACHE_DIR, else $XDG_CACHE_HOME/otel-tokens, else "
                    "~/.cache/otel-tokens.")
    prepare.set_defaults(handler=_prepare)

    fake = commands.add_parser(
        "fake-server", help="run the demo's fake OpenAI/Anthropic/Gemini/Groq server for your own code",
        description="Serve the loopback fake OpenAI, Anthropic, Gemini and Groq APIs the demo uses (no keys, no "
                    "network) until Ctrl-C; point an SDK client's base URL at it (it prints how for each SDK). "
                    "GET /_fake/requests lists what it received; DELETE /_fake/requests forgets it.")
    fake.add_argument("--port", type=_port, default=8000, metavar="PORT", help="port to listen on (default: 8000; "
                                                                               "0 picks a free one)")
    fake.add_argument("--host", default="127.0.0.1", metavar="HOST",
                      help="address to bind (default: 127.0.0.1, this machine only)")
    fake.add_argument("--latency", type=_non_negative_seconds, default=0.0, metavar="SECONDS",
                      help="delay before each answer (default: 0)")
    fake.add_argument("--chunk-delay", type=_non_negative_seconds, default=0.0, metavar="SECONDS",
                      help="delay between stream chunks (default: 0)")
    fake.set_defaults(handler=_fake_server)
    _add_analytics_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on a usage error, 0 for --help
        return int(exit_.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except _UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (| head); stop quietly and keep Python from complaining at exit.
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


# -- report ----------------------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> int:
    from otel_tokens._internal.outputs.report import (
        budgets_from_usage_lines,
        render_report,
        stats_from_usage_lines,
    )

    lines = _read_log(args.path)
    stats = stats_from_usage_lines(lines)
    if args.budgets:
        stats["budgets"] = budgets_from_usage_lines(lines, _budgets(args.budgets))

    price_book = None
    what_if = ()
    if args.what_if:
        price_book = _price_book()
        what_if = tuple(_priced_target(price_book, target) for target in args.what_if)
    text = render_report(stats, args.format, by=args.by, what_if=what_if, price_book=price_book, top=args.top)
    _output(args.output, text)
    return 0


def _read_log(path: str) -> list[dict[str, Any]]:
    """A usage log's valid lines; skipped ones are named on stderr."""
    from otel_tokens._internal.accounting.usage_log import scan_usage_log

    try:
        scan = scan_usage_log(path)
    except FileNotFoundError:
        raise _UsageError(f"usage log not found: {path}") from None
    except OSError as err:
        raise _UsageError(f"cannot read the usage log {path}: {err.strerror or err}") from None
    if scan.bad_line_numbers:
        print(f"{PROG}: {scan.describe_skipped(path)}", file=sys.stderr)
    return scan.lines


def _budgets(spec: str) -> list[Any]:
    from otel_tokens._internal.budgets.manager import parse_budgets

    try:
        return parse_budgets(spec)
    except ValueError as err:
        raise _UsageError(f"--budgets: {err}") from None


def _output(path: str | None, text: str) -> None:
    """Write to ``path`` (private, atomically), or to stdout when there is none."""
    if path:
        from otel_tokens._internal.base.files import write_private_atomically

        try:
            write_private_atomically(path, text)
        except OSError as err:
            raise _UsageError(f"cannot write {path}: {err.strerror or err}") from None
        return
    _write(sys.stdout, text)


def _write(stream: TextIO, text: str) -> None:
    stream.write(text)
    stream.flush()


def _price_book() -> Any:
    try:
        from otel_tokens._internal.pricing.book import PriceBook
    except ModuleNotFoundError as err:
        raise _UsageError(f"pricing is not available ({err})") from None
    return PriceBook()


def _priced_target(book: Any, target: str) -> str:
    """A what-if target checked: a known provider after ``@``, or a bare name that is not ambiguous."""
    model, at, provider = target.rpartition("@")
    if at:
        _check_provider(book, provider)
    elif book.rates(None, target) is None and len(book.providers_for(target)) > 1:
        _provider_for(book, target, hint="--what-if MODEL@PROVIDER")
    return target


def _check_provider(book: Any, provider: str) -> None:
    known = book.known_providers()
    if provider not in known:
        raise _UsageError(f"unknown provider {provider!r}; known providers: {', '.join(known)}")


def _provider_for(book: Any, model: str, *, hint: str) -> str:
    """The one provider that prices a bare model name; a usage error naming them when several do."""
    providers = book.providers_for(model)
    if len(providers) > 1:
        raise _UsageError(f"{model} is priced by several providers at different rates ({', '.join(providers)}); "
                          f"choose one with {hint}")
    return providers[0]


# -- demo ------------------------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    try:
        run = importlib.import_module(DEMO_MODULE)
    except ModuleNotFoundError as err:
        if err.name in (DEMO_MODULE, "otel_tokens._internal.demo"):
            raise _UsageError("the demo is not available in this installation "
                              f"({DEMO_MODULE} is missing)") from None
        raise _UsageError(f"the demo needs the Python module {err.name!r}, which is not installed") from None
    result = run.main(args)
    return int(result or 0)


# -- prices ----------------------------------------------------------------------------------------
def _per_million(rate: float | None) -> str:
    from otel_tokens._internal.base.formatting import format_usd

    return "n/a" if rate is None else format_usd(rate * 1_000_000)


def _prices(args: argparse.Namespace) -> int:
    from otel_tokens._internal.base.formatting import format_usd

    book = _price_book()
    provider = args.provider
    if provider is not None:
        _check_provider(book, provider)
        rates = book.rates(provider, args.model)
    else:
        rates = book.rates(None, args.model)
        providers = book.providers_for(args.model)
        if rates is None and len(providers) > 1:
            _provider_for(book, args.model, hint="--provider")
        if len(providers) == 1:
            provider = providers[0]
            if rates is None:
                rates = book.rates(provider, args.model)
    target = f"{args.model} ({provider})" if provider else args.model
    if rates is None:
        print(f"{PROG}: no known price for {target}", file=sys.stderr)
        return 1
    reasoning = getattr(rates, "reasoning", None)
    rows = [
        ("input", _per_million(rates.input)),
        ("cache read", _per_million(rates.cache_read)),
        ("cache write", _per_million(rates.cache_write)),
        ("output", _per_million(rates.output)),
        ("reasoning", _per_million(reasoning) if reasoning is not None else "billed as output"),
    ]
    request_fee = getattr(rates, "request", 0.0) or 0.0
    lines = [f"{target}: USD per million tokens (source: {getattr(rates, 'source', 'unknown')})"]
    lines += [f"  {name:<12} {value}" for name, value in rows]
    if request_fee:
        lines.append(f"  {'per request':<12} {format_usd(request_fee)}")
    for tier in sorted(getattr(rates, "tiers", ()), key=lambda t: t.above_input_tokens):
        lines.append(
            f"  above {tier.above_input_tokens:,} input tokens: input {_per_million(tier.input)}, "
            f"cache read {_per_million(tier.cache_read)}, cache write {_per_million(tier.cache_write)}, "
            f"output {_per_million(tier.output)}")
    if args.provider is None:
        lines += _other_prices(book, args.model, provider, rates)
    _write(sys.stdout, "\n".join(lines) + "\n")
    return 0


def _other_prices(book: Any, model: str, shown: str | None, rates: Any) -> list[str]:
    """Lines naming the other providers that price ``model`` differently from the rates shown."""
    def key(found: Any) -> tuple:
        return (found.input, found.output, found.cache_read, found.cache_write)

    others = []
    for provider in book.listing_providers(model):
        if provider == shown:
            continue
        found = book.rates(provider, model)
        # All zero: a subscription listing (github-copilot), not a per-token price.
        if found is not None and key(found) != key(rates) and any(key(found)):
            others.append(f"  {provider}: input {_per_million(found.input)}, output {_per_million(found.output)}")
    if not others:
        return []
    return [f"also priced differently by {len(others)} other provider{'s' if len(others) > 1 else ''} "
            f"(choose with --provider):", *others]


def _prepare(args: argparse.Namespace) -> int:
    from otel_tokens._internal.pricing import index as price_index

    try:
        done, path = price_index.prepare()
    except (OSError, LookupError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    print(done + (f": {path}" if path else ""))
    return 0


# -- fake-server -----------------------------------------------------------------------------------
def _fake_server(args: argparse.Namespace) -> int:
    from otel_tokens._internal.commands.fake_server import FakeLLMServer, connection_help

    server = FakeLLMServer(host=args.host, port=args.port, latency_s=args.latency, chunk_delay_s=args.chunk_delay)
    try:
        server.start()
    except OSError as err:
        raise _UsageError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from None
    try:
        _write(sys.stdout, "\n".join(connection_help(server)) + "\n")
        _wait_for_stop()
    finally:
        server.stop()
    return 0


def _wait_for_stop() -> None:
    """Blocks until SIGINT or SIGTERM; the caller then closes what it opened and returns 0."""
    from otel_tokens._internal.commands.stopping import restore_signals, stop_on_signals

    stop = threading.Event()
    previous = stop_on_signals(stop)
    try:
        stop.wait()
    finally:
        restore_signals(previous)


# -- export and serve ------------------------------------------------------------------------------
def _add_analytics_commands(commands: Any) -> None:
    export = commands.add_parser(
        "export", help="one row per call of a usage log, as CSV or JSON lines",
        description="Export every call of a usage log: time, provider, model, labels, tokens by type, cost "
                    "(input/output), cost source, estimated, tool calls, duration and error.")
    export.add_argument("path", metavar="PATH", help="the usage log (JSON lines)")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="output format (default: csv)")
    export.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    export.set_defaults(handler=_export)

    serve = commands.add_parser(
        "serve", help="a live page of a usage log's charts and statistics",
        description="Serve the HTML report of a usage log on 127.0.0.1, refreshing as calls are appended, with "
                    "GET /api/statistics and GET /api/report?format=text|markdown|json|csv|html.")
    serve.add_argument("path", metavar="PATH", nargs="?", help="the usage log (default: $OTEL_TOKENS_LOG)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=_port, default=8765, metavar="PORT", help="port (default: 8765; 0: any free)")
    serve.add_argument("--interval", type=_positive_seconds, default=5.0, metavar="SECONDS",
                       help="how often the page refreshes (default: 5)")
    serve.add_argument("--budgets", metavar="SPEC", help="budgets to show, in the OTEL_TOKENS_BUDGETS form")
    token = serve.add_mutually_exclusive_group()
    token.add_argument("--token", metavar="TOKEN", help="require this token on every request, as ?token= or "
                                                        "Authorization: Bearer (default: $OTEL_TOKENS_SERVE_TOKEN)")
    token.add_argument("--new-token", action="store_true",
                       help="require a new random token; the URL printed at start carries it")
    serve.set_defaults(handler=_serve)


def _export(args: argparse.Namespace) -> int:
    from otel_tokens._internal.accounting.export import render_export

    _output(args.output, render_export(_read_log(args.path), args.format))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import secrets

    from otel_tokens._internal.outputs.serve import serve_usage_log

    path = args.path or os.environ.get("OTEL_TOKENS_LOG")
    if not path:
        raise _UsageError("serve needs a usage log: give PATH or set OTEL_TOKENS_LOG")
    if not os.path.exists(path):
        raise _UsageError(f"usage log not found: {path}")
    budgets = _budgets(args.budgets) if args.budgets else ()
    token = secrets.token_urlsafe(24) if args.new_token else args.token
    try:
        server = serve_usage_log(path, budgets=budgets, price_book=_price_book(), host=args.host, port=args.port,
                                 interval_s=args.interval, token=token)
    except (OSError, ValueError) as err:
        raise _UsageError(str(err)) from None
    print(f"{PROG}: serving {path} on {server.page_url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        _wait_for_stop()
    finally:
        server.close()
    return 0


__all__ = ["build_parser", "main"]

"""The runtime: settings, price book, ledger, budgets, usage log and the recorder, wired once.

Every instrumentor of a process shares one runtime, so the ledger and the budgets see every call. It is
the only process-wide object otel-tokens keeps besides the OpenTelemetry providers themselves.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics, trace

from otel_tokens import semconv
from otel_tokens._internal.accounting.analytics import Activity, candidate_models, enrich
from otel_tokens._internal.accounting.batches import LoggedBatchIds, SeenBatches
from otel_tokens._internal.accounting.ledger import Ledger
from otel_tokens._internal.base.formatting import machine_values
from otel_tokens._internal.base.instruments import instruments_for, latest_instruments_for
from otel_tokens._internal.base.settings import Settings, check_arguments
from otel_tokens._internal.budgets.manager import (
    BudgetManager,
    load_budgets_file,
    parse_budgets,
    use_request_ledger,
)
from otel_tokens._internal.calls import threads
from otel_tokens._internal.calls.context import use_tracer
from otel_tokens._internal.calls.recorder import Recorder
from otel_tokens._internal.calls.spans import SpanCalls
from otel_tokens._internal.pricing.book import PriceBook, load_price_file, parse_gateways
from otel_tokens._internal.pricing.tokenizer import count_tokens, import_modules
from otel_tokens.version import __version__

_logger = logging.getLogger("otel_tokens")


class Runtime:
    def __init__(
        self,
        settings: Settings,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        logger_provider: Any = None,
        *,
        implicit: bool = False,
    ) -> None:
        # Validate every input file before anything is wired, so a bad file stops start-up cleanly.
        overrides = load_price_file(settings.prices_file) if settings.prices_file else []
        budgets = []
        if settings.budgets_file:
            budgets += load_budgets_file(settings.budgets_file)
        if settings.budgets:
            budgets += parse_budgets(settings.budgets)

        store = None
        if settings.store:
            from otel_tokens._internal.budgets.store import open_store

            store = open_store(settings.store)  # a bad URL stops start-up; an unreachable store does not

        self.settings = settings
        self.price_book = PriceBook(overrides, gateways=parse_gateways(settings.gateways))
        # Price data is loaded here, on the caller's thread, so no call pays for it and nothing is
        # imported on a thread of ours (an import racing the app's own can hand it a half-made module).
        self._preload()
        import_modules()
        self.ledger = Ledger(max_keys=settings.max_keys)
        self.budgets = BudgetManager(
            price_book=self.price_book,
            count_tokens=count_tokens,
            default_max_output_tokens=settings.default_max_output_tokens,
            store=store,
            store_failure=settings.store_failure,
            max_history_keys=settings.max_keys,
        )
        self.budgets.set_budgets(budgets)
        # Each otel_tokens.budget() counts the calls inside in a ledger of its own.
        use_request_ledger(functools.partial(Ledger, max_keys=settings.max_keys))
        # Validated here, so a bad list stops start-up like a bad file.
        self.candidates = candidate_models(settings.candidate_models)
        self.activity = Activity()
        self.usage_log = None
        sinks = [self.activity.add_record]
        if settings.usage_log:
            from otel_tokens._internal.accounting.usage_log import UsageLogWriter

            self.usage_log = UsageLogWriter(settings.usage_log)
            sinks.append(self.usage_log.write)
        # A finished batch counts once: here, and across the processes sharing the usage log or the store.
        self.seen_batches = SeenBatches(
            ([LoggedBatchIds(self.usage_log.path)] if self.usage_log is not None else [])
            + ([store] if store is not None else [])
        )

        self._sinks = tuple(sinks)
        if settings.thread_context:
            threads.install()
        # Made by set_budget()/set_price() before instrument(): instrument() may still choose providers
        # and settings; those calls are kept to be made again on the runtime instrument() then builds.
        self.implicit = implicit
        self.configuration: list[Callable[[Runtime], None]] = []
        self.bind(tracer_provider, meter_provider, logger_provider)
        if settings.report:
            atexit.register(self._report_at_exit)

    def bind(self, tracer_provider: Any, meter_provider: Any, logger_provider: Any = None) -> None:
        """Write telemetry through these providers (None: the global ones); budgets, prices and
        totals stay as they are. The metric set and the content event's logger are chosen here, once."""
        self.tracer = trace.get_tracer(semconv.SCOPE_NAME, __version__, tracer_provider=tracer_provider)
        use_tracer(self.tracer)
        meter = metrics.get_meter(semconv.SCOPE_NAME, __version__, meter_provider=meter_provider)
        self.budgets.register_metrics(meter)
        details_logger = None
        if self.settings.capture_content.on_event:
            from opentelemetry import _logs

            # The global provider's logger is a proxy: a provider the app sets later is still used.
            details_logger = _logs.get_logger(semconv.SCOPE_NAME, __version__, logger_provider=logger_provider)
        self.recorder = Recorder(
            self.tracer,
            instruments_for(meter),
            self.price_book,
            self.settings,
            budgets=self.budgets,
            ledger=self.ledger,
            sinks=self._sinks,
            batches=self.seen_batches,
            latest=latest_instruments_for(meter) if self.settings.latest_semconv else None,
            details_logger=details_logger,
        )
        if self.settings.span_processor:
            add_span_processor(tracer_provider)

    def _preload(self) -> None:
        try:
            self.price_book.preload()
        except Exception:
            _logger.debug("preloading price data failed; it loads on first use", exc_info=True)

    def statistics(self) -> dict[str, Any]:
        stats = self.ledger.statistics()
        stats["budgets"] = self.budgets.status()
        store = self.budgets.store_status()
        if store is not None:
            # Budget spend above is the store's (fleet-wide for Redis); the other totals are this process's.
            stats["budget_store"] = store
        gateway_prices = [
            {"provider": provider, "server_address": server, "model": model, "price_provider": price_provider,
             "price_model": price_model}
            for (provider, server, model), (price_provider, price_model) in list(self.recorder.gateway_prices.items())
        ]
        if gateway_prices:
            stats["gateway_prices"] = gateway_prices
        stats = enrich(stats, self.price_book, activity=self.activity.snapshot(), candidates=self.candidates)
        # Strict JSON without float noise: a $0 limit's infinite utilization becomes None.
        return machine_values(stats)

    def _report_at_exit(self) -> None:
        import sys

        from otel_tokens._internal.base.files import write_private_atomically
        from otel_tokens._internal.outputs.report import render_report

        if self is not _runtime:  # uninstrumented since: its report would be stale
            return
        try:
            text = render_report(self.statistics(), "text", price_book=self.price_book)
            if self.settings.report == "stderr":
                print(text, file=sys.stderr)
            else:
                # Whole or not at all, 0600, and a symlink at the path is replaced, not followed.
                write_private_atomically(self.settings.report, text)
        except Exception:
            _logger.exception("could not write the report to %s", self.settings.report)


_lock = threading.Lock()
_runtime: Runtime | None = None


def runtime_for(
    tracer_provider: Any = None,
    meter_provider: Any = None,
    logger_provider: Any = None,
    *,
    implicit: bool = False,
    **settings: Any,
) -> Runtime:
    """The process's runtime, built on first use from the environment and these arguments.

    ``implicit`` is for set_budget() and friends called before instrument(): the runtime they create
    is bound to the providers instrument() is given later.
    """
    global _runtime
    check_arguments(tracer_provider, meter_provider, settings, logger_provider)
    with _lock:
        if _runtime is None:
            _runtime = Runtime(
                Settings.from_env(**settings), tracer_provider, meter_provider, logger_provider, implicit=implicit)
            return _runtime
        if _runtime.implicit and not implicit:
            if settings and not _runtime.ledger.has_calls:
                # set_budget() or set_price() came first: instrument()'s settings still apply. A runtime is
                # built with them and those calls are made again on it.
                built = Runtime(Settings.from_env(**settings), tracer_provider, meter_provider, logger_provider)
                for configure in _runtime.configuration:
                    configure(built)
                if not built.settings.thread_context:
                    threads.uninstall()
                _close(_runtime)
                _runtime = built
                return _runtime
            _runtime.implicit = False
            _runtime.bind(tracer_provider, meter_provider, logger_provider)
        if settings.pop("span_processor", None) and not _runtime.settings.span_processor:
            # set_budget() before instrument(span_processor=True) built the runtime: still honoured.
            add_span_processor(tracer_provider)
        if settings:
            _logger.warning(
                "otel_tokens was already configured (by instrument(), or by calls recorded before it); "
                "settings %s are ignored: pass them to the first instrument()", sorted(settings),
            )
        return _runtime


def current_runtime() -> Runtime | None:
    return _runtime


def drop_runtime() -> None:
    """Forget the runtime (after uninstrument), so the next instrument() reads settings afresh."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
        use_tracer(None)
    threads.uninstall()
    if runtime is not None:
        _close(runtime)


def _close(runtime: Runtime) -> None:
    runtime.budgets.close()
    if runtime.usage_log is not None:
        runtime.usage_log.close()


# Tracer providers instrument(span_processor=True) added a processor to: once each, whatever re-instruments.
_with_processor: weakref.WeakSet[Any] = weakref.WeakSet()
_processor_lock = threading.Lock()  # not _lock: runtime_for() holds that while a runtime binds


def add_span_processor(tracer_provider: Any) -> None:
    """Add a GenAISpanProcessor to this provider (None: the global one) unless one was added already."""
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    if not callable(getattr(provider, "add_span_processor", None)):
        _logger.warning(
            "OTEL_TOKENS_SPAN_PROCESSOR is on but the tracer provider (%s) takes no span processors; "
            "set an SDK TracerProvider before instrument()", type(provider).__name__,
        )
        return
    with _processor_lock:
        if provider in _with_processor:
            return
        _with_processor.add(provider)
    provider.add_span_processor(SpanCalls(current_runtime))

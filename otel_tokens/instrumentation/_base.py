"""What every SDK instrumentor shares: a patch table, deferred patching, symmetric uninstrument."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Collection, Sequence
from typing import Any

import wrapt

from otel_tokens._internal.calls.engine import Patch, PatchSet, Switch

_logger = logging.getLogger(__name__)
_BASE_MODULE = "opentelemetry.instrumentation.instrumentor"


class SDKInstrumentor:
    """Instruments one SDK package from its patch table.

    If the SDK is not imported yet, the patches are applied when it is (a post-import hook), so
    ``import otel_tokens.auto`` does not import every installed SDK at start-up.

    It keeps ``BaseInstrumentor``'s contract (one instance per class; idempotent ``instrument()`` and
    ``uninstrument()``; the dependency check unless ``skip_dep_check``; ``raise_exception_on_conflict`` for
    the ``opentelemetry-instrument`` launcher) and is registered as its virtual subclass once
    ``opentelemetry.instrumentation.instrumentor`` is imported, so ``isinstance`` holds. It does not
    subclass it: that module imports ``packaging`` and the HTTP/DB semconv tables, a third of our
    start-up, for a dependency check ``otel_tokens.instrument()`` skips (it tests that the SDK exists).
    """

    _instance: SDKInstrumentor | None = None
    _is_instrumented_by_opentelemetry = False

    package: str = ""
    # The module whose import applies the patches, when not ``package``: a namespace package
    # (mistralai 3.x) fires no post-import hook.
    hook_module: str = ""
    requirement: str = ""

    def patches(self) -> Sequence[Patch]:
        raise NotImplementedError

    def __new__(cls, *args: Any, **kwargs: Any) -> SDKInstrumentor:
        if cls._instance is None:
            cls._instance = object.__new__(cls)
        return cls._instance

    @property
    def is_instrumented_by_opentelemetry(self) -> bool:
        return self._is_instrumented_by_opentelemetry

    def instrumentation_dependencies(self) -> Collection[str]:
        return (self.requirement,)

    def instrument(self, **kwargs: Any) -> Any:
        """Instrument the SDK (``BaseInstrumentor.instrument``'s behaviour and arguments)."""
        if self._is_instrumented_by_opentelemetry:
            _logger.warning("Attempting to instrument while already instrumented")
            return None
        skip_dep_check = kwargs.pop("skip_dep_check", False)
        raise_exception_on_conflict = kwargs.pop("raise_exception_on_conflict", False)
        if not skip_dep_check:
            from opentelemetry.instrumentation.dependencies import (
                DependencyConflictError,
                get_dependency_conflicts,
            )

            conflict = get_dependency_conflicts(self.instrumentation_dependencies())
            if conflict:
                if raise_exception_on_conflict:
                    raise DependencyConflictError(conflict)
                _logger.error(conflict._format_message(type(self).__name__))
                return None
        result = self._instrument(**kwargs)
        self._is_instrumented_by_opentelemetry = True
        return result

    def uninstrument(self, **kwargs: Any) -> Any:
        """Remove the patches (``BaseInstrumentor.uninstrument``'s behaviour)."""
        if self._is_instrumented_by_opentelemetry:
            result = self._uninstrument(**kwargs)
            self._is_instrumented_by_opentelemetry = False
            return result
        _logger.warning("Attempting to uninstrument while already uninstrumented")
        return None

    def _instrument(self, **kwargs: Any) -> None:
        from otel_tokens._internal.setup.runtime import runtime_for

        recorder = kwargs.get("recorder") or runtime_for(
            tracer_provider=kwargs.get("tracer_provider"), meter_provider=kwargs.get("meter_provider"),
            logger_provider=kwargs.get("logger_provider"),
        ).recorder
        self._switch = Switch()
        self._switch.on = True
        self._patch_set: PatchSet | None = None
        self._lock = threading.Lock()
        switch = self._switch

        def apply(_module: Any = None) -> None:
            with self._lock:
                if switch.on and self._patch_set is None:
                    self._prepare(recorder)
                    self._patch_set = PatchSet(self.patches(), recorder, switch)
                    self._patch_set.apply()

        hook_module = self.hook_module or self.package
        if hook_module in sys.modules:
            apply()
        else:
            wrapt.register_post_import_hook(apply, hook_module)

    def _prepare(self, recorder: Any) -> None:
        """Hook for SDK-specific set-up done once the SDK is imported."""

    def _uninstrument(self, **kwargs: Any) -> None:
        switch = getattr(self, "_switch", None)
        if switch is None:
            return
        with self._lock:
            switch.on = False
            if self._patch_set is not None:
                self._patch_set.remove()
                self._patch_set = None


def _register(module: Any) -> None:
    module.BaseInstrumentor.register(SDKInstrumentor)


# Fires now if the module is already imported (the launcher imports it), else when it is.
wrapt.register_post_import_hook(_register, _BASE_MODULE)

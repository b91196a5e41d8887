"""What every SDK instrumentor shares: a patch table, deferred patching, symmetric uninstrument."""

from __future__ import annotations

import sys
import threading
from collections.abc import Collection, Sequence
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from otel_tokens._internal.engine import Patch, PatchSet, Switch


class SDKInstrumentor(BaseInstrumentor):
    """Instruments one SDK package from its patch table.

    If the SDK is not imported yet, the patches are applied when it is (a post-import hook), so
    ``import otel_tokens.auto`` does not import every installed SDK at start-up.
    """

    package: str = ""
    # The module whose import applies the patches, when not ``package``: a namespace package
    # (mistralai 3.x) fires no post-import hook.
    hook_module: str = ""
    requirement: str = ""

    def patches(self) -> Sequence[Patch]:
        raise NotImplementedError

    def instrumentation_dependencies(self) -> Collection[str]:
        return (self.requirement,)

    def _instrument(self, **kwargs: Any) -> None:
        from otel_tokens._internal.runtime import runtime_for

        recorder = kwargs.get("recorder") or runtime_for(
            tracer_provider=kwargs.get("tracer_provider"), meter_provider=kwargs.get("meter_provider")
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

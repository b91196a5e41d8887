"""Mistral, Cohere and Ollama imported after ``instrument()``: patched when imported, never before.

Each case runs in a fresh interpreter, so the SDK is really not imported yet when otel-tokens starts.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# (SDK package, import statement, the attribute that must hold otel-tokens' wrapper once imported)
CASES = {
    # mistralai 3.x is a namespace package: the hook fires on "mistralai", before mistralai.client loads.
    "mistralai": ("from mistralai.client import Mistral, chat", "vars(chat.Chat)['complete']"),
    # cohere loads cohere.v2.client lazily: it is patched when the SDK loads it, not before.
    "cohere": ("import cohere\nfrom cohere.v2 import client as v2_client", "vars(v2_client.V2Client)['chat']"),
    # ollama binds ollama.chat at import; the module attribute must be wrapped as well.
    "ollama": ("import ollama", "ollama.chat"),
}

SCRIPT = """
import sys
import wrapt
import otel_tokens
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

otel_tokens.instrument(tracer_provider=TracerProvider(), meter_provider=MeterProvider())
assert {package!r} not in sys.modules, "instrument() imported the SDK"
{statement}
target = {target}
assert isinstance(target, wrapt.FunctionWrapper), type(target)
otel_tokens.uninstrument()
target = {target}
assert not isinstance(target, wrapt.FunctionWrapper), type(target)
print("ok")
"""


@pytest.mark.parametrize("package", sorted(CASES))
def test_sdk_imported_after_instrument_is_patched_and_unpatched(package: str) -> None:
    statement, target = CASES[package]
    script = SCRIPT.format(package=package, statement=statement, target=target)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

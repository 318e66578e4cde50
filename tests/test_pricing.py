"""Prices: bundled genai-prices data per provider, overrides, tiers, unknown models, exact micro-USD costs."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from omnigate.chat.models import Usage
from omnigate.pricing import ModelPrice, PriceBook, PriceFileError, cost_micros

D = Decimal


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.levelno, record.getMessage()))


@pytest.fixture
def pricing_log() -> Iterator[Captured]:
    logger = logging.getLogger("omnigate.pricing")
    handler, old_level = Captured(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    prices = PriceBook(None)
    prices.warm()
    return prices


def by_hand(total_micro_usd: Decimal) -> int:
    return int(total_micro_usd.to_integral_value(rounding=ROUND_HALF_UP))


def test_costs_equal_the_exact_decimal_sum_rounded_half_up_once() -> None:
    """Integer arithmetic over the prices' common power of ten gives what the Decimal formula gives."""
    rng = random.Random(11)
    prices = [
        D("0"),
        D("0.15"),
        D("2.5"),
        D("10"),
        D("0.075"),
        D("1E+1"),
        D("3.0000"),
        D("0.0000001"),
        D("7.123456789"),
    ]
    for _ in range(2_000):
        cache_read, cache_write = rng.choice([None, *prices]), rng.choice([None, *prices])
        price = ModelPrice(rng.choice(prices), rng.choice(prices), cache_read, cache_write)
        usage = Usage(
            input_tokens=rng.choice([0, 1, 3, 999, 200_001, 10**9]),
            output_tokens=rng.choice([0, 1, 7, 4_096, -5]),
            cache_read_tokens=rng.choice([0, 2, 150, -1]),
            cache_write_tokens=rng.choice([0, 5, 77]),
        )
        read, write = max(usage.cache_read_tokens, 0), max(usage.cache_write_tokens, 0)
        exact = (
            max(usage.input_tokens - read - write, 0) * price.input
            + read * (price.input if cache_read is None else cache_read)
            + write * (price.input if cache_write is None else cache_write)
            + max(usage.output_tokens, 0) * price.output
        )
        assert cost_micros(price, usage) == by_hand(exact), (price, usage)
    assert cost_micros(ModelPrice(D("0.5"), D("0")), Usage(input_tokens=5)) == 3  # 2.5 rounds up
    assert cost_micros(ModelPrice(D("0.5"), D("0")), Usage(input_tokens=3)) == 2  # 1.5 rounds up


def test_openai_gpt4o_with_cached_tokens(book: PriceBook) -> None:
    price = book.price("openai", "gpt-4o")
    assert price == ModelPrice(D("2.5"), D("10"), D("1.25"), None)
    usage = Usage(input_tokens=12_345, output_tokens=678, cache_read_tokens=4_096)
    expected = (12_345 - 4_096) * D("2.5") + 4_096 * D("1.25") + 678 * D("10")
    assert cost_micros(price, usage) == by_hand(expected) == 32_523  # 32,522.5 rounds half up
    assert book.price("openai", "gpt-4o-2024-08-06") == price  # dated snapshot names match


def test_anthropic_cache_read_and_5_minute_write(book: PriceBook) -> None:
    price = book.price("anthropic", "claude-sonnet-4-20250514")
    assert price == ModelPrice(D("3"), D("15"), D("0.3"), D("3.75"))
    usage = Usage(input_tokens=10_000, output_tokens=500, cache_read_tokens=6_000, cache_write_tokens=3_000)
    expected = 1_000 * D("3") + 6_000 * D("0.3") + 3_000 * D("3.75") + 500 * D("15")
    assert cost_micros(price, usage) == by_hand(expected) == 23_550


def test_gemini_thoughts_are_billed_as_output(book: PriceBook) -> None:
    price = book.price("gemini", "gemini-2.5-flash")
    assert price is not None and (price.input, price.output, price.cache_read) == (
        D("0.3"),
        D("2.5"),
        D("0.03"),
    )
    # output_tokens includes the 700 thoughts tokens; reasoning_tokens is informational only.
    usage = Usage(input_tokens=1_001, output_tokens=900, reasoning_tokens=700)
    expected = 1_001 * D("0.3") + 900 * D("2.5")
    assert cost_micros(price, usage) == by_hand(expected) == 2_550  # 2,550.3
    assert book.price("gemini", "models/gemini-2.5-flash") == price


def test_gemini_long_context_tier(book: PriceBook) -> None:
    price = book.price("gemini", "gemini-2.5-pro")
    assert price is not None and (price.input, price.output) == (D("1.25"), D("10"))
    assert [(t.above, t.price.input, t.price.output, t.price.cache_read) for t in price.tiers] == [
        (200_000, D("2.5"), D("15"), D("0.25"))
    ]
    short = Usage(input_tokens=200_000, output_tokens=1_000)
    assert cost_micros(price, short) == 200_000 * 1.25 + 1_000 * 10
    long = Usage(input_tokens=200_001, output_tokens=1_000, cache_read_tokens=100_000)
    expected = 100_001 * D("2.5") + 100_000 * D("0.25") + 1_000 * D("15")
    assert cost_micros(price, long) == by_hand(expected)


def test_azure_uses_openai_prices_for_openai_named_deployments(book: PriceBook) -> None:
    openai = book.price("openai", "gpt-4o")
    assert book.price("azure", "gpt-4o") == openai
    assert book.price("azure", "gpt-4o-prod") == openai  # deployment named after the model
    assert book.price("azure", "gpt-4o-mini-eu") == book.price("openai", "gpt-4o-mini") != openai


def test_costs_match_genai_prices_calculation(book: PriceBook) -> None:
    """Our integer micro-USD equals genai-prices' own Decimal total, rounded once, on random usage."""
    from genai_prices import Usage as GenaiUsage
    from genai_prices import calc_price

    now = datetime.now(UTC)
    rng = random.Random(7)
    cases = [
        ("openai", "openai", "gpt-4o"),
        ("openai", "openai", "o3"),
        ("anthropic", "anthropic", "claude-3-5-haiku-latest"),
        ("anthropic", "anthropic", "claude-sonnet-4-5"),
        ("gemini", "google", "gemini-2.5-pro"),
        ("gemini", "google", "gemini-2.0-flash"),
        ("azure", "azure", "gpt-4.1-mini"),
    ]
    for provider, genai_provider, model in cases:
        price = book.price(provider, model)
        assert price is not None, model
        for _ in range(25):
            cache_read = rng.randrange(0, 150_000)
            cache_write = rng.randrange(0, 50_000) if provider == "anthropic" else 0
            input_tokens = cache_read + cache_write + rng.randrange(0, 150_000)
            output_tokens = rng.randrange(0, 20_000)
            ours = cost_micros(
                price,
                Usage(
                    input_tokens, output_tokens, cache_read_tokens=cache_read, cache_write_tokens=cache_write
                ),
            )
            theirs = calc_price(
                GenaiUsage(
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cache_read_tokens=cache_read,
                    cache_write_tokens=cache_write,
                ),
                model,
                provider_id=genai_provider,
                genai_request_timestamp=now,
            ).total_price
            assert ours == by_hand(theirs * 1_000_000), (model, input_tokens, output_tokens)


def test_override_file_wins_and_adds_models(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "openai/gpt-4o": {"input": 2, "output": 8, "cache_read": 0.5},
                "Custom/My-Model": {"input": "0.1", "output": 0.4, "cache_read": 0.025, "cache_write": 0},
            }
        )
    )
    book = PriceBook(str(path))
    assert book.price("openai", "gpt-4o") == ModelPrice(D("2"), D("8"), D("0.5"), None)
    custom = book.price("custom", "my-model")
    assert custom == ModelPrice(D("0.1"), D("0.4"), D("0.025"), D("0"))
    usage = Usage(input_tokens=1_000, output_tokens=100, cache_read_tokens=200, cache_write_tokens=300)
    # Floats are read exactly as written (0.1, not 0.1000000000000000055...).
    assert cost_micros(custom, usage) == by_hand(500 * D("0.1") + 200 * D("0.025") + 0 + 100 * D("0.4")) == 95
    # cache writes without a write price fall back to the input price.
    assert cost_micros(book.price("openai", "gpt-4o"), usage) == 500 * 2 + 200 * 0.5 + 300 * 2 + 100 * 8  # type: ignore[arg-type]


def test_rounding_is_half_up_once_at_the_end() -> None:
    price = ModelPrice(D("0.15"), D("0.6"))
    assert cost_micros(price, Usage(input_tokens=3)) == 0  # 0.45
    assert cost_micros(price, Usage(input_tokens=3, output_tokens=1)) == 1  # 0.45 + 0.6 = 1.05, not 0 + 1
    assert cost_micros(ModelPrice(D("0.5"), D("0")), Usage(input_tokens=1)) == 1  # 0.5 -> 1
    assert cost_micros(ModelPrice(D("0.5"), D("0")), Usage(input_tokens=5)) == 3  # 2.5 -> 3
    # Inconsistent counts (more cached than input) never go negative.
    assert cost_micros(ModelPrice(D("1"), D("1"), D("0")), Usage(input_tokens=5, cache_read_tokens=9)) == 0


def test_unknown_model_is_none_and_logged_once(pricing_log: Captured) -> None:
    book = PriceBook(None)
    assert book.price("openai", "gpt-does-not-exist") is None
    assert book.price("openai", "gpt-does-not-exist") is None
    assert book.price("my-local", "llama") is None  # provider with no bundled data
    assert book.unknown_models == {"openai/gpt-does-not-exist", "my-local/llama"}
    warnings = [m for level, m in pricing_log.messages if level == logging.WARNING]
    assert len(warnings) == 2
    assert "openai/gpt-does-not-exist" in warnings[0] and "unknown (NULL)" in warnings[0]


def test_price_is_resolved_once_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    book = PriceBook(None)
    calls: list[tuple[str, str]] = []
    original = book._resolve

    def counting(provider: str, model: str) -> ModelPrice | None:
        calls.append((provider, model))
        return original(provider, model)

    monkeypatch.setattr(book, "_resolve", counting)
    for _ in range(3):
        book.price("openai", "gpt-4o")
        book.price("openai", "nope-model")
    assert calls == [("openai", "gpt-4o"), ("openai", "nope-model")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"gpt-4o": {"input": 1, "output": 2}}', "'gpt-4o' must look like"),
        ('{"openai/": {"input": 1, "output": 2}}', "'openai/' must look like"),
        ('{"openai/x": [1, 2]}', "'openai/x': expected an object"),
        ('{"openai/x": {"input": 1}}', "'openai/x': missing required field(s) output"),
        ('{"openai/x": {"input": -1, "output": 2}}', "'openai/x': 'input' must be a finite number >= 0"),
        ('{"openai/x": {"input": 1, "output": "cheap"}}', "'openai/x': 'output' is not a number"),
        ('{"openai/x": {"input": true, "output": 2}}', "'openai/x': 'input' must be a number"),
        ('{"openai/x": {"input": 1, "output": 2, "cache_red": 1}}', "'openai/x': unknown field(s) cache_red"),
        ('{"openai/x": {"input": 1, "output": "NaN"}}', "'openai/x': 'output' must be a finite number"),
        ('{"openai/x": {"input": 1, "output": 2}, "OpenAI/X": {"input": 1, "output": 2}}', "duplicate"),
    ],
)
def test_bad_override_file_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(PriceFileError) as caught:
        PriceBook(str(path))
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot read model price file"):
        PriceBook(str(tmp_path / "nope.json"))


def test_genai_prices_is_imported_lazily() -> None:
    code = (
        "import sys, omnigate.pricing, omnigate.usage.writer\n"
        "book = omnigate.pricing.PriceBook(None)\n"
        "assert 'genai_prices' not in sys.modules, 'imported too early'\n"
        "assert book.price('openai', 'gpt-4o') is not None\n"
        "assert 'genai_prices' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)

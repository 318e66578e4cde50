"""Model prices (operator overrides, then genai-prices' bundled offline data) and exact micro-USD costs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, DecimalTuple, InvalidOperation
from pathlib import Path
from typing import Any

import attrs

from omnigate.chat.models import Usage

logger = logging.getLogger("omnigate.pricing")

# omnigate provider name -> genai-prices provider ids to look in, in order.
PROVIDER_IDS: dict[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "gemini": ("google",),
    "azure": ("azure", "openai"),
}
_OVERRIDE_FIELDS = ("input", "output", "cache_read", "cache_write")
_REQUIRED_FIELDS = ("input", "output")
# Bounds on per-model state, so a flood of distinct model names cannot grow memory or the log without end.
_MAX_CACHED = 10_000
_MAX_UNKNOWN_LOGGED = 1_000


@attrs.frozen
class PriceTier:
    """Prices that replace the base ones for every token once input tokens exceed ``above`` (a cliff)."""

    above: int
    price: ModelPrice


@attrs.frozen
class ModelPrice:
    """USD per million tokens (= micro-USD per token). ``None`` cache prices mean "bill at ``input``".

    ``tiers`` (ascending ``above``) hold long-context prices from the bundled data, e.g. Gemini 2.5 Pro
    or Claude Sonnet 4.5 above 200k input tokens; the base fields are the prices below the first tier.
    """

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    tiers: tuple[PriceTier, ...] = attrs.field(default=(), kw_only=True)
    # (10^k, input, output, cache read, cache write): the prices as exact integers over one power of
    # ten, made once, so a cost is integer arithmetic (Decimal's took three times as long per request).
    scaled: tuple[int, int, int, int, int] = attrs.field(
        init=False, eq=False, repr=False, default=attrs.Factory(lambda self: _scaled(self), takes_self=True)
    )


def _scaled(price: ModelPrice) -> tuple[int, int, int, int, int]:
    prices = (
        price.input,
        price.output,
        price.input if price.cache_read is None else price.cache_read,
        price.input if price.cache_write is None else price.cache_write,
    )
    parts = [value.as_tuple() for value in prices]
    places = max(0, *(-int(part.exponent) for part in parts))

    def whole(part: DecimalTuple) -> int:
        magnitude: int = int("".join(map(str, part.digits))) * 10 ** (int(part.exponent) + places)
        return -magnitude if part.sign else magnitude

    denominator: int = 10**places
    input_price, output_price, cache_read_price, cache_write_price = (whole(part) for part in parts)
    return denominator, input_price, output_price, cache_read_price, cache_write_price


class PriceFileError(ValueError):
    """The operator's price override file is unreadable or malformed."""


def cost_micros(price: ModelPrice, usage: Usage) -> int:
    """The cost of ``usage`` in integer micro-USD: an exact sum, rounded half-up once at the end."""
    if price.tiers and usage.input_tokens > price.tiers[0].above:
        for tier in reversed(price.tiers):
            if usage.input_tokens > tier.above:
                price = tier.price
                break
    denominator, input_price, output_price, cache_read_price, cache_write_price = price.scaled
    cache_read = max(usage.cache_read_tokens, 0)
    cache_write = max(usage.cache_write_tokens, 0)
    uncached = max(usage.input_tokens - cache_read - cache_write, 0)
    total = (
        uncached * input_price
        + cache_read * cache_read_price
        + cache_write * cache_write_price
        + max(usage.output_tokens, 0) * output_price
    )
    magnitude = (2 * abs(total) + denominator) // (2 * denominator)  # half-up: ties away from zero
    return -magnitude if total < 0 else magnitude


def _decimal(path: str, key: str, field: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise PriceFileError(
            f"{path}: {key!r}: {field!r} must be a number (USD per million tokens), got {value!r}"
        )
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise PriceFileError(f"{path}: {key!r}: {field!r} is not a number: {value!r}") from None
    if not number.is_finite() or number < 0:
        raise PriceFileError(f"{path}: {key!r}: {field!r} must be a finite number >= 0, got {value!r}")
    return number


def load_overrides(path: str) -> dict[tuple[str, str], ModelPrice]:
    """Parse and validate an override file: ``{"<provider>/<model>": {"input": 2.5, "output": 10, ...}}``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceFileError(f"cannot read model price file {path}: {exc}") from exc
    try:
        data = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise PriceFileError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PriceFileError(f'{path}: expected a JSON object of "<provider>/<model>" keys')
    prices: dict[tuple[str, str], ModelPrice] = {}
    for key, entry in data.items():
        provider, _, model = key.partition("/")
        if not provider.strip() or not model.strip():
            raise PriceFileError(
                f'{path}: key {key!r} must look like "<provider>/<model>", e.g. "openai/gpt-4o"'
            )
        if not isinstance(entry, dict):
            raise PriceFileError(
                f"{path}: {key!r}: expected an object with input/output prices, got {entry!r}"
            )
        unknown = sorted(set(entry) - set(_OVERRIDE_FIELDS))
        if unknown:
            raise PriceFileError(
                f"{path}: {key!r}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(_OVERRIDE_FIELDS)})"
            )
        missing = [name for name in _REQUIRED_FIELDS if name not in entry]
        if missing:
            raise PriceFileError(f"{path}: {key!r}: missing required field(s) {', '.join(missing)}")
        values = {name: _decimal(path, key, name, entry[name]) for name in _OVERRIDE_FIELDS if name in entry}
        normalised = (provider.strip().lower(), model.strip().lower())
        if normalised in prices:
            raise PriceFileError(f"{path}: {key!r}: duplicate entry (keys are case-insensitive)")
        prices[normalised] = ModelPrice(
            input=values["input"],
            output=values["output"],
            cache_read=values.get("cache_read"),
            cache_write=values.get("cache_write"),
        )
    return prices


class _BundledPrices:
    """genai-prices' bundled snapshot, imported on first use (about 0.5 s) and never updated online."""

    def __init__(self) -> None:
        # Import here, not at module import: the data module is large and most processes price lazily.
        from genai_prices.data import providers

        self._providers: list[Any] = list(providers)
        self._by_id: dict[str, Any] = {p.id: p for p in self._providers}
        self._now = datetime.now(UTC)

    def find(self, provider_id: str, model: str) -> Any | None:
        """The genai-prices ModelInfo for ``model`` at ``provider_id`` (with its own fallbacks), or None."""
        provider = self._by_id.get(provider_id)
        if provider is None:
            return None
        return provider.find_model(model, all_providers=self._providers)

    def price_of(self, info: Any) -> ModelPrice | None:
        """The standard (no service-tier variant) prices in force now, with tiers; None if not per-token."""
        from genai_prices.types import TieredPrices

        raw = info.get_prices(self._now)
        fields = {
            "input": raw.input_mtok,
            "output": raw.output_mtok,
            "cache_read": raw.cache_read_mtok,
            "cache_write": raw.cache_write_mtok,  # the 5-minute write price; 1-hour writes are not split out
        }
        if fields["input"] is None:
            return None
        if fields["output"] is None:
            fields["output"] = Decimal(0)  # input-only models (embeddings) produce no output tokens

        def at(value: Any, tokens: int) -> Decimal | None:
            if not isinstance(value, TieredPrices):
                return value if value is None else Decimal(value)
            chosen = value.base
            for tier in value.tiers:
                if tokens > tier.start:
                    chosen = tier.price
            return Decimal(chosen)

        starts = sorted({t.start for v in fields.values() if isinstance(v, TieredPrices) for t in v.tiers})
        base = {name: at(value, 0) for name, value in fields.items()}
        tiers = tuple(
            PriceTier(start, _model_price({name: at(value, start + 1) for name, value in fields.items()}))
            for start in starts
        )
        return attrs.evolve(_model_price(base), tiers=tiers)


def _model_price(values: Mapping[str, Decimal | None]) -> ModelPrice:
    input_price, output_price = values["input"], values["output"]
    if input_price is None or output_price is None:
        raise ValueError("a model price needs input and output prices")
    return ModelPrice(input_price, output_price, values["cache_read"], values["cache_write"])


def _azure_candidates(model: str) -> Iterable[str]:
    """Azure deployment names like ``gpt-4o-prod``: try ``gpt-4o-prod``, then ``gpt-4o``, ``gpt``."""
    name = model
    while "-" in name:
        name = name.rsplit("-", 1)[0]
        if name:
            yield name


class PriceBook:
    """Resolves each (provider, model) price once and caches it, misses included; then lookups are a dict get.

    Sources in order: the operator's override file, then genai-prices' bundled data. Prices are the
    standard ones in force when the bundled data is first loaded; the process never fetches prices
    online, so they change only when an operator edits the file or upgrades genai-prices and restarts.
    """

    def __init__(self, overrides_file: str | None = None) -> None:
        self._overrides = load_overrides(overrides_file) if overrides_file else {}
        self._cache: dict[tuple[str, str], ModelPrice | None] = {}
        self._bundled: _BundledPrices | None = None
        self.unknown_models: set[str] = set()

    def price(self, provider: str, model: str) -> ModelPrice | None:
        """The model's price, or None when no source knows it (record the cost as unknown, never $0)."""
        key = (provider, model)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = self._resolve(provider, model)
        if len(self._cache) < _MAX_CACHED:
            self._cache[key] = found
        name = f"{provider}/{model}"
        if (
            found is None
            and name not in self.unknown_models
            and len(self.unknown_models) < _MAX_UNKNOWN_LOGGED
        ):
            self.unknown_models.add(name)
            logger.warning(
                "no price known for model %s: its cost is recorded as unknown (NULL); "
                "add it to MODEL_PRICES_FILE",
                name,
            )
        return found

    def warm(self, models: Iterable[tuple[str, str]] = ()) -> None:
        """Load the bundled data now (blocking, ~0.5 s) and resolve the given (provider, model) pairs."""
        self._data()
        for provider, model in models:
            self.price(provider, model)

    def known_models(self, provider: str) -> list[str]:
        """Model ids with a price for ``provider``: the overrides, plus the bundled data's own models.

        Azure deployments are named by each operator, so only overrides list them.
        """
        provider_key = provider.strip().lower()
        names = {model for (p, model) in self._overrides if p == provider_key}
        if provider_key != "azure":
            for provider_id in PROVIDER_IDS.get(provider_key, ())[:1]:
                info = self._data()._by_id.get(provider_id)
                names.update(str(model.id) for model in getattr(info, "models", ()))
        return sorted(names)

    def _data(self) -> _BundledPrices:
        if self._bundled is None:
            self._bundled = _BundledPrices()
        return self._bundled

    def _resolve(self, provider: str, model: str) -> ModelPrice | None:
        provider_key, model_key = provider.strip().lower(), model.strip().lower()
        override = self._overrides.get((provider_key, model_key))
        if override is not None:
            return override
        provider_ids = PROVIDER_IDS.get(provider_key)
        if provider_ids is None:
            return None
        if provider_key == "gemini":
            model_key = model_key.removeprefix("models/")
        data = self._data()
        for provider_id in provider_ids:
            info = data.find(provider_id, model_key)
            if info is not None:
                return data.price_of(info)
        if provider_key == "azure":
            for candidate in _azure_candidates(model_key):
                info = data.find("openai", candidate)
                if info is not None:
                    logger.info("pricing azure deployment %r as OpenAI model %r", model, info.id)
                    return data.price_of(info)
        return None

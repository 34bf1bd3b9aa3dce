"""Read a LiteLLM price map (model_prices_and_context_window.json) into catalog prices. Pure: no database.

LiteLLM prices tokens in USD per token; the catalog prices them per 1M tokens. The file is parsed with
`parse_float=Decimal`, so a price such as 1.5e-07 per token becomes exactly 0.15 per 1M: no float is ever made.
Entries that cannot become a catalog price are returned as problems with the reason, never raised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from pricing.money import PRECISE, precise

MILLION = Decimal(1_000_000)
# LiteLLM's documentation entry at the top of the file, not a model
SAMPLE_SPEC_KEY = "sample_spec"
TOKEN_MODES = frozenset({"chat", "completion", "responses"})
IMAGE_MODES = frozenset({"image_generation"})
HANDLED_MODES = TOKEN_MODES | IMAGE_MODES
MAX_MODEL_ID_LENGTH = 200
MAX_PROVIDER_LENGTH = 100
# the largest amount PreciseDecimalField(max_digits=28, decimal_places=12) stores: 16 whole digits
MAX_AMOUNT = Decimal(10) ** 16 - PRECISE


class PriceMapError(ValueError):
    """The file as a whole is unusable (not JSON, or not an object of entries)."""


@dataclass(frozen=True, slots=True)
class ImportedPrice:
    """One LiteLLM entry as catalog prices: USD per 1M tokens and USD per image, at the stored precision."""

    name: str
    provider: str
    mode: str
    input_per_million: Decimal
    cached_input_per_million: Decimal | None  # None: the input price
    output_per_million: Decimal
    image_price: Decimal


@dataclass(frozen=True, slots=True)
class ImportProblem:
    key: str
    reason: str


@dataclass(frozen=True)
class PriceMap:
    prices: list[ImportedPrice] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)


class _NonFinite:
    """What NaN, Infinity and -Infinity in the file become: refused per entry, not for the whole file."""

    def __init__(self, text: str) -> None:
        self.text = text


class _EntryRefused(ValueError):
    pass


def _amount(entry: dict[str, object], name: str, *, per: Decimal) -> Decimal | None:
    """The entry's `name` cost times `per`, or None when absent; refused when not a finite number >= 0."""
    if name not in entry or entry[name] is None:
        return None
    value = entry[name]
    if isinstance(value, _NonFinite):
        raise _EntryRefused(f"{name} is {value.text}, not a finite number")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _EntryRefused(f"{name} must be a number, got {type(value).__name__} {value!r}")
    with localcontext() as exact:
        exact.prec = 120  # wide enough that scaling to per 1M never rounds before the one rounding below
        amount = Decimal(value) * per
        if amount < 0:
            raise _EntryRefused(f"{name} is negative ({value})")
        if amount > MAX_AMOUNT:
            raise _EntryRefused(f"{name} is too large ({value})")
        # the catalog stores 12 decimal places; rounding here keeps a re-import from seeing a change that is not there
        return precise(amount)


def _price(name: str, entry: object) -> ImportedPrice:
    if not isinstance(entry, dict):
        raise _EntryRefused(f"entry must be an object, got {type(entry).__name__}")
    if not name.strip() or name != name.strip():
        raise _EntryRefused("the model name is empty or has surrounding spaces")
    if len(name) > MAX_MODEL_ID_LENGTH:
        raise _EntryRefused(f"the model name is longer than {MAX_MODEL_ID_LENGTH} characters")
    mode = entry.get("mode", "chat")
    if not isinstance(mode, str):
        raise _EntryRefused(f"mode must be a string, got {type(mode).__name__}")
    if mode not in HANDLED_MODES:
        raise _EntryRefused(f"mode {mode!r} is not handled (handled: {', '.join(sorted(HANDLED_MODES))})")
    provider = entry.get("litellm_provider", "unknown")
    if not isinstance(provider, str) or not provider.strip() or len(provider) > MAX_PROVIDER_LENGTH:
        raise _EntryRefused(f"litellm_provider must be a name of at most {MAX_PROVIDER_LENGTH} characters")

    input_price = _amount(entry, "input_cost_per_token", per=MILLION)
    output_price = _amount(entry, "output_cost_per_token", per=MILLION)
    cached_price = _amount(entry, "cache_read_input_token_cost", per=MILLION)
    image_price = _amount(entry, "output_cost_per_image", per=Decimal(1))
    if mode in TOKEN_MODES and (input_price is None or output_price is None):
        missing = " and ".join(
            n for n, v in (("input_cost_per_token", input_price), ("output_cost_per_token", output_price)) if v is None
        )
        raise _EntryRefused(f"a {mode} model needs a per-token price; {missing} missing")
    if mode in IMAGE_MODES and image_price is None and (input_price is None or output_price is None):
        raise _EntryRefused("an image_generation model needs output_cost_per_image or per-token prices")
    return ImportedPrice(
        name=name,
        provider=provider.strip(),
        mode=mode,
        input_per_million=input_price or Decimal(0),
        cached_input_per_million=cached_price,
        output_per_million=output_price or Decimal(0),
        image_price=image_price or Decimal(0),
    )


def price_map_parse(text: str | bytes) -> PriceMap:
    """The usable prices of a LiteLLM price map and, for every other entry, why it was left out.

    Raises PriceMapError when the text is not JSON or not an object; the `sample_spec` entry is skipped silently.
    """
    try:
        document = json.loads(text, parse_float=Decimal, parse_constant=_NonFinite)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise PriceMapError(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PriceMapError(f"expected a JSON object of model entries, got {type(document).__name__}")
    result = PriceMap()
    for name, entry in document.items():
        if name == SAMPLE_SPEC_KEY:
            continue
        try:
            result.prices.append(_price(name, entry))
        except _EntryRefused as exc:
            result.problems.append(ImportProblem(key=name, reason=str(exc)))
    return result

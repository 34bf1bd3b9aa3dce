"""Read a LiteLLM price map (model_prices_and_context_window.json) into catalog prices. Pure: no database.

LiteLLM prices tokens in USD per token; the catalog prices them per 1M tokens. The file is parsed with
`parse_float=Decimal`, so a price such as 1.5e-07 per token becomes exactly 0.15 per 1M: no float is ever made.

Every entry ends in exactly one place: a price (`ImportedPrice`, with the fields of it that could not be used and
why), an alias of another entry (`alias_of`, or a provider-prefixed name with the same prices), a size and quality
of another entry's images (`hd/1024-x-1024/dall-e-3`), or a problem with the reason it was refused. Nothing raises
for one entry; only a file that is not a JSON object of entries is an error.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

from pricing.money import PRECISE, precise

MILLION = Decimal(1_000_000)
ONE = Decimal(1)
# LiteLLM's documentation entry at the top of the file, not a model
SAMPLE_SPEC_KEY = "sample_spec"
MAX_MODEL_ID_LENGTH = 200
MAX_PROVIDER_LENGTH = 100
# the largest amount PreciseDecimalField(max_digits=28, decimal_places=12) stores: 16 whole digits
MAX_AMOUNT = Decimal(10) ** 16 - PRECISE
MAX_TOKENS_LIMIT = 2**31 - 1

# LiteLLM's modes and the catalog mode each is rated as; any other mode is refused with its reason
MODES = {
    "chat": "chat",
    "completion": "chat",
    "responses": "chat",
    "embedding": "embedding",
    "image_generation": "image_generation",
    "image_edit": "image_generation",  # priced per image or image token, like a generation
    "audio_transcription": "audio_transcription",
    "audio_speech": "audio_speech",
    "rerank": "rerank",
    "search": "search",
    "video_generation": "video_generation",
    "moderation": "moderation",
}
NOT_RATED_MODES = {
    "realtime": "a realtime (websocket) session is not metered by usage events here",
    "ocr": "OCR is priced per page, which no usage event carries",
    "vector_store": "vector store storage and queries are not metered here",
}
TOKEN_MODES = frozenset({"chat"})

# per-token prices and the per-1M dimension each becomes
TOKEN_FIELDS = {
    "input_cost_per_token": "input_per_million",
    "cache_read_input_token_cost": "cached_input_per_million",
    "input_cost_per_token_cache_hit": "cached_input_per_million",
    "cache_creation_input_token_cost": "cache_write_per_million",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h_per_million",
    "output_cost_per_token": "output_per_million",
    "output_cost_per_reasoning_token": "reasoning_per_million",
    "input_cost_per_image_token": "image_input_per_million",
    "output_cost_per_image_token": "image_output_per_million",
    "input_cost_per_audio_token": "audio_input_per_million",
    "output_cost_per_audio_token": "audio_output_per_million",
}
# per-unit prices and the dimension each becomes
UNIT_FIELDS = {
    "input_cost_per_image": "image_price",
    "output_cost_per_image": "image_price",
    "input_cost_per_second": "price_per_second",
    "output_cost_per_second": "price_per_second",
    "input_cost_per_audio_per_second": "price_per_second",
    "input_cost_per_video_per_second": "price_per_second",
    "output_cost_per_video_per_second": "price_per_second",
    "input_cost_per_character": "price_per_character",
    "output_cost_per_character": "price_per_character",
    "input_cost_per_query": "price_per_request",
    "input_cost_per_request": "price_per_request",
}
PIXEL_FIELDS = ("output_cost_per_pixel", "input_cost_per_pixel")
PER_MILLION_DIMENSIONS = tuple(dict.fromkeys(TOKEN_FIELDS.values()))
PER_UNIT_DIMENSIONS = tuple(dict.fromkeys(UNIT_FIELDS.values()))
SCALAR_DIMENSIONS = PER_MILLION_DIMENSIONS + PER_UNIT_DIMENSIONS
SERVICE_TIERS = {"batches": "batch", "flex": "flex", "priority": "priority"}

# where several fields give one dimension, the first non-zero one in this order is used (per catalog mode)
_SECOND_ORDER = {
    "audio_transcription": ("input_cost_per_second", "input_cost_per_audio_per_second", "output_cost_per_second"),
    "video_generation": ("output_cost_per_video_per_second", "output_cost_per_second", "input_cost_per_second"),
}
_DEFAULT_SECOND_ORDER = (
    "input_cost_per_second", "output_cost_per_second", "input_cost_per_audio_per_second",
    "input_cost_per_video_per_second", "output_cost_per_video_per_second",
)  # fmt: skip
_IMAGE_ORDER = {"image_generation": ("output_cost_per_image", "input_cost_per_image")}
_DEFAULT_IMAGE_ORDER = ("input_cost_per_image", "output_cost_per_image")
_CHARACTER_ORDER = ("input_cost_per_character", "output_cost_per_character")
_REQUEST_ORDER = ("input_cost_per_request", "input_cost_per_query")
_CACHED_ORDER = ("cache_read_input_token_cost", "input_cost_per_token_cache_hit")

# descriptive fields, read or deliberately not: they carry no price
INFO_FIELDS = frozenset({"mode", "litellm_provider", "max_tokens", "max_input_tokens", "max_output_tokens"})
_PRICE_WORDS = ("cost", "price", "tiered_pricing", "uplift", "multiplier")

# price fields the catalog deliberately does without, and why
_KNOWN_UNUSED = {
    "input_dbu_cost_per_token": ("not_usd", "Databricks DBUs per token; the USD price per token is used"),
    "output_dbu_cost_per_token": ("not_usd", "Databricks DBUs per token; the USD price per token is used"),
    "regional_processing_uplift_multiplier_eu": (
        "regional_uplift",
        "a regional processing uplift has no dimension here; the global price is used",
    ),
    "regional_processing_uplift_multiplier_us": (
        "regional_uplift",
        "a regional processing uplift has no dimension here; the global price is used",
    ),
}

_THRESHOLD = re.compile(
    r"^(?P<base>.+?)_above_(?P<count>\d+(?:\.\d+)?)(?P<scale>[km]?)_tokens(?:_(?P<tier>batches|flex|priority))?$"
)
_SERVICE_TIER = re.compile(r"^(?P<base>.+)_(?P<tier>batches|flex|priority)$")
_SIZE = re.compile(r"^(?P<width>\d{1,5})-x-(?P<height>\d{1,5})$")
_QUALITIES = frozenset({"standard", "hd", "low", "medium", "high", "auto"})
_STEPS = re.compile(r"^(?:\d+|max)-steps$")


class PriceMapError(ValueError):
    """The file as a whole is unusable (not JSON, or not an object of entries)."""


@dataclass(frozen=True, slots=True)
class UnusedField:
    """A field of an entry that is not in the catalog, and why (`code` groups the reasons)."""

    field: str
    code: str
    reason: str


@dataclass(slots=True)
class ImportedPrice:
    """One LiteLLM entry as catalog prices: USD per 1M tokens and per unit, at the stored precision.

    `prices` holds the scalar dimensions the entry gives (a dimension it does not give is not priced);
    `tiers` the long-context tiers, ascending; `service_tiers` the batch, flex and priority prices;
    `image_prices` the per-image prices by "<width>x<height>/<quality>" (or "<width>x<height>").
    """

    name: str
    provider: str
    mode: str
    litellm_mode: str
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    prices: dict[str, Decimal] = field(default_factory=dict)
    tiers: list[dict[str, Any]] = field(default_factory=list)
    service_tiers: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    image_prices: dict[str, Decimal] = field(default_factory=dict)
    unused: list[UnusedField] = field(default_factory=list)
    # made from size variants whose model the map does not list on its own (`512-x-512/dall-e-2`)
    from_sizes: bool = False

    def price(self, dimension: str) -> Decimal | None:
        return self.prices.get(dimension)

    @property
    def input_per_million(self) -> Decimal:
        return self.prices.get("input_per_million", Decimal(0))

    @property
    def output_per_million(self) -> Decimal:
        return self.prices.get("output_per_million", Decimal(0))

    @property
    def cached_input_per_million(self) -> Decimal | None:
        return self.prices.get("cached_input_per_million")

    @property
    def image_price(self) -> Decimal:
        return self.prices.get("image_price", Decimal(0))


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """An entry that was not imported, and why."""

    key: str
    reason: str
    code: str = "refused"


@dataclass(frozen=True, slots=True)
class ImportedAlias:
    """An entry that names another entry's model: `alias_of`, or a provider prefix with the very same prices."""

    alias: str
    target: str
    why: str  # "alias_of" or "same_prices"
    price: ImportedPrice | None = None  # a same-prices alias's own price, used if the catalog has it as a model


@dataclass
class PriceMap:
    prices: list[ImportedPrice] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    aliases: list[ImportedAlias] = field(default_factory=list)
    # size/quality entries folded into their model's image_prices: entry name -> model name
    folded: dict[str, str] = field(default_factory=dict)
    entries: int = 0

    def modes(self) -> dict[str, int]:
        return dict(sorted(Counter(p.mode for p in self.prices).items()))


class _NonFinite:
    """What NaN, Infinity and -Infinity in the file become: refused per entry, not for the whole file."""

    def __init__(self, text: str) -> None:
        self.text = text


class _EntryRefused(ValueError):
    def __init__(self, reason: str, code: str = "refused") -> None:
        super().__init__(reason)
        self.code = code


def _number(name: str, value: object, *, per: Decimal) -> Decimal:
    """`value` times `per` at the stored precision; refused when not a finite number >= 0."""
    if isinstance(value, _NonFinite):
        raise _EntryRefused(f"{name} is {value.text}, not a finite number", "not_finite")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _EntryRefused(f"{name} must be a number, got {type(value).__name__} {value!r}", "not_a_number")
    with localcontext() as exact:
        exact.prec = 120  # wide enough that scaling to per 1M never rounds before the one rounding below
        amount = Decimal(value) * per
        if amount < 0:
            raise _EntryRefused(f"{name} is negative ({value})", "negative")
        if amount > MAX_AMOUNT:
            raise _EntryRefused(f"{name} is too large ({value})", "too_large")
        # the catalog stores 12 decimal places; rounding here keeps a re-import from seeing a change that is not there
        return precise(amount)


def _is_zero(value: object) -> bool:
    """A field whose every number is 0 charges nothing: leaving it out loses nothing."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | Decimal):
        return value == 0
    if isinstance(value, dict):
        return all(_is_zero(v) for v in value.values())
    if isinstance(value, list):
        return all(_is_zero(v) for v in value)
    return False


def _is_price_field(name: str) -> bool:
    return any(word in name for word in _PRICE_WORDS)


def _limit(entry: dict[str, Any], name: str, unused: list[UnusedField]) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value != int(value):
        unused.append(UnusedField(name, "not_a_limit", f"{name} must be a whole number of tokens, got {value!r}"))
        return None
    count = int(value)
    if count <= 0 or count > MAX_TOKENS_LIMIT:
        return None  # LiteLLM writes 0 for "none" (moderation's output)
    return count


def _scale(name: str) -> Decimal:
    return MILLION if name in TOKEN_FIELDS else ONE


class _Entry:
    """The parse of one entry: its scalar prices, tiers and service tiers, and the fields it could not use."""

    def __init__(self, name: str, entry: dict[str, Any], mode: str) -> None:
        self.name = name
        self.entry = entry
        self.mode = mode
        self.unused: list[UnusedField] = []
        self.prices: dict[str, Decimal] = {}
        self.tiers: dict[int, dict[str, Decimal]] = {}
        self.service_tiers: dict[str, dict[str, Decimal]] = {}
        self.used: set[str] = set(INFO_FIELDS)
        # long-context prices within a service tier: (field, threshold, dimension, service tier, price)
        self.tiered_service: list[tuple[str, int, str, str, Decimal]] = []

    def unusable(self, name: str, code: str, reason: str) -> None:
        self.used.add(name)
        if not _is_zero(self.entry.get(name)):
            self.unused.append(UnusedField(name, code, reason))

    def amount(self, name: str, *, base: str | None = None) -> Decimal | None:
        """The field's price per 1M tokens (a per-token field, or one derived from `base`) or per unit."""
        value = self.entry.get(name)
        if value is None:
            return None
        return _number(name, value, per=_scale(base or name))

    def scalar(self, dimension: str, order: tuple[str, ...]) -> None:
        """The first non-zero field of `order` gives the dimension; another non-zero one that differs is reported."""
        chosen: tuple[str, Decimal] | None = None
        for name in order:
            amount = self.amount(name)
            if amount is None:
                continue
            self.used.add(name)
            if chosen is None or (chosen[1] == 0 and amount != 0):
                chosen = (name, amount)
        if chosen is None:
            return
        self.prices[dimension] = chosen[1]
        for name in order:
            amount = self.amount(name)
            if name != chosen[0] and amount is not None and amount != 0 and amount != chosen[1]:
                self.unused.append(
                    UnusedField(
                        name,
                        "same_dimension",
                        f"{dimension} is taken from {chosen[0]} ({chosen[1]}); this price ({amount}) has no "
                        "dimension of its own here",
                    )
                )

    def read(self) -> None:
        entry = self.entry
        for name, dimension in TOKEN_FIELDS.items():
            if dimension == "cached_input_per_million":
                continue
            if name in entry:
                amount = self.amount(name)
                self.used.add(name)
                if amount is not None:
                    self.prices[dimension] = amount
        self.scalar("cached_input_per_million", _CACHED_ORDER)
        self.scalar("image_price", _IMAGE_ORDER.get(self.mode, _DEFAULT_IMAGE_ORDER))
        self.scalar("price_per_second", _SECOND_ORDER.get(self.mode, _DEFAULT_SECOND_ORDER))
        self.scalar("price_per_character", _CHARACTER_ORDER)
        self.scalar("price_per_request", _REQUEST_ORDER)
        for name in sorted(entry):
            if name in self.used:
                continue
            value = entry[name]
            if name == "tiered_pricing":
                self.tiered_pricing(value)
            elif match := _THRESHOLD.match(name):
                self.threshold(name, match)
            elif (match := _SERVICE_TIER.match(name)) and match["base"] in TOKEN_FIELDS:
                amount = self.amount(name, base=match["base"])
                self.used.add(name)
                if amount is not None:
                    tier = SERVICE_TIERS[match["tier"]]
                    self.service_tiers.setdefault(tier, {})[TOKEN_FIELDS[match["base"]]] = amount
            elif name in PIXEL_FIELDS:
                self.unusable(
                    name, "pixel_price_without_size", f"{name} is per pixel, and the name gives no image size"
                )
            elif name == "search_context_cost_per_query":
                self.unusable(
                    name,
                    "web_search_tool",
                    "the web-search tool's price per query has no model dimension; price it as a feature",
                )
            elif name in _KNOWN_UNUSED:
                self.unusable(name, *_KNOWN_UNUSED[name])
            elif _is_price_field(name):
                self.unusable(name, "no_dimension", f"{name} has no dimension in the catalog")
        self.tiered_service_check()

    def tiered_service_check(self) -> None:
        """Rating prices a service tier past a threshold at the tier's price times the service tier's ratio to the
        base price; a map price that rule gives is kept, one it does not is reported."""
        for name, count, dimension, tier, amount in self.tiered_service:
            base = self.prices.get(dimension)
            service = self.service_tiers.get(tier, {}).get(dimension)
            long_context = self.tiers.get(count, {}).get(dimension)
            if base and service is not None and long_context is not None:
                with localcontext() as exact:
                    exact.prec = 120
                    if precise(long_context * service / base) == amount:
                        continue
            if amount != 0:
                self.unused.append(
                    UnusedField(
                        name,
                        "tier_within_service_tier",
                        f"a long-context price within the {tier} service tier that is not the {tier} ratio of the "
                        f"long-context price has no dimension here ({amount})",
                    )
                )

    def threshold(self, name: str, match: re.Match[str]) -> None:
        base, tier = match["base"], match["tier"]
        count = Decimal(match["count"]) * {"": 1, "k": 1000, "m": 1_000_000}[match["scale"]]
        if base not in TOKEN_FIELDS or count != int(count):
            self.unusable(
                name, "per_unit_tier", f"a long-context price of {base} has no dimension here (tiers price tokens)"
            )
            return
        if tier is not None:
            self.used.add(name)
            amount = self.amount(name, base=base)
            if amount is not None:
                self.tiered_service.append((name, int(count), TOKEN_FIELDS[base], SERVICE_TIERS[tier], amount))
            return
        amount = self.amount(name, base=base)
        self.used.add(name)
        if amount is not None:
            self.tiers.setdefault(int(count), {})[TOKEN_FIELDS[base]] = amount

    def tiered_pricing(self, value: object) -> None:
        """LiteLLM's `tiered_pricing`: [{"range": [low, high], <per-token price>: ...}]; from 0 is the base price."""
        self.used.add("tiered_pricing")
        if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
            raise _EntryRefused("tiered_pricing must be a list of objects", "not_a_number")
        for tier in value:
            if "range" not in tier:
                keys = ", ".join(sorted(k for k in tier if not _is_price_field(k))) or "no range"
                self.unusable(
                    "tiered_pricing",
                    "tier_by_other_count",
                    f"tiered_pricing is tiered by {keys}, which usage events do not carry",
                )
                return
        for tier in value:
            bounds = tier["range"]
            if (
                not isinstance(bounds, list)
                or not bounds
                or isinstance(bounds[0], bool)
                or not isinstance(bounds[0], int | Decimal)
                or bounds[0] < 0
                or bounds[0] != int(bounds[0])
            ):
                raise _EntryRefused(
                    f"tiered_pricing range must start at a whole number, got {bounds!r}", "not_a_number"
                )
            low = int(bounds[0])
            prices: dict[str, Decimal] = {}
            for name, amount in tier.items():
                if name == "range":
                    continue
                if name not in TOKEN_FIELDS:
                    self.unused.append(
                        UnusedField(
                            f"tiered_pricing.{name}", "per_unit_tier", f"{name} in a tier has no dimension here"
                        )
                    )
                    continue
                prices[TOKEN_FIELDS[name]] = _number(f"tiered_pricing.{name}", amount, per=MILLION)
            if low == 0:
                for dimension, amount in prices.items():
                    self.prices.setdefault(dimension, amount)
            else:
                self.tiers.setdefault(low, {}).update(prices)

    def tier_list(self) -> list[dict[str, Any]]:
        return [{"above_input_tokens": count, **self.tiers[count]} for count in sorted(self.tiers)]


def _required(mode: str, prices: dict[str, Decimal], has_images: bool) -> str | None:
    """Why the entry cannot be rated in its mode, or None."""
    if mode in TOKEN_MODES:
        missing = [
            f for f, d in (("input_cost_per_token", "input_per_million"), ("output_cost_per_token", "output_per_million"))
            if d not in prices
        ]  # fmt: skip
        if missing:
            return f"a chat model needs a per-token price; {' and '.join(missing)} missing"
        return None
    if not prices and not has_images:
        return f"a {mode} model needs at least one price the catalog has; the entry gives none"
    return None


def _entry_price(name: str, entry: object) -> ImportedPrice:
    if not isinstance(entry, dict):
        raise _EntryRefused(f"entry must be an object, got {type(entry).__name__}", "not_an_object")
    if not name.strip() or name != name.strip():
        raise _EntryRefused("the model name is empty or has surrounding spaces", "bad_name")
    if len(name) > MAX_MODEL_ID_LENGTH:
        raise _EntryRefused(f"the model name is longer than {MAX_MODEL_ID_LENGTH} characters", "bad_name")
    if any(c.isspace() or not c.isprintable() for c in name):
        raise _EntryRefused("the model name has spaces or control characters", "bad_name")
    if "mode" not in entry:
        raise _EntryRefused("mode missing: the entry does not say what it prices", "missing_mode")
    litellm_mode = entry["mode"]
    if not isinstance(litellm_mode, str):
        raise _EntryRefused(f"mode must be a string, got {type(litellm_mode).__name__}", "unknown_mode")
    if litellm_mode in NOT_RATED_MODES:
        raise _EntryRefused(f"mode {litellm_mode!r} is not rated: {NOT_RATED_MODES[litellm_mode]}", "mode_not_rated")
    if litellm_mode not in MODES:
        raise _EntryRefused(
            f"mode {litellm_mode[:60]!r} is unknown (known: {', '.join(sorted(MODES))})", "unknown_mode"
        )
    mode = MODES[litellm_mode]
    provider = entry.get("litellm_provider", "unknown")
    if not isinstance(provider, str) or not provider.strip() or len(provider) > MAX_PROVIDER_LENGTH:
        raise _EntryRefused(
            f"litellm_provider must be a name of at most {MAX_PROVIDER_LENGTH} characters", "bad_provider"
        )
    parsed = _Entry(name, entry, mode)
    parsed.read()
    unused = parsed.unused
    max_input = _limit(entry, "max_input_tokens", unused)
    max_output = _limit(entry, "max_output_tokens", unused)
    if max_output is None and "max_output_tokens" not in entry:
        max_output = _limit(entry, "max_tokens", unused)  # LiteLLM: the legacy name of the output limit
    return ImportedPrice(
        name=name,
        provider=provider.strip(),
        mode=mode,
        litellm_mode=litellm_mode,
        max_input_tokens=max_input,
        max_output_tokens=max_output,
        prices=parsed.prices,
        tiers=parsed.tier_list(),
        service_tiers=parsed.service_tiers,
        unused=unused,
    )


@dataclass(frozen=True, slots=True)
class _Variant:
    """`[provider/][quality/]W-x-H[/N-steps]/model`: one size (and quality) of another entry's images."""

    base: str
    key: str


def _variant(name: str) -> _Variant | None:
    parts = name.split("/")
    sizes = [i for i, part in enumerate(parts) if _SIZE.match(part)]
    if len(sizes) != 1 or sizes[0] == len(parts) - 1:
        return None
    at = sizes[0]
    match = _SIZE.match(parts[at])
    assert match is not None
    size = f"{int(match['width'])}x{int(match['height'])}"
    rest = parts[:at] + parts[at + 1 :]
    quality = None
    if at > 0 and parts[at - 1] in _QUALITIES:
        quality = parts[at - 1]
        rest = parts[: at - 1] + parts[at + 1 :]
    elif _STEPS.match(parts[at + 1]) and at + 2 < len(parts):
        quality = parts[at + 1]
        rest = parts[:at] + parts[at + 2 :]
    base = "/".join(rest)
    if not base:
        return None
    return _Variant(base=base, key=f"{size}/{quality}" if quality else size)


def _variant_price(name: str, entry: dict[str, Any], key: str) -> tuple[Decimal, list[UnusedField]]:
    """The price of one image of the variant's size: a per-image price, else the per-pixel price times its pixels."""
    width, height = (int(n) for n in key.split("/")[0].split("x"))
    unused: list[UnusedField] = []
    price: Decimal | None = None
    for field_name in ("output_cost_per_image", "input_cost_per_image"):
        if entry.get(field_name) is not None:
            amount = _number(field_name, entry[field_name], per=ONE)
            if price is None or (price == 0 and amount != 0):
                price = amount
    for field_name in PIXEL_FIELDS:
        if entry.get(field_name) is not None:
            amount = _number(field_name, entry[field_name], per=Decimal(width * height))
            if price is None or (price == 0 and amount != 0):
                price = amount
    if price is None:
        raise _EntryRefused(f"a size variant of an image model needs a per-image or per-pixel price ({name})")
    for field_name in sorted(entry):
        if field_name in INFO_FIELDS or field_name in PIXEL_FIELDS or field_name.endswith("_cost_per_image"):
            continue
        if _is_price_field(field_name) and not _is_zero(entry[field_name]):
            unused.append(UnusedField(field_name, "no_dimension", f"{field_name} of one image size is not kept"))
    return price, unused


def _same_prices(a: ImportedPrice, b: ImportedPrice) -> bool:
    return (
        a.mode == b.mode
        and a.prices == b.prices
        and a.tiers == b.tiers
        and a.service_tiers == b.service_tiers
        and a.image_prices == b.image_prices
    )


def price_map_parse(text: str | bytes) -> PriceMap:
    """The usable prices of a LiteLLM price map, its aliases, and for every other entry why it was left out.

    Raises PriceMapError when the text is not JSON or not an object; the `sample_spec` entry is skipped silently.
    """
    try:
        document = json.loads(text, parse_float=Decimal, parse_constant=_NonFinite)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise PriceMapError(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PriceMapError(f"expected a JSON object of model entries, got {type(document).__name__}")
    return price_document_parse(document)


def price_document_parse(document: dict[str, Any]) -> PriceMap:
    """`price_map_parse` for a document already read (numbers as Decimal, never float)."""
    result = PriceMap()
    prices: dict[str, ImportedPrice] = {}
    alias_of: dict[str, str] = {}
    variants: dict[str, tuple[_Variant, dict[str, Any]]] = {}
    for name, entry in document.items():
        if name == SAMPLE_SPEC_KEY:
            continue
        result.entries += 1
        try:
            if isinstance(entry, dict) and "alias_of" in entry:
                target = entry["alias_of"]
                if not isinstance(target, str) or not target.strip():
                    raise _EntryRefused(f"alias_of must be a model name, got {target!r}", "bad_alias")
                alias_of[name] = target
                continue
            variant = _variant(name) if isinstance(name, str) else None
            if variant is not None and isinstance(entry, dict) and entry.get("mode") in ("image_generation", None):
                variants[name] = (variant, entry)
                continue
            prices[name] = _entry_price(name, entry)
        except _EntryRefused as exc:
            result.problems.append(ImportProblem(key=name, reason=str(exc), code=exc.code))

    for name, (variant, entry) in variants.items():
        try:
            price, unused = _variant_price(name, entry, variant.key)
        except _EntryRefused as exc:
            result.problems.append(ImportProblem(key=name, reason=str(exc), code=exc.code))
            continue
        model = prices.get(variant.base)
        if model is None:
            provider = entry.get("litellm_provider")
            model = ImportedPrice(
                name=variant.base,
                provider=provider.strip() if isinstance(provider, str) and provider.strip() else "unknown",
                mode="image_generation",
                litellm_mode="image_generation",
                from_sizes=True,
            )
            prices[variant.base] = model
        if model.mode != "image_generation":
            result.problems.append(
                ImportProblem(
                    key=name, reason=f"an image size of {variant.base}, which is not an image model", code="refused"
                )
            )
            continue
        model.image_prices[variant.key] = price
        model.unused.extend(UnusedField(f"{name}: {u.field}", u.code, u.reason) for u in unused)
        result.folded[name] = variant.base

    # an image model needs a price once its sizes are in
    for name, imported in list(prices.items()):
        reason = _required(imported.mode, imported.prices, bool(imported.image_prices))
        if reason is not None:
            del prices[name]
            result.problems.append(ImportProblem(key=name, reason=reason, code="no_price"))

    for name, target in alias_of.items():
        root, seen = target, {name}
        while root in alias_of and root not in seen:  # an alias of an alias names the model at the end
            seen.add(root)
            root = alias_of[root]
        # a target the map lacks may be in the catalog: the import resolves it there or reports it
        result.aliases.append(ImportedAlias(alias=name, target=root, why="alias_of"))

    # provider-prefixed names with the very same prices as the bare name are that model's aliases
    for name in sorted(prices, key=lambda n: n.count("/")):
        if "/" not in name or name not in prices:
            continue
        parts = name.split("/")
        for cut in range(1, len(parts)):
            bare = "/".join(parts[cut:])
            target = prices.get(bare)
            if target is not None and _same_prices(prices[name], target):
                result.aliases.append(ImportedAlias(alias=name, target=bare, why="same_prices", price=prices[name]))
                del prices[name]
                break
    result.prices = list(prices.values())
    return result


# --- the bundled snapshot of list prices ----------------------------------------------------------------------------

BUNDLED_DIR = Path(__file__).resolve().parent / "data"
BUNDLED_GLOB = "list-prices-*.json"
# the snapshot's own fields beside its entries
SNAPSHOT_FIELDS = ("as_of", "source", "note")


@dataclass(frozen=True)
class Snapshot:
    """A dated price map in LiteLLM's format with top-level `as_of` (a date) and `source` (the pages it is from)."""

    path: Path
    as_of: date
    source: list[str]
    price_map: PriceMap

    @property
    def reason(self) -> str:
        return f"bundled list prices as of {self.as_of.isoformat()} ({self.path.name})"

    def effective_from(self, now: datetime | None = None) -> datetime:
        """The prices apply from the start of `as_of` (UTC), or from now if that is still to come."""
        start = datetime(self.as_of.year, self.as_of.month, self.as_of.day, tzinfo=UTC)
        now = now or datetime.now(UTC)
        return min(start, now)


def snapshot_parse(text: str | bytes, *, path: Path) -> Snapshot:
    """A snapshot file: its `as_of` and `source` are required; the other keys are LiteLLM entries."""
    try:
        document = json.loads(text, parse_float=Decimal, parse_constant=_NonFinite)
    except (ValueError, RecursionError) as exc:
        raise PriceMapError(f"{path.name}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PriceMapError(f"{path.name}: expected a JSON object")
    as_of_text = document.pop("as_of", None)
    source = document.pop("source", None)
    document.pop("note", None)
    try:
        as_of = date.fromisoformat(as_of_text) if isinstance(as_of_text, str) else None
    except ValueError:
        as_of = None
    if as_of is None:
        raise PriceMapError(f"{path.name}: as_of must be a date (YYYY-MM-DD)")
    if isinstance(source, str):
        source = [source]
    if not isinstance(source, list) or not source or not all(isinstance(s, str) and s.strip() for s in source):
        raise PriceMapError(f"{path.name}: source must name the price pages the snapshot was written from")
    return Snapshot(path=path, as_of=as_of, source=source, price_map=price_document_parse(document))


def bundled_snapshot_path() -> Path:
    """The newest snapshot shipped in pricing/data (file names carry the date, so the last in order)."""
    paths = sorted(BUNDLED_DIR.glob(BUNDLED_GLOB))
    if not paths:
        raise PriceMapError(f"no bundled price snapshot ({BUNDLED_GLOB}) in {BUNDLED_DIR}")
    return paths[-1]


def bundled_snapshot_read() -> Snapshot:
    path = bundled_snapshot_path()
    return snapshot_parse(path.read_bytes(), path=path)

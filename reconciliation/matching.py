"""Matching one bucket or request: our calculated cost against the provider's, and the likely reason they differ.

Pure functions, no database. A line matches when |actual - calculated| <= max(pct % of actual, usd). A line that
does not gets the first reason that explains it: a non-USD currency, a model name the catalog does not know, token
counts that differ (events missing on one side), cache writes billed that our events do not carry, a bill that is
our tokens at a service tier's prices (batch: half) or at a long-context tier's prices, cached input tokens priced
as uncached (on either side), prices
that drifted (with the implied price per 1M tokens where our token counts allow it). When the provider's token
counts agree with ours (always so for a matched request), nothing is missing on either side and what remains is price
drift; only an amount without token counts leaves events missing on our side or usage the provider did not bill.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from pricing.catalog import ModelPriceVersion
from reconciliation.conf import Tolerance
from reconciliation.models import ReconciliationLine
from reconciliation.parsers import CACHE_WRITE, CACHE_WRITE_1H, CACHED_INPUT, INPUT, OUTPUT

Reason = ReconciliationLine.Reason
Status = ReconciliationLine.Status
MILLION = Decimal(1_000_000)
ZERO = Decimal(0)
IMPLIED_PRICE_LIMIT = Decimal(10) ** 9
PART_WORDS = {INPUT: "input", CACHED_INPUT: "cached input", OUTPUT: "output"}


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token counts; `input` includes `cached`, as both OpenAI and TokenLedger count them."""

    input: int = 0
    cached: int = 0
    output: int = 0
    events: int = 0
    cache_write: int = 0  # prompt-cache writes (5-minute and 1-hour), part of `input` like `cached`

    @property
    def uncached(self) -> int:
        return self.input - self.cached

    @property
    def total(self) -> int:
        return self.input + self.output

    def by_part(self) -> dict[str, int]:
        return {INPUT: self.uncached, CACHED_INPUT: self.cached, OUTPUT: self.output}

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.input + other.input, self.cached + other.cached, self.output + other.output, self.events + other.events,
            self.cache_write + other.cache_write,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Comparison:
    calculated: Decimal
    actual: Decimal | None  # None: the provider gave token counts we could not price
    ours: Tokens
    theirs: Tokens | None = None  # the token counts the provider (or the gateway) reported
    parts: Mapping[str, Decimal] = field(default_factory=dict)  # the provider's amounts by token type, USD
    price: ModelPriceVersion | None = None  # the catalog's price for these tokens
    currency: str = "USD"
    model_problem: tuple[str, str] | None = None  # (reason code, text) when the model names disagree
    subject: str = "the provider"
    one_request: bool = False  # one logged request against its one event: nothing can be missing on either side


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str
    difference: Decimal | None
    reason_code: str = ""
    reason: str = ""
    implied: dict[str, Decimal] = field(default_factory=dict)  # part -> USD per 1M tokens, where it drifted


def usd(amount: Decimal) -> str:
    """A display value for reasons: dollars to 6 places, trailing zeros kept to 2."""
    text = f"{amount.quantize(Decimal('0.000001'), rounding=ROUND_HALF_UP):f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"-${whole.lstrip('-')}.{fraction}" if amount < 0 else f"${whole}.{fraction}"


def per_million(price: Decimal) -> str:
    return f"${price.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP):f} per 1M"


def _count(value: int) -> str:
    return f"{value:,}"


def tokens_priced(tokens: Tokens, price: ModelPriceVersion) -> Decimal:
    """What the catalog charges for these tokens: uncached input, cached input and output, each at its rate."""
    return (
        Decimal(tokens.uncached) * price.input_per_million
        + Decimal(tokens.cached) * price.cached_input_per_million
        + Decimal(tokens.output) * price.output_per_million
    ) / MILLION


def _catalog_price(price: ModelPriceVersion, part: str) -> Decimal:
    return {
        INPUT: price.input_per_million,
        CACHED_INPUT: price.cached_input_per_million,
        OUTPUT: price.output_per_million,
    }[part]


def _tokens_differ(theirs: Tokens, ours: Tokens, pct: Decimal) -> bool:
    pairs = ((theirs.input, ours.input), (theirs.cached, ours.cached), (theirs.output, ours.output))
    return any(abs(a - b) > pct / 100 * max(a, b) for a, b in pairs)


def compare(c: Comparison, tolerance: Tolerance) -> Verdict:
    """Matched, or a discrepancy with its likely reason."""
    if c.actual is None:
        # token counts only (a usage export line we cannot price): they match or they do not
        if c.theirs is not None and not _tokens_differ(c.theirs, c.ours, tolerance.pct):
            return Verdict(Status.MATCHED, None)
        code, text = _token_reason(c) if c.theirs is not None else (Reason.UNEXPLAINED, "nothing to compare")
        return Verdict(Status.DISCREPANCY, None, code, text)
    difference = c.actual - c.calculated
    if c.currency != "USD":
        return Verdict(
            Status.DISCREPANCY,
            difference,
            Reason.CURRENCY,
            f"{c.subject} billed in {c.currency}; TokenLedger's costs are USD, so the amounts cannot be compared",
        )
    if tolerance.allows(difference=difference, actual=c.actual):
        return Verdict(Status.MATCHED, difference)
    code, text, implied = _explain(c, difference, tolerance)
    return Verdict(Status.DISCREPANCY, difference, code, text, implied)


def _token_reason(c: Comparison) -> tuple[str, str]:
    theirs, ours = c.theirs or Tokens(), c.ours
    if theirs.cached > 0 and ours.cached == 0 and ours.input > 0 and theirs.input == ours.input:
        return (
            Reason.CACHED_AS_UNCACHED,
            f"{c.subject} counted {_count(theirs.cached)} cached input tokens; our events carry none, so we priced "
            "them as uncached input",
        )
    if c.one_request:
        side = (
            f"our event recorded fewer tokens than {c.subject} logged for this request"
            if theirs.total > ours.total
            else f"our event recorded more tokens than {c.subject} logged for this request"
        )
    elif theirs.total > ours.total:
        side = "events missing on our side"
    else:
        side = f"we recorded more than {c.subject} counted (usage it did not bill)"
    return (
        Reason.TOKEN_COUNTS,
        f"token counts differ: {c.subject} counted input {_count(theirs.input)} (cached {_count(theirs.cached)}), "
        f"output {_count(theirs.output)}; our {_count(ours.events)} event{'s' if ours.events != 1 else ''} have "
        f"input {_count(ours.input)} (cached {_count(ours.cached)}), output {_count(ours.output)}: {side}",
    )


def _explain(c: Comparison, difference: Decimal, tolerance: Tolerance) -> tuple[str, str, dict[str, Decimal]]:
    if c.model_problem is not None:
        return c.model_problem[0], c.model_problem[1], {}
    if c.theirs is not None and _tokens_differ(c.theirs, c.ours, tolerance.pct):
        return (*_token_reason(c), {})
    actual = c.actual if c.actual is not None else ZERO
    price, ours = c.price, c.ours
    dimension = _dimension_reason(c, actual, tolerance)
    if dimension is not None:
        return (*dimension, {})
    mixed_hint = ""
    if price is not None and ours.total > 0:
        if ours.cached > 0:
            as_uncached = (
                c.calculated
                + Decimal(ours.cached) * (price.input_per_million - price.cached_input_per_million) / MILLION
            )
            if price.input_per_million != price.cached_input_per_million and tolerance.allows(
                difference=actual - as_uncached, actual=actual
            ):
                return (
                    Reason.CACHED_AS_UNCACHED,
                    f"{c.subject}'s amount is our {_count(ours.cached)} cached input tokens priced at the full input "
                    f"price ({per_million(price.input_per_million)} instead of "
                    f"{per_million(price.cached_input_per_million)})",
                    {},
                )
        billed_cached = c.parts.get(CACHED_INPUT, ZERO)
        if billed_cached > 0 and ours.cached == 0 and ours.input > 0:
            return (
                Reason.CACHED_AS_UNCACHED,
                f"{c.subject} billed {usd(billed_cached)} of cached input; our events carry no cached input tokens, "
                "so we priced all their input as uncached",
                {},
            )
        implied = _implied_prices(c, actual)
        drifted = {
            part: value
            for part, value in implied.items()
            if abs(value - _catalog_price(price, part)) > tolerance.pct / 100 * _catalog_price(price, part)
        }
        if drifted:
            words = "; ".join(
                f"implied {PART_WORDS[part]} price {per_million(value)} against the catalog's "
                f"{per_million(_catalog_price(price, part))}{_change(value, _catalog_price(price, part))}"
                for part, value in drifted.items()
            )
            if c.theirs is not None:  # the token counts agree, so only the prices can differ
                return Reason.PRICE_DRIFT, f"price drift: {words}", drifted
            unless = (
                "unless events are missing on our side"
                if difference > 0
                else f"unless {c.subject} did not bill some of our usage"
            )
            return Reason.PRICE_DRIFT, f"price drift: {words} ({unless})", drifted
        unbilled = [part for part, count in ours.by_part().items() if count > 0 and c.parts and part not in c.parts]
        if unbilled and difference < 0:
            missing = sum((Decimal(ours.by_part()[p]) * _catalog_price(price, p) / MILLION for p in unbilled), ZERO)
            names = " and ".join(PART_WORDS[p] for p in unbilled)
            return (
                Reason.NOT_BILLED,
                f"{c.subject} billed no {names} for this bucket; we calculated {usd(missing)} of it",
                {},
            )
        if not implied and not c.parts:
            mixed_hint = " (input and output are mixed, so a price change cannot be told apart)"
    if c.theirs is not None:
        return _drift_on_same_tokens(c, difference)
    if difference > 0:
        return (
            Reason.MISSING_EVENTS,
            f"{c.subject} billed {usd(difference)} more than our events account for: events missing on our side, "
            f"or higher prices{mixed_hint}",
            {},
        )
    return (
        Reason.NOT_BILLED,
        f"we calculated {usd(-difference)} more than {c.subject} billed: usage it did not bill, or lower "
        f"prices{mixed_hint}",
        {},
    )


def _drift_on_same_tokens(c: Comparison, difference: Decimal) -> tuple[str, str, dict[str, Decimal]]:
    """The provider counted the tokens we did (a matched request, or a bucket whose counts agree): nothing is missing
    on either side, so a cost difference is the price per token."""
    direction = "more" if difference > 0 else "less"
    change = _change(c.calculated + difference, c.calculated).removeprefix(", ")
    return (
        Reason.PRICE_DRIFT,
        f"price drift: {c.subject} charged {usd(abs(difference))} {direction} than the catalog's prices for the same "
        f"tokens ({usd(c.calculated + difference)} against {usd(c.calculated)}"
        f"{', ' + change if change else ''}): the provider's price changed, or a surcharge or discount the catalog "
        "does not carry",
        {},
    )


def _dimension_reason(c: Comparison, actual: Decimal, tolerance: Tolerance) -> tuple[str, str] | None:
    """A difference the 2026 price dimensions explain: cache writes billed that our events do not carry, a bill
    that is our amount at a service tier's prices (batch is half), or our tokens at a long-context tier's prices."""
    billed_writes = c.parts.get(CACHE_WRITE, ZERO) + c.parts.get(CACHE_WRITE_1H, ZERO)
    if billed_writes > 0 and c.ours.cache_write == 0 and c.ours.input > 0:
        return (
            Reason.CACHE_WRITES,
            f"{c.subject} billed {usd(billed_writes)} of prompt-cache writes; our events carry no "
            "cache_write_input_tokens (or cache_write_1h_input_tokens), so those tokens were priced as plain input "
            "(send Anthropic's cache_creation counts on the events)",
        )
    price = c.price
    if price is None or c.calculated <= 0:
        return None
    for name, prices in sorted(price.service_tiers.items()):
        at_tier = _tokens_at(c.ours, price, prices)
        if at_tier != c.calculated and tolerance.allows(difference=actual - at_tier, actual=actual):
            return (
                Reason.SERVICE_TIER,
                f"{c.subject}'s amount is our tokens at the {name} prices ({usd(at_tier)}): calls made with "
                f"service_tier {name} (or through the Batch API) recorded without it",
            )
    if not price.service_tiers and tolerance.allows(difference=actual - c.calculated / 2, actual=actual):
        return (
            Reason.SERVICE_TIER,
            f"{c.subject} billed half of our amount, as batch processing is billed: calls made through the Batch API "
            "(or flex) recorded without service_tier",
        )
    for tier in reversed(price.tiers):
        at_tier = _tokens_at(c.ours, price, tier.prices)
        if actual > c.calculated and tolerance.allows(difference=actual - at_tier, actual=actual):
            return (
                Reason.LONG_CONTEXT,
                f"{c.subject}'s amount is our tokens at the long-context prices past {tier.above_input_tokens:,} "
                f"input tokens ({usd(at_tier)}): requests whose input (counting cache reads and writes) passed the "
                "threshold, recorded with fewer input tokens",
            )
    return None


def _tokens_at(tokens: Tokens, price: ModelPriceVersion, prices: Mapping[str, Decimal]) -> Decimal:
    """The tokens priced with `prices` over the version's own (uncached, cached and output)."""

    def rate(name: str, own: Decimal) -> Decimal:
        return prices.get(name, own)

    uncached = tokens.uncached - tokens.cache_write
    return (
        Decimal(uncached) * rate("input_per_million", price.input_per_million)
        + Decimal(tokens.cache_write)
        * rate("cache_write_per_million", price.cache_write_per_million or price.input_per_million)
        + Decimal(tokens.cached) * rate("cached_input_per_million", price.cached_input_per_million)
        + Decimal(tokens.output) * rate("output_per_million", price.output_per_million)
    ) / MILLION


def _change(value: Decimal, catalog: Decimal) -> str:
    if catalog == 0:
        return ""
    pct = ((value - catalog) / catalog * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f", {'+' if pct > 0 else ''}{pct}%"


def _implied_prices(c: Comparison, actual: Decimal) -> dict[str, Decimal]:
    """USD per 1M tokens the provider's amounts imply, per token type, where our token counts determine it: each
    part the provider itemised, or the whole amount when our usage has one token type only."""
    counts = c.ours.by_part()
    if c.parts:
        implied = {
            part: amount / Decimal(counts[part]) * MILLION
            for part, amount in c.parts.items()
            if part in counts and counts[part] > 0
        }
    else:
        present = [part for part, count in counts.items() if count > 0]
        implied = {present[0]: actual / Decimal(counts[present[0]]) * MILLION} if len(present) == 1 else {}
    # a price per 1M tokens beyond this says the token counts are off, not the price
    return {part: value for part, value in implied.items() if abs(value) < IMPLIED_PRICE_LIMIT}

"""In-process rating: how many usage lines `rate_usage` prices per second, against a raw Decimal baseline.

No server and no PostgreSQL: the seed catalog is loaded into a throwaway SQLite file, one catalog snapshot is built
(as the hot paths hold it in memory) and the same lines are rated over and over. Figures are per CPU-second of this
process (time.process_time), so other load on a shared machine moves them little. The baseline, measured in the same
run, is the least arithmetic any rating must do: input x price + output x price in Decimal per line.

    .venv/bin/python bench/rating.py                 # 200,000 ratings per mix
    .venv/bin/python bench/rating.py --ratings 50000 # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _setup(database: Path) -> None:
    os.environ.update(
        {
            "DATABASE_URL": f"sqlite:///{database}",
            "SECRET_KEY": "bench-only-secret-key-not-for-production",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    os.environ.pop("REDIS_URL", None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("seed_catalog", stdout=open(os.devnull, "w"))  # noqa: SIM115 - closed with the process


def _lines(mix: str, count: int, at: datetime) -> list[Any]:
    from pricing.rating import FeatureUse, UsageLine

    base = [
        UsageLine(model="gpt-4o-mini", occurred_at=at, input_tokens=1200, output_tokens=300),
        UsageLine(model="gpt-4o-mini", occurred_at=at, input_tokens=5000, cached_input_tokens=4000, output_tokens=80),
        UsageLine(model="claude-3-5-haiku", occurred_at=at, input_tokens=900, output_tokens=700, reasoning_tokens=200),
        UsageLine(
            model="qwen-3-32b",
            occurred_at=at,
            input_tokens=50,
            output_tokens=20,
            features=(FeatureUse("optillm_cot"),),
            multiplier=Decimal(3),
        ),
        UsageLine(model="flux-1.1-pro", occurred_at=at, images=2, features=(FeatureUse("image_gen"),)),
    ]
    lines = base
    if mix == "dimensions":
        lines = [*base, *_dimension_lines(at)]
    return [lines[i % len(lines)] for i in range(count)]


def _dimension_lines(at: datetime) -> list[Any]:
    """Lines that use the 2026 dimensions (cache writes, tiers, batch): only where the catalog has them."""
    from pricing.rating import UsageLine

    fields = getattr(UsageLine, "__dataclass_fields__", {})
    if "cache_write_input_tokens" not in fields:
        return []
    return [
        UsageLine(
            model="claude-3-5-haiku",
            occurred_at=at,
            input_tokens=250_000,
            cached_input_tokens=100_000,
            cache_write_input_tokens=20_000,
            output_tokens=1_000,
        ),
        UsageLine(model="gpt-4o-mini", occurred_at=at, input_tokens=3000, output_tokens=900, service_tier="batch"),
        UsageLine(model="openai/gpt-4o-mini-2024-07-18", occurred_at=at, input_tokens=100, output_tokens=10),
    ]


def _add_dimension_prices() -> None:
    from pricing import services
    from pricing.models import AIModel, ModelPrice

    fields = {f.name for f in ModelPrice._meta.get_fields()}
    if "tiers" not in fields:
        return
    haiku = AIModel.objects.get(model_id="claude-3-5-haiku")
    services.model_price_set(
        model=haiku, input_per_million="0.8", cached_input_per_million="0.08", output_per_million="4",
        cache_write_per_million="1", tiers=[{"above_input_tokens": 200_000, "input_per_million": "1.6",
                                            "output_per_million": "6", "cached_input_per_million": "0.16",
                                            "cache_write_per_million": "2"}],
        effective_from=datetime(2025, 1, 1, tzinfo=UTC), reason="bench",
    )  # fmt: skip
    mini = AIModel.objects.get(model_id="gpt-4o-mini")
    services.model_price_set(
        model=mini, input_per_million="0.15", cached_input_per_million="0.075", output_per_million="0.6",
        service_tiers={"batch": {"input_per_million": "0.075", "output_per_million": "0.3"}},
        effective_from=datetime(2025, 1, 1, tzinfo=UTC), reason="bench",
    )  # fmt: skip


def _timed(fn: Any, items: list[Any]) -> float:
    """CPU seconds (this process) to run fn over items: on a shared machine wall-clock moves with other load."""
    start = time.process_time()
    for item in items:
        fn(item)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tl-bench-rating-") as tmp:
        _setup(Path(tmp) / "bench.sqlite3")
        _add_dimension_prices()
        from pricing.rating import rate_usage
        from pricing.selectors import catalog_snapshot_build

        snapshot = catalog_snapshot_build()
        terms = snapshot.plan("pro").terms_at(datetime(2026, 6, 1, tzinfo=UTC))
        at = datetime(2026, 6, 1, 12, tzinfo=UTC)
        results: dict[str, Any] = {}
        price_in, price_out, million = Decimal("0.15"), Decimal("0.6"), Decimal(1_000_000)

        def raw(line: Any) -> Decimal:
            return line.input_tokens * price_in / million + line.output_tokens * price_out / million

        def rate(line: Any) -> Any:
            return rate_usage(line, snapshot, tier="pro", terms=terms)

        for mix in ("classic", "dimensions"):
            lines = _lines(mix, args.ratings, at)
            _timed(rate, lines[:2000])  # warm-up
            baseline = args.ratings / _timed(raw, lines)
            rated = args.ratings / _timed(rate, lines)
            results[mix] = {"ratings_per_s": round(rated), "baseline_per_s": round(baseline),
                            "ratio": round(rated / baseline, 3)}  # fmt: skip
            print(f"{mix:>10}: {rated:>10,.0f} ratings/CPU-s   raw Decimal baseline {baseline:>10,.0f}/CPU-s   "
                  f"ratio {rated / baseline:.3f}", file=sys.stderr)  # fmt: skip
        print(json.dumps({"bench": "rating", "ratings": args.ratings, **results}))


if __name__ == "__main__":
    main()

"""`import_model_prices` on a large LiteLLM-format map: parse and import in-process, against a raw baseline.

The map is generated (no download): N entries shaped like LiteLLM's own, in its proportions: chat models with cache,
reasoning, long-context tiers and batch/flex/priority prices, embeddings, images with size/quality variants, audio,
rerank, search and video, `alias_of` entries, provider-prefixed duplicates and a few malformed entries. Timed:
the first import (every model new), a second one (nothing changes) and a third with a tenth of the prices changed.
The baseline, measured in the same run, is the least any import must do: read the file with Decimal numbers and
insert one bare model and one price row per entry (rolled back). Wall-clock and CPU seconds are both printed.

The database is a throwaway SQLite file unless --database-url names one; a PostgreSQL database given there is
flushed first (use your own).

    .venv/bin/python bench/import_prices.py                  # 5,000 entries, SQLite
    .venv/bin/python bench/import_prices.py --entries 20000
    .venv/bin/python bench/import_prices.py --database-url postgres://postgres@127.0.0.1:5432/<your db>
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

_NUMBER_TEXT = re.compile(r'"(-?\d+(?:\.\d+)?(?:E[-+]?\d+)?)"')
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _setup(database_url: str) -> None:
    os.environ.update(
        {
            "DATABASE_URL": database_url,
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
    if database_url.startswith("postgres"):
        call_command("flush", "--noinput", verbosity=0)
    call_command("seed_catalog", stdout=open(os.devnull, "w"))  # noqa: SIM115 - closed with the process


def _price(rng: random.Random, low: float, high: float) -> str:
    """A per-token price as LiteLLM writes it (e.g. 2.5e-06), kept as text so no float reaches the map."""
    per_million = Decimal(rng.randint(int(low * 100), int(high * 100))) / 100
    return f"{per_million / 1_000_000:.6E}"


def _chat(rng: random.Random, provider: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "litellm_provider": provider, "mode": rng.choice(["chat", "chat", "chat", "responses", "completion"]),
        "max_input_tokens": rng.choice([8192, 128000, 200000, 1048576]), "max_output_tokens": rng.choice([4096, 65536]),
        "input_cost_per_token": _price(rng, 0.05, 15), "output_cost_per_token": _price(rng, 0.1, 75),
        "supports_function_calling": True, "supports_vision": rng.random() < 0.5,
    }  # fmt: skip
    if rng.random() < 0.6:
        entry["cache_read_input_token_cost"] = _price(rng, 0.01, 1.5)
    if rng.random() < 0.3:
        entry["cache_creation_input_token_cost"] = _price(rng, 0.3, 18)
        entry["cache_creation_input_token_cost_above_1hr"] = _price(rng, 0.5, 30)
    if rng.random() < 0.1:
        entry["output_cost_per_reasoning_token"] = _price(rng, 1, 60)
    if rng.random() < 0.15:
        threshold = rng.choice(["128k", "200k", "272k"])
        entry[f"input_cost_per_token_above_{threshold}_tokens"] = _price(rng, 1, 30)
        entry[f"output_cost_per_token_above_{threshold}_tokens"] = _price(rng, 2, 90)
    if rng.random() < 0.2:
        entry["input_cost_per_token_batches"] = _price(rng, 0.02, 7)
        entry["output_cost_per_token_batches"] = _price(rng, 0.05, 37)
    if rng.random() < 0.1:
        for tier in ("flex", "priority"):
            entry[f"input_cost_per_token_{tier}"] = _price(rng, 0.02, 20)
            entry[f"output_cost_per_token_{tier}"] = _price(rng, 0.05, 90)
    if rng.random() < 0.05:
        entry["input_cost_per_audio_token"] = _price(rng, 1, 100)
        entry["output_cost_per_audio_token"] = _price(rng, 1, 200)
    if rng.random() < 0.05:
        entry["search_context_cost_per_query"] = {"search_context_size_low": "0.01", "search_context_size_high": "0.03"}
    return entry


def _map(entries: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    providers = ["openai", "anthropic", "vertex_ai", "bedrock", "azure", "groq", "together_ai", "mistral"]
    document: dict[str, Any] = {}
    i = 0
    while len(document) < entries:
        i += 1
        kind = rng.random()
        name = f"model-{i}"
        if kind < 0.70:
            document[name] = _chat(rng, rng.choice(providers))
            if rng.random() < 0.07 and len(document) < entries:
                document[f"{rng.choice(providers)}/{name}"] = dict(document[name])  # a prefixed duplicate
        elif kind < 0.76:
            document[name] = {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": _price(rng, 0.01, 0.2),
                              "output_cost_per_token": "0", "output_vector_size": 1536}  # fmt: skip
        elif kind < 0.81:
            document[name] = {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": "0.04"}
            for size, price in (("1024-x-1024", "0.08"), ("1024-x-1792", "0.12")):
                if len(document) < entries:
                    document[f"hd/{size}/{name}"] = {"mode": "image_generation", "output_cost_per_image": price}
        elif kind < 0.85:
            document[name] = {
                "litellm_provider": "openai",
                "mode": "audio_transcription",
                "input_cost_per_second": "0.0001",
            }
        elif kind < 0.88:
            document[name] = {
                "litellm_provider": "openai",
                "mode": "audio_speech",
                "input_cost_per_character": "0.000015",
            }
        elif kind < 0.90:
            document[name] = {"litellm_provider": "cohere", "mode": "rerank", "input_cost_per_query": "0.002"}
        elif kind < 0.91:
            document[name] = {"litellm_provider": "gemini", "mode": "video_generation", "output_cost_per_second": "0.4"}
        elif kind < 0.96 and i > 10:
            document[name] = {"alias_of": f"model-{rng.randint(1, i - 1)}"}
        elif kind < 0.98:
            document[name] = {"litellm_provider": "x", "mode": "realtime", "input_cost_per_token": "1E-6"}
        else:
            document[name] = {"litellm_provider": "x", "mode": "chat", "input_cost_per_token": "oops"}
    # prices were generated as text; written as JSON numbers, digit for digit (no float anywhere)
    return _NUMBER_TEXT.sub(r"\1", json.dumps(document))


def _changed(text: str, share: float, seed: int = 11) -> str:
    rng = random.Random(seed)
    document = json.loads(text, parse_float=Decimal)
    for entry in document.values():
        if isinstance(entry, dict) and "output_cost_per_token" in entry and rng.random() < share:
            entry["output_cost_per_token"] = f"{entry['output_cost_per_token'] * 2:.6E}"
    return _NUMBER_TEXT.sub(r"\1", json.dumps(document, default=str))


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _baseline(text: str) -> None:
    """Read with Decimal numbers, and insert one bare model and price row per entry; rolled back."""
    from django.db import transaction

    from pricing.models import AIModel, ModelPrice

    class Rollback(Exception):
        pass

    document = json.loads(text, parse_float=Decimal)
    try:
        with transaction.atomic():
            models = AIModel.objects.bulk_create(
                [AIModel(model_id=f"raw-{name}", display_name=name, provider="raw") for name in document]
            )
            now = __import__("django.utils.timezone", fromlist=["now"]).now()
            ModelPrice.objects.bulk_create([ModelPrice(model=m, effective_from=now) for m in models], batch_size=500)
            raise Rollback
    except Rollback:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--database-url", help="default: a throwaway SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        _setup(args.database_url or f"sqlite:///{Path(scratch) / 'bench.sqlite3'}")
        from pricing.litellm_import import price_map_parse
        from pricing.price_import import litellm_prices_import

        text = _map(args.entries)

        def run(source: str) -> Any:
            return litellm_prices_import(price_map=price_map_parse(source), reason="bench")

        _, base_wall, base_cpu = _timed(lambda: _baseline(text))
        first, first_wall, first_cpu = _timed(lambda: run(text))
        second, second_wall, second_cpu = _timed(lambda: run(text))
        changed_text = _changed(text, 0.1)
        third, third_wall, third_cpu = _timed(lambda: run(changed_text))

    rows = [
        ("baseline: read + bare insert", base_wall, base_cpu, "-"),
        ("first import (all new)", first_wall, first_cpu, f"created {first.created}, skipped {first.skipped}"),
        ("second import (no change)", second_wall, second_cpu, f"unchanged {second.unchanged}, created {second.created}"),
        ("third import (10 % changed)", third_wall, third_cpu, f"updated {third.updated}"),
    ]  # fmt: skip
    database = "postgresql" if (args.database_url or "").startswith("postgres") else "sqlite"
    print(f"import_model_prices, {args.entries} entries, {database}")
    print(f"{'run':32} {'wall s':>8} {'cpu s':>8}  {'x baseline':>10}  result")
    for label, wall, cpu, note in rows:
        print(f"{label:32} {wall:8.2f} {cpu:8.2f}  {wall / base_wall:10.1f}  {note}")
    print(
        json.dumps(
            {
                "bench": "import_prices", "entries": args.entries, "database": database,
                "baseline_s": round(base_wall, 3), "first_s": round(first_wall, 3), "second_s": round(second_wall, 3),
                "changed_s": round(third_wall, 3), "created": first.created, "aliases": first.aliases_added,
                "skipped": first.skipped, "target_s": 10, "ok": first_wall < 10 and second_wall < 10,
            }
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()

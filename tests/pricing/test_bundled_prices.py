"""`import_model_prices --bundled`: the shipped snapshot of list prices, loaded beside the seed catalog."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from pricing import litellm_import, services
from pricing.litellm_import import bundled_snapshot_read
from pricing.models import AIModel, CatalogAudit, ModelAlias, ModelPrice
from pricing.rating import UsageLine, rate_usage
from pricing.selectors import catalog_snapshot

ROOT = Path(__file__).resolve().parents[2]


def _bundled(*args: str) -> dict:
    out = io.StringIO()
    call_command("import_model_prices", "--bundled", *args, stdout=out)
    return json.loads(out.getvalue())


def _counts() -> tuple[int, int, int, int]:
    return (AIModel.objects.count(), ModelPrice.objects.count(), ModelAlias.objects.count(),
            CatalogAudit.objects.count())  # fmt: skip


def test_the_snapshot_names_its_date_and_sources():
    snapshot = bundled_snapshot_read()
    assert snapshot.path.name == f"list-prices-{snapshot.as_of.isoformat()}.json"
    assert any("openai.com" in s for s in snapshot.source) and any("anthropic.com" in s for s in snapshot.source)
    assert any("ai.google.dev" in s for s in snapshot.source)
    # every entry of our own snapshot is used whole: nothing refused, no field left out
    assert snapshot.price_map.problems == []
    assert [u for p in snapshot.price_map.prices for u in p.unused] == []
    names = {p.name for p in snapshot.price_map.prices}
    for model_id in ("gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "o1", "o3", "o3-mini",
                     "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano", "claude-3-5-haiku", "claude-sonnet-4-5",
                     "claude-opus-4-1", "claude-haiku-4-5", "gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro",
                     "deepseek-chat", "mistral-large-latest", "dashscope/qwen-plus", "groq/llama-3.3-70b-versatile",
                     "text-embedding-3-small", "text-embedding-3-large", "dall-e-3", "gpt-image-1", "whisper-1",
                     "tts-1", "gpt-4o-transcribe", "rerank-v3.5", "tavily/search"):  # fmt: skip
        assert model_id in names


def test_bundled_twice_changes_nothing_the_second_time(seeded_catalog):
    first = _bundled()
    assert first["as_of"] == bundled_snapshot_read().as_of.isoformat()
    assert first["created"] > 60 and first["aliases_added"] > 15
    assert (first["skipped"], first["problems"], first["unused_fields"]) == (0, [], [])
    counts = _counts()
    second = _bundled()
    assert (second["created"], second["updated"], second["aliases_added"], second["skipped"]) == (0, 0, 0, 0)
    assert second["unchanged"] == first["created"]
    assert _counts() == counts


def test_the_seed_catalog_keeps_its_prices(seeded_catalog):
    before = {
        m: list(ModelPrice.objects.filter(model__model_id=m).values_list("input_per_million", "output_per_million"))
        for m in ("gpt-4o-mini", "claude-3-5-haiku", "qwen-3-32b")
    }
    summary = _bundled()
    assert sorted(summary["kept_models"]) == ["claude-3-5-haiku", "gpt-4o-mini"]
    after = {
        m: list(ModelPrice.objects.filter(model__model_id=m).values_list("input_per_million", "output_per_million"))
        for m in before
    }
    assert after == before
    assert after["claude-3-5-haiku"] == [(Decimal("0.8"), Decimal(4))]
    # an alias of a kept model is still added: it names the model, it does not price it
    assert ModelAlias.objects.get(alias="claude-3-5-haiku-latest").model.model_id == "claude-3-5-haiku"


def test_the_versions_start_at_the_snapshot_date_with_a_reason(db):
    _bundled()
    version = ModelPrice.objects.get(model__model_id="gpt-4.1")
    as_of = bundled_snapshot_read().as_of
    assert version.effective_from == min(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC), version.created_at)
    assert version.reason == f"bundled list prices as of {as_of.isoformat()} (list-prices-{as_of.isoformat()}.json)"
    model = AIModel.objects.get(model_id="gpt-4.1")
    assert (model.mode, model.max_input_tokens, model.max_output_tokens) == ("chat", 1047576, 32768)
    assert AIModel.objects.get(model_id="whisper-1").mode == "audio_transcription"


def test_a_newer_snapshot_updates_bundled_prices_but_never_an_operators(db, tmp_path, monkeypatch):
    _bundled()
    gpt41 = AIModel.objects.get(model_id="gpt-4.1")
    services.model_price_set(model=gpt41, input_per_million="1.9", output_per_million="7.6", reason="our deal")
    document = json.loads(bundled_snapshot_read().path.read_text())
    document["as_of"] = "2099-01-01"
    document["gpt-4.1"]["input_cost_per_token"] = 1.8e-06
    document["gpt-4o"]["input_cost_per_token"] = 2.4e-06
    (tmp_path / "list-prices-2099-01-01.json").write_text(json.dumps(document))
    monkeypatch.setattr(litellm_import, "BUNDLED_DIR", tmp_path)

    summary = _bundled()
    assert summary["as_of"] == "2099-01-01"
    assert summary["updated"] == 1 and "gpt-4.1" in summary["kept_models"]
    assert ModelPrice.objects.filter(model=gpt41).latest("effective_from").input_per_million == Decimal("1.9")
    gpt4o = ModelPrice.objects.filter(model__model_id="gpt-4o").latest("effective_from")
    assert gpt4o.input_per_million == Decimal("2.4")
    assert gpt4o.reason == "bundled list prices as of 2099-01-01 (list-prices-2099-01-01.json)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reason", "x"], "--bundled sets its own"),
        (["--effective-from", "2026-01-01T00:00:00Z"], "--bundled sets its own"),
        (["some-file.json"], "either a FILE or --bundled"),
    ],
)
def test_bundled_with_a_file_or_its_own_dates_is_an_error(db, args, message):
    with pytest.raises(CommandError, match=message):
        _bundled(*args)


def test_no_file_and_no_bundled_is_an_error(db):
    with pytest.raises(CommandError, match="either a FILE or --bundled"):
        call_command("import_model_prices", stdout=io.StringIO())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"source": ["x"], "gpt": {}}', "as_of must be a date"),
        ('{"as_of": "2026-02-30", "source": ["x"]}', "as_of must be a date"),
        ('{"as_of": "2026-01-01", "gpt": {}}', "source must name"),
        ("[1]", "expected a JSON object"),
    ],
)
def test_a_broken_snapshot_is_a_clear_error(db, tmp_path, monkeypatch, content, message):
    (tmp_path / "list-prices-2026-01-01.json").write_text(content)
    monkeypatch.setattr(litellm_import, "BUNDLED_DIR", tmp_path)
    with pytest.raises(CommandError, match=message):
        _bundled()
    assert not AIModel.objects.exists()


def test_seed_demo_loads_the_bundled_prices_beside_the_seed(db, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=io.StringIO())
    assert ModelPrice.objects.get(model__model_id="claude-sonnet-4-5").input_per_million == Decimal(3)
    assert list(
        ModelPrice.objects.filter(model__model_id="gpt-4o-mini").values_list("input_per_million", flat=True)
    ) == [Decimal("0.15")]
    counts = _counts()
    call_command("seed_demo", stdout=io.StringIO())
    assert _counts() == counts


def test_the_command_prints_one_json_object(tmp_path):
    env = {**os.environ, "SECRET_KEY": "x", "DEBUG": "0", "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"}
    env.pop("REDIS_URL", None)
    run = [sys.executable, "manage.py"]
    subprocess.run([*run, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=600)
    result = subprocess.run([*run, "import_model_prices", "--bundled", "--strict"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["as_of"] and summary["created"] > 60 and summary["skipped"] == 0


# (model, usage counts, the provider's list price for them, computed by hand from the published prices per 1M
# tokens or per unit)
_LIST_PRICED: list[tuple[str, dict[str, Any], str]] = [
    # gpt-4.1: $2 in, $0.50 cached in, $8 out: 8k x 2 + 2k x 0.5 + 1k x 8
    ("gpt-4.1", {"input_tokens": 10_000, "cached_input_tokens": 2_000, "output_tokens": 1_000}, "0.025"),
    # OpenAI's dated snapshot name resolves to the model
    ("gpt-4.1-2025-04-14", {"input_tokens": 1_000_000}, "2"),
    # gpt-4.1 batch: half price, $1 in and $4 out
    ("gpt-4.1", {"input_tokens": 1_000_000, "output_tokens": 1_000_000, "service_tier": "batch"}, "5"),
    # Claude Sonnet 4.5 past 200k input: the whole request at $6 in and $22.50 out (issue 17's example)
    ("claude-sonnet-4-5", {"input_tokens": 250_000, "output_tokens": 1_000}, "1.5225"),
    # ... with cache reads ($0.60) and 5-minute writes ($7.50) at the tier: 190k x 6 + 50k x 0.6 + 10k x 7.5 + 2k x 22.5
    ("claude-sonnet-4-5", {"input_tokens": 250_000, "cached_input_tokens": 50_000, "cache_write_input_tokens": 10_000,
                           "output_tokens": 2_000}, "1.29"),
    # below 200k: $3 in, $15 out, 5-minute writes $3.75, 1-hour writes $6: 80k x 3 + 10k x 3.75 + 10k x 6 + 1k x 15
    ("claude-sonnet-4-5-20250929", {"input_tokens": 100_000, "cache_write_input_tokens": 10_000,
                                    "cache_write_1h_input_tokens": 10_000, "output_tokens": 1_000}, "0.3525"),
    # Gemini 2.5 Pro: $1.25 / $10 up to 200k, $2.50 / $15 past it
    ("gemini-2.5-pro", {"input_tokens": 100_000, "output_tokens": 10_000}, "0.225"),
    ("gemini-2.5-pro", {"input_tokens": 300_000, "output_tokens": 10_000}, "0.9"),
    ("text-embedding-3-small", {"input_tokens": 1_000_000}, "0.02"),  # $0.02 per 1M
    ("text-embedding-3-small", {"input_tokens": 250_000}, "0.005"),
    ("dall-e-3", {"images": 1, "image_size": "1024x1024", "image_quality": "hd"}, "0.08"),
    ("dall-e-3", {"images": 2, "image_size": "1792x1024", "image_quality": "hd"}, "0.24"),
    ("dall-e-3", {"images": 1, "image_size": "1024x1024", "image_quality": "standard"}, "0.04"),
    ("whisper-1", {"seconds": Decimal(60)}, "0.006"),  # $0.006 per minute
    ("tts-1", {"characters": 1_000_000}, "15"),  # $15 per 1M characters
    ("gpt-image-1", {"input_tokens": 100, "output_tokens": 4_160, "image_output_tokens": 4_160}, "0.1669"),
]  # fmt: skip


def test_a_fresh_install_rates_todays_models_at_their_list_prices(
    db, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.VAR_DIR = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=io.StringIO())  # what `make run` does
    snapshot = catalog_snapshot()
    at = timezone.now()
    costs = [
        (model, rate_usage(UsageLine(model=model, occurred_at=at, **counts), snapshot, tier="jive").cost_usd)
        for model, counts, _ in _LIST_PRICED
    ]
    assert costs == [(model, Decimal(expected)) for model, _, expected in _LIST_PRICED]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_bundled_imports_at_once_price_each_model_once():
    """Two `make run`s starting together: the one that loses the race starts over and finds every row in place."""
    start = threading.Barrier(2)
    summaries: list[dict] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            start.wait(timeout=30)
            summaries.append(_bundled())
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert failures == []
    models = len(bundled_snapshot_read().price_map.prices)
    assert sorted(s["created"] for s in summaries) == [0, models]
    assert sorted(s["unchanged"] for s in summaries) == [0, models]
    assert ModelPrice.objects.count() == AIModel.objects.count() == models
    assert ModelAlias.objects.count() == len(bundled_snapshot_read().price_map.aliases)

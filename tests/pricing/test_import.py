"""`manage.py import_model_prices`: a LiteLLM price map becomes price versions, exactly, and only where prices changed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.litellm_import import PriceMapError, price_map_parse
from pricing.models import AIModel, CatalogAudit, ModelAlias, ModelPrice
from pricing.rating import UsageLine, rate_usage
from pricing.selectors import catalog_snapshot

FIXTURE = Path(__file__).parent / "fixtures" / "litellm_prices.json"
# every kind of LiteLLM price field, alias and size variant, and malformed entries
EVERY_FIELD = Path(__file__).parent / "fixtures" / "litellm_every_field.json"
ROOT = Path(__file__).resolve().parents[2]


def _import(path: Path | str, *args: str) -> dict:
    out = io.StringIO()
    call_command("import_model_prices", str(path), *args, stdout=out)
    return json.loads(out.getvalue())


def _numbers(value):
    """Stored JSON prices (decimal strings) as Decimals, to compare with hand-written numbers."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return Decimal(value) if isinstance(value, str) else value


def _write(tmp_path: Path, entries: dict | str) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return path


# --- parsing (no database) ------------------------------------------------------------------------------------------


def test_per_token_prices_become_exact_prices_per_million():
    parsed = price_map_parse(
        '{"m": {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07, '
        '"cache_read_input_token_cost": 7.5e-08, "litellm_provider": "openai", "mode": "chat"}}'
    )
    (price,) = parsed.prices
    assert price.input_per_million == Decimal("0.15")
    assert price.output_per_million == Decimal("0.6")
    assert price.cached_input_per_million == Decimal("0.075")
    assert (price.provider, price.image_price) == ("openai", Decimal(0))
    # exactly these values, not a float's neighbour (0.15 as a float is 0.1499999999999999944...)
    assert str(price.input_per_million) == "0.150000000000"


def test_a_price_finer_than_the_stored_precision_is_rounded_once():
    (price,) = price_map_parse(
        '{"m": {"input_cost_per_token": 1.23456789e-19, "output_cost_per_token": 0, "litellm_provider": "x", '
        '"mode": "chat"}}'
    ).prices
    assert price.input_per_million == Decimal("0.000000000000")  # 1.23e-13 per 1M: below 12 places


def test_sample_spec_is_skipped_silently():
    parsed = price_map_parse('{"sample_spec": {"input_cost_per_token": 0.0, "mode": "one of: chat"}}')
    assert parsed.prices == [] and parsed.problems == []


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}, "mode missing"),
        ({"mode": "telepathy", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}, "mode 'telepathy'"),
        ({"mode": "realtime", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}, "not rated"),
        ({"mode": "ocr", "ocr_cost_per_page": 0.001}, "per page"),
        ({"mode": "chat"}, "input_cost_per_token and output_cost_per_token missing"),
        ({"mode": "chat", "input_cost_per_token": 1e-06}, "output_cost_per_token missing"),
        ({"mode": "image_generation"}, "needs at least one price"),
        ({"mode": "embedding", "output_vector_size": 1536}, "needs at least one price"),
        ({"mode": "chat", "input_cost_per_token": -1e-06, "output_cost_per_token": 1e-06}, "negative"),
        ({"mode": "chat", "input_cost_per_token": "1e-06", "output_cost_per_token": 1e-06}, "must be a number"),
        ({"mode": "chat", "input_cost_per_token": True, "output_cost_per_token": 1e-06}, "must be a number"),
        ({"mode": "chat", "input_cost_per_token": [1], "output_cost_per_token": 1e-06}, "must be a number"),
        ({"mode": "chat", "input_cost_per_token": 1e300, "output_cost_per_token": 1e-06}, "too large"),
        ({"mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06,
          "input_cost_per_token_above_200k_tokens": "2e-06"}, "must be a number"),
        ({"mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06,
          "output_cost_per_token_batches": -5e-07}, "negative"),
        ({"mode": "audio_speech", "input_cost_per_character": "0.000015"}, "must be a number"),
        ({"mode": "chat", "tiered_pricing": "cheap"}, "tiered_pricing must be a list"),
        ({"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "mode": 3}, "mode must be a string"),
        ({"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "mode": "chat", "litellm_provider": 7},
         "litellm_provider"),
        ({"alias_of": 7}, "alias_of must be a model name"),
    ],
)  # fmt: skip
def test_unusable_entries_are_problems_with_a_reason(entry, reason):
    parsed = price_map_parse(json.dumps({"model-x": entry}))
    assert parsed.prices == []
    (problem,) = parsed.problems
    assert problem.key == "model-x"
    assert reason in problem.reason


def test_non_finite_numbers_are_refused_per_entry():
    parsed = price_map_parse(
        '{"a": {"input_cost_per_token": NaN, "output_cost_per_token": 0, "mode": "chat"}, '
        '"b": {"input_cost_per_token": Infinity, "output_cost_per_token": 0, "mode": "chat"}, '
        '"ok": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "mode": "chat"}}'
    )
    assert [p.name for p in parsed.prices] == ["ok"]
    assert {p.key: p.reason for p in parsed.problems} == {
        "a": "input_cost_per_token is NaN, not a finite number",
        "b": "input_cost_per_token is Infinity, not a finite number",
    }


def test_odd_names_and_entries_are_problems():
    parsed = price_map_parse(
        json.dumps(
            {
                " spaced ": {"input_cost_per_token": 0, "output_cost_per_token": 0, "mode": "chat"},
                "tab\tname": {"input_cost_per_token": 0, "output_cost_per_token": 0, "mode": "chat"},
                "x" * 201: {},
                "s": "str",
            }
        )
    )
    assert parsed.prices == [] and len(parsed.problems) == 4


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '"a string"', "{" * 100_000, b"\xff\xfe\x00"])
def test_a_file_that_is_not_a_price_map_is_an_error(text):
    with pytest.raises(PriceMapError):
        price_map_parse(text)


_json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(["NaN", "1e-7"])
_json_values = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
_cost_names = st.sampled_from(
    ["input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost", "output_cost_per_image",
     "input_cost_per_token_above_200k_tokens", "output_cost_per_token_batches", "input_cost_per_second",
     "input_cost_per_pixel", "tiered_pricing", "alias_of", "litellm_provider", "mode", "max_tokens"]
)  # fmt: skip
_names = st.text(max_size=12) | st.sampled_from(["gpt", "openai/gpt", "hd/1024-x-1024/gpt", "256-x-256/gpt"])
_modes = st.sampled_from(["chat", "embedding", "image_generation", "rerank", "realtime"])
_entries = st.dictionaries(
    _names,
    st.dictionaries(_cost_names, _json_values | st.decimals(allow_nan=False) | _modes) | _json_values,
)


@settings(max_examples=300, deadline=None)
@given(_entries)
def test_the_parser_never_crashes_and_accounts_for_every_entry(entries):
    text = json.dumps(entries, default=str)
    parsed = price_map_parse(text)
    names = [k for k in entries if k != "sample_spec"]
    accounted = (
        [p.name for p in parsed.prices if not p.from_sizes]
        + [a.alias for a in parsed.aliases]
        + list(parsed.folded)
        + [p.key for p in parsed.problems]
    )
    assert sorted(accounted) == sorted(names)  # each entry exactly once: imported, alias, size, or refused
    for price in parsed.prices:
        assert all(amount >= 0 for amount in price.prices.values())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_the_parser_never_crashes_on_any_text(text):
    with contextlib.suppress(PriceMapError):
        price_map_parse(text)


# --- importing (database) -------------------------------------------------------------------------------------------


def test_import_creates_updates_and_reports(seeded_catalog, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        summary = _import(FIXTURE)
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (3, 1, 1)
    assert summary["skipped"] == len(summary["problems"]) == 5
    assert {p["key"] for p in summary["problems"]} == {
        "free-but-unpriced", "negative-model", "string-priced-model", "not-an-object", "nan-priced-model",
    }  # fmt: skip
    assert all(p["reason"] and p["code"] for p in summary["problems"])
    assert summary["entries"] == 10
    assert summary["imported_by_mode"] == {"chat": 3, "embedding": 1, "image_generation": 1}

    # the alias claude-3-5-haiku-20241022 named the catalog's claude-3-5-haiku: a new version, reason defaulted
    haiku = ModelPrice.objects.filter(model__model_id="claude-3-5-haiku")
    assert haiku.count() == 2
    latest = haiku.latest("effective_from")
    assert (latest.input_per_million, latest.output_per_million) == (Decimal(1), Decimal(5))
    assert latest.cached_input_per_million == Decimal("0.1")
    assert latest.cache_write_per_million == Decimal("1.25")
    assert latest.reason == "LiteLLM import litellm_prices.json"
    # gpt-4o-mini's prices did not change: no new version
    assert ModelPrice.objects.filter(model__model_id="gpt-4o-mini").count() == 1

    mistral = AIModel.objects.get(model_id="mistral/mistral-large-latest")
    assert (mistral.display_name, mistral.provider, mistral.is_active, mistral.mode) == (
        "mistral/mistral-large-latest",
        "mistral",
        True,
        "chat",
    )
    assert mistral.max_output_tokens == 128000  # LiteLLM's legacy max_tokens is the output limit
    dalle = ModelPrice.objects.get(model__model_id="dall-e-3")
    assert dalle.image_price == Decimal("0.04") and dalle.input_per_million == 0
    embedding = AIModel.objects.get(model_id="text-embedding-3-small")
    assert embedding.mode == "embedding"
    assert embedding.prices.get().input_per_million == Decimal("0.02")
    assert not AIModel.objects.filter(model_id="sample_spec").exists()


def test_rating_before_and_after_an_import(seeded_catalog, django_capture_on_commit_callbacks):
    def haiku(snapshot, at):
        return rate_usage(
            UsageLine(model="claude-3-5-haiku", occurred_at=at, input_tokens=1000, output_tokens=1000),
            snapshot,
            tier="jive",
        )

    start = datetime(2026, 3, 1, tzinfo=UTC)
    with django_capture_on_commit_callbacks(execute=True):
        _import(FIXTURE, "--effective-from", "2026-03-01T00:00:00Z")
    snapshot = catalog_snapshot()
    assert haiku(snapshot, start - timedelta(seconds=1)).cost_usd == Decimal("0.0048")  # 0.80 and 4.00 per 1M
    assert haiku(snapshot, start).cost_usd == Decimal("0.006")  # 1.00 and 5.00 per 1M
    assert haiku(seeded_catalog, start).cost_usd == Decimal("0.0048")


@pytest.mark.parametrize("fixture", [FIXTURE, EVERY_FIELD])
def test_a_second_import_changes_nothing(seeded_catalog, fixture):
    first = _import(fixture)
    counts = (ModelPrice.objects.count(), AIModel.objects.count(), ModelAlias.objects.count(),
              CatalogAudit.objects.count())  # fmt: skip
    summary = _import(fixture)
    assert (summary["created"], summary["updated"], summary["aliases_added"]) == (0, 0, 0)
    assert summary["unchanged"] == first["created"] + first["updated"] + first["unchanged"]
    assert summary["problems"] == first["problems"] and summary["unused_fields"] == first["unused_fields"]
    assert (ModelPrice.objects.count(), AIModel.objects.count(), ModelAlias.objects.count(),
            CatalogAudit.objects.count()) == counts  # fmt: skip


def test_a_changed_price_is_a_new_version_of_that_model_only(seeded_catalog, tmp_path):
    entries = json.loads(EVERY_FIELD.read_text().replace("NaN", "null"))
    _import(_write(tmp_path, entries))
    versions = ModelPrice.objects.count()
    entries["claude-test-sonnet"]["output_cost_per_token_above_200k_tokens"] = 2.4e-05
    summary = _import(_write(tmp_path, entries))
    assert (summary["created"], summary["updated"]) == (0, 1)
    assert ModelPrice.objects.count() == versions + 1
    latest = ModelPrice.objects.filter(model__model_id="claude-test-sonnet").latest("effective_from")
    assert latest.tiers[0]["output_per_million"] == "24.000000000000"


def test_every_field_kind_becomes_its_dimension(db):
    summary = _import(EVERY_FIELD)

    def version(model_id):
        return ModelPrice.objects.get(model__model_id=model_id)

    sonnet = version("claude-test-sonnet")
    assert (sonnet.input_per_million, sonnet.output_per_million) == (Decimal(3), Decimal(15))
    assert (sonnet.cached_input_per_million, sonnet.cache_write_per_million, sonnet.cache_write_1h_per_million) == (
        Decimal("0.3"), Decimal("3.75"), Decimal(6),
    )  # fmt: skip
    assert _numbers(sonnet.tiers) == [
        {"above_input_tokens": 200000, "input_per_million": Decimal(6), "output_per_million": Decimal("22.5"),
         "cached_input_per_million": Decimal("0.6"), "cache_write_per_million": Decimal("7.5"),
         "cache_write_1h_per_million": Decimal(12)}
    ]  # fmt: skip
    sonnet_model = AIModel.objects.get(model_id="claude-test-sonnet")
    assert (sonnet_model.max_input_tokens, sonnet_model.max_output_tokens) == (1000000, 64000)

    gpt5 = version("gpt-test-5")
    assert gpt5.reasoning_per_million == Decimal(12)
    assert _numbers(gpt5.service_tiers) == {
        "batch": {"input_per_million": Decimal("0.625"), "output_per_million": Decimal(5)},
        "flex": {"input_per_million": Decimal("0.625"), "output_per_million": Decimal(5),
                 "cached_input_per_million": Decimal("0.0625")},
        "priority": {"input_per_million": Decimal("2.5"), "output_per_million": Decimal(20)},
    }  # fmt: skip
    assert _numbers(gpt5.tiers) == [
        {"above_input_tokens": 272000, "input_per_million": Decimal("2.5"), "output_per_million": Decimal(15)}
    ]
    assert AIModel.objects.get(model_id="gpt-test-5").mode == "chat"  # LiteLLM's "responses"

    image = version("gpt-test-image")
    assert (image.image_input_per_million, image.image_output_per_million) == (Decimal(10), Decimal(40))
    dalle = version("test-dalle")
    assert dalle.image_price == Decimal("0.04")
    assert _numbers(dalle.image_prices) == {"1024x1024/hd": Decimal("0.08"), "1024x1792/standard": Decimal("0.08")}
    # a size whose model the map does not list on its own still makes that model
    assert _numbers(version("test-dalle-two").image_prices) == {"512x512": Decimal("0.018")}

    audio = version("gpt-test-audio")
    assert (audio.audio_input_per_million, audio.audio_output_per_million) == (Decimal(40), Decimal(80))
    assert version("test-whisper").price_per_second == Decimal("0.0001")
    assert version("test-tts").price_per_character == Decimal("0.000015")
    assert version("test-video").price_per_second == Decimal("0.4")
    assert version("test-rerank").price_per_request == Decimal("0.002")
    assert version("test-search").price_per_request == Decimal("0.005")
    assert version("test-sonar").price_per_request == Decimal("0.005")
    embed = version("test-embed")
    assert embed.input_per_million == Decimal("0.02")
    assert _numbers(embed.service_tiers) == {"batch": {"input_per_million": Decimal("0.01")}}
    qwen = version("test-qwen-tiered")
    assert (qwen.input_per_million, qwen.output_per_million) == (Decimal("0.05"), Decimal("0.4"))
    assert _numbers(qwen.tiers) == [
        {"above_input_tokens": 256000, "input_per_million": Decimal("0.25"), "output_per_million": Decimal(2)}
    ]
    assert version("test-deepseek").cached_input_per_million == Decimal("0.028")
    moderation = version("test-moderation")
    assert (moderation.input_per_million, moderation.output_per_million) == (0, 0)
    assert AIModel.objects.get(model_id="test-moderation").max_output_tokens is None  # LiteLLM's 0: none

    modes = dict(AIModel.objects.filter(model_id__startswith="test-").values_list("model_id", "mode"))
    assert modes["test-whisper"] == "audio_transcription" and modes["test-tts"] == "audio_speech"
    assert modes["test-rerank"] == "rerank" and modes["test-search"] == "search"
    assert modes["test-video"] == "video_generation" and modes["test-embed"] == "embedding"
    assert summary["imported_by_mode"] == {
        "audio_speech": 1, "audio_transcription": 1, "chat": 7, "embedding": 2, "image_generation": 3,
        "moderation": 1, "rerank": 1, "search": 1, "video_generation": 1,
    }  # fmt: skip


def test_aliases_and_prefixed_names(db):
    summary = _import(EVERY_FIELD)
    aliases = dict(ModelAlias.objects.values_list("alias", "model__model_id"))
    assert aliases == {"gpt-test-5-latest": "gpt-test-5", "openai/gpt-test-5": "gpt-test-5"}
    assert summary["aliases_added"] == 2
    # a prefixed name with prices of its own is a model of its own
    assert ModelPrice.objects.get(model__model_id="azure/gpt-test-5").input_per_million == Decimal("1.375")
    assert not AIModel.objects.filter(model_id="openai/gpt-test-5").exists()
    problems = {p["key"]: p for p in summary["problems"]}
    assert problems["ghost-alias"]["code"] == "alias_target_missing"
    assert "no-such-model" in problems["ghost-alias"]["reason"]


def test_alias_of_a_catalog_model_and_an_alias_taken(seeded_catalog, tmp_path):
    path = _write(
        tmp_path,
        {
            "gpt-4o-mini-latest": {"alias_of": "gpt-4o-mini"},
            "gpt-4o-mini-2024-07-18": {"alias_of": "claude-3-5-haiku"},
        },
    )
    summary = _import(path)
    assert ModelAlias.objects.get(alias="gpt-4o-mini-latest").model.model_id == "gpt-4o-mini"
    assert ModelAlias.objects.get(alias="gpt-4o-mini-2024-07-18").model.model_id == "gpt-4o-mini"  # unchanged
    assert [(p["key"], p["code"]) for p in summary["problems"]] == [("gpt-4o-mini-2024-07-18", "alias_taken")]


def test_every_entry_is_imported_or_reported_with_its_reason(db):
    summary = _import(EVERY_FIELD)
    assert summary["entries"] == 31
    aliases = summary["aliases_added"]
    sizes = 3  # the size/quality entries, folded into their model's image_prices
    made_from_sizes = 1  # test-dalle-two: a model made from its sizes, not an entry of its own
    imported = sum(summary["imported_by_mode"].values()) - made_from_sizes
    assert imported + aliases + sizes + summary["skipped"] == summary["entries"]
    assert {p["key"]: p["code"] for p in summary["problems"]} == {
        "ghost-alias": "alias_target_missing", "bad-string-price": "not_a_number",
        "bad-negative-price": "negative", "bad-nan-price": "not_finite", "bad-missing-mode": "missing_mode",
        "bad-unknown-mode": "unknown_mode", "bad-realtime": "mode_not_rated", "bad-no-price": "no_price",
        "bad-not-an-object": "not_an_object",
    }  # fmt: skip
    assert {(u["model"], u["field"], u["code"]) for u in summary["unused_fields"]} == {
        ("claude-test-sonnet", "search_context_cost_per_query", "web_search_tool"),
        ("gpt-test-5", "output_cost_per_token_above_272k_tokens_priority", "tier_within_service_tier"),
        ("azure/gpt-test-5", "regional_processing_uplift_multiplier_eu", "regional_uplift"),
        ("test-dbu-embed", "input_dbu_cost_per_token", "not_usd"),
        ("test-video", "output_cost_per_second_1080p", "no_dimension"),
    }
    assert all(u["reason"] for u in summary["unused_fields"])
    assert summary["reasons"]["not_a_number"] == 1 and summary["reasons"]["web_search_tool"] == 1


def test_strict_fails_on_any_unused_field_and_writes_nothing(db, tmp_path):
    with pytest.raises(CommandError, match=r"--strict: 9 entries refused and 5 price fields not used"):
        _import(EVERY_FIELD, "--strict")
    assert not AIModel.objects.exists() and not CatalogAudit.objects.exists()
    entries = {"clean-model": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "mode": "chat",
                               "litellm_provider": "x"}}  # fmt: skip
    assert _import(_write(tmp_path, entries), "--strict")["created"] == 1
    entries["clean-model"]["citation_cost_per_token"] = 1e-06
    with pytest.raises(CommandError, match="citation_cost_per_token"):
        _import(_write(tmp_path, entries), "--strict")


def test_dry_run_reports_and_writes_nothing(db):
    summary = _import(EVERY_FIELD, "--dry-run")
    assert summary["dry_run"] is True and summary["created"] == 18
    assert not AIModel.objects.exists() and not ModelAlias.objects.exists()


def test_a_map_the_catalog_sets_a_different_mode_for_is_reported(seeded_catalog, tmp_path):
    path = _write(tmp_path, {"gpt-4o-mini": {"input_cost_per_token": 1e-07, "mode": "embedding"}})
    summary = _import(path)
    assert summary["updated"] == 1
    assert [(u["model"], u["code"]) for u in summary["unused_fields"]] == [("gpt-4o-mini", "mode_differs")]
    assert AIModel.objects.get(model_id="gpt-4o-mini").mode == "chat"
    assert _import(path)["unused_fields"] == summary["unused_fields"]  # reported again, not only when it changed


def test_an_entry_named_by_model_id_wins_over_its_alias(seeded_catalog, tmp_path):
    path = _write(
        tmp_path,
        {
            "gpt-4o-mini-2024-07-18": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "mode": "chat"},
            "gpt-4o-mini": {"input_cost_per_token": 2e-07, "output_cost_per_token": 8e-07, "mode": "chat"},
        },
    )
    summary = _import(path)
    assert summary["updated"] == 1
    assert [p["key"] for p in summary["problems"]] == ["gpt-4o-mini-2024-07-18"]
    latest = ModelPrice.objects.filter(model__model_id="gpt-4o-mini").latest("effective_from")
    assert latest.input_per_million == Decimal("0.2")


def test_a_refused_entry_does_not_stop_the_others(seeded_catalog, tmp_path):
    # the seed's versions start at 2024-01-01: a changed price at that very time collides, a new model does not
    path = _write(
        tmp_path,
        {
            "claude-3-5-haiku": {"input_cost_per_token": 1e-06, "output_cost_per_token": 5e-06, "mode": "chat"},
            "brand-new": {
                "input_cost_per_token": 1e-06,
                "output_cost_per_token": 5e-06,
                "litellm_provider": "x",
                "mode": "chat",
            },
        },
    )
    summary = _import(path, "--effective-from", "2024-01-01T00:00:00+00:00", "--reason", "restate")
    assert (summary["created"], summary["updated"]) == (1, 0)
    assert summary["problems"] == [
        {
            "key": "claude-3-5-haiku",
            "code": "refused",
            "reason": "effective_from: a version already starts at that time",
        }
    ]
    assert AIModel.objects.filter(model_id="brand-new").exists()


def test_a_naive_effective_from_is_utc_and_a_past_one_is_backdated(seeded_catalog):
    _import(FIXTURE, "--effective-from", "2025-06-01T12:00:00")
    version = ModelPrice.objects.filter(model__model_id="claude-3-5-haiku").latest("effective_from")
    assert version.effective_from == datetime(2025, 6, 1, 12, tzinfo=UTC)
    assert version.backdated is True


def test_backdating_without_a_reason_is_refused(seeded_catalog):
    before = ModelPrice.objects.count()
    with pytest.raises(CommandError, match="reason"):
        _import(FIXTURE, "--effective-from", "2025-06-01T00:00:00Z", "--reason", "")
    assert ModelPrice.objects.count() == before


def test_a_future_effective_from_schedules_the_change(seeded_catalog, django_capture_on_commit_callbacks):
    later = timezone.now() + timedelta(days=7)
    with django_capture_on_commit_callbacks(execute=True):
        _import(FIXTURE, "--effective-from", later.isoformat())
    snapshot = catalog_snapshot()
    entry = snapshot.find_model("claude-3-5-haiku")
    assert entry.price_at(timezone.now()).input_per_million == Decimal("0.8")
    assert entry.price_at(later).input_per_million == Decimal(1)


@pytest.mark.parametrize("value", ["soon", "2026-13-01T00:00:00"])
def test_a_bad_effective_from_is_an_error(seeded_catalog, value):
    with pytest.raises(CommandError, match="--effective-from"):
        _import(FIXTURE, "--effective-from", value)


def test_missing_and_unreadable_files_are_errors(db, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        _import(tmp_path / "nope.json")
    with pytest.raises(CommandError, match="not valid JSON"):
        _import(_write(tmp_path, "{not json"))
    with pytest.raises(CommandError, match="expected a JSON object"):
        _import(_write(tmp_path, "[]"))


@pytest.mark.parametrize(("content", "message"), [(None, "cannot read"), ("{oops", "not valid JSON")])
def test_the_command_exits_non_zero_with_one_line(tmp_path, content, message):
    path = tmp_path / "prices.json"
    if content is not None:
        path.write_text(content)
    result = subprocess.run(
        [sys.executable, "manage.py", "import_model_prices", str(path)],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": os.environ.get("SECRET_KEY", "x")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


# --- what the imported prices rate at -------------------------------------------------------------------------------

_AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
# (model, usage counts, cost in USD computed by hand from the fixture's prices, per 1M tokens or per unit)
_SAMPLE: list[tuple[str, dict[str, Any], str]] = [
    # Anthropic-style long-context tier: 250k input passes 200k, so every part is at the tier's prices:
    # 120k uncached x 6 + 100k cache reads x 0.6 + 20k 5-minute writes x 7.5 + 10k 1-hour writes x 12 + 1k out x 22.5
    ("claude-test-sonnet", {"input_tokens": 250_000, "cached_input_tokens": 100_000, "cache_write_input_tokens": 20_000,
                            "cache_write_1h_input_tokens": 10_000, "output_tokens": 1_000}, "1.0725"),
    # below the tier: 6k x 3 + 2k x 0.3 + 1k x 3.75 + 1k x 6 + 500 x 15
    ("claude-test-sonnet", {"input_tokens": 10_000, "cached_input_tokens": 2_000, "cache_write_input_tokens": 1_000,
                            "cache_write_1h_input_tokens": 1_000, "output_tokens": 500}, "0.03585"),
    # reasoning at its own price: 1k in x 1.25 + 500 plain out x 10 + 1.5k reasoning x 12
    ("gpt-test-5", {"input_tokens": 1_000, "output_tokens": 2_000, "reasoning_tokens": 1_500}, "0.02425"),
    # the same through a provider-prefixed alias
    ("openai/gpt-test-5", {"input_tokens": 1_000, "output_tokens": 2_000, "reasoning_tokens": 1_500}, "0.02425"),
    # batch: 200k in x 0.625 + 100k out x 5
    ("gpt-test-5", {"input_tokens": 200_000, "output_tokens": 100_000, "service_tier": "batch"}, "0.625"),
    # batch past 272k: the tier's 2.5 and 15 at batch's ratio (1/2): 1M in x 1.25 + 100k out x 7.5
    ("gpt-test-5", {"input_tokens": 1_000_000, "output_tokens": 100_000, "service_tier": "batch"}, "2"),
    # flex with cache reads: 2k x 0.625 + 8k x 0.0625 + 1k x 5
    ("gpt-test-5", {"input_tokens": 10_000, "cached_input_tokens": 8_000, "output_tokens": 1_000,
                    "service_tier": "flex"}, "0.00675"),
    # priority past 272k: the tier's 2.5 and 15 times priority's ratio (2.5/1.25 = 2, 20/10 = 2): 300k x 5 + 1k x 30
    ("gpt-test-5", {"input_tokens": 300_000, "output_tokens": 1_000, "service_tier": "priority"}, "1.53"),
    # image tokens: 200 text in x 5 + 800 image in x 10 + 4k image out x 40
    ("gpt-test-image", {"input_tokens": 1_000, "image_input_tokens": 800, "output_tokens": 4_000,
                        "image_output_tokens": 4_000}, "0.169"),
    # per image by size and quality, and the model's own per-image price without a size
    ("test-dalle", {"images": 2, "image_size": "1024x1024", "image_quality": "hd"}, "0.16"),
    ("test-dalle", {"images": 1, "image_size": "1024x1792", "image_quality": "standard"}, "0.08"),
    ("test-dalle", {"images": 3}, "0.12"),
    ("test-dalle-two", {"images": 5, "image_size": "512x512"}, "0.09"),
    # audio tokens: 6k text in x 2.5 + 4k audio in x 40 + 1k text out x 10 + 1k audio out x 80
    ("gpt-test-audio", {"input_tokens": 10_000, "audio_input_tokens": 4_000, "output_tokens": 2_000,
                        "audio_output_tokens": 1_000}, "0.265"),
    ("test-whisper", {"seconds": Decimal(90)}, "0.009"),  # 90 s x 0.0001
    ("test-tts", {"characters": 1_000}, "0.015"),  # 1,000 characters x 0.000015
    ("test-embed", {"input_tokens": 1_000_000}, "0.02"),
    ("test-embed", {"input_tokens": 1_000_000, "service_tier": "batch"}, "0.01"),
    ("test-rerank", {"requests": 3}, "0.006"),
    ("test-search", {"requests": 2}, "0.01"),
    ("test-video", {"seconds": Decimal(8)}, "3.2"),  # 8 s x 0.40
    ("test-sonar", {"input_tokens": 1_000, "output_tokens": 1_000, "requests": 1}, "0.007"),
    # LiteLLM's tiered_pricing ranges: past 256k the whole request at 0.25 and 2
    ("test-qwen-tiered", {"input_tokens": 300_000, "output_tokens": 1_000}, "0.077"),
    ("test-qwen-tiered", {"input_tokens": 100_000, "output_tokens": 1_000}, "0.0054"),
    # DeepSeek's cache-hit price: 1k x 0.28 + 9k x 0.028 + 100 x 0.42
    ("test-deepseek", {"input_tokens": 10_000, "cached_input_tokens": 9_000, "output_tokens": 100}, "0.000574"),
    ("test-moderation", {"input_tokens": 1_000}, "0"),
]  # fmt: skip


def test_imported_prices_rate_as_computed_by_hand(seeded_catalog, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _import(EVERY_FIELD, "--effective-from", "2026-01-01T00:00:00Z", "--reason", "test")
    snapshot = catalog_snapshot()
    costs = [
        (model, rate_usage(UsageLine(model=model, occurred_at=_AT, **counts), snapshot, tier="jive").cost_usd)
        for model, counts, _ in _SAMPLE
    ]
    assert costs == [(model, Decimal(expected)) for model, _, expected in _SAMPLE]

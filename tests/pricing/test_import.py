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

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.litellm_import import PriceMapError, price_map_parse
from pricing.models import AIModel, ModelPrice
from pricing.rating import UsageLine, rate_usage
from pricing.selectors import catalog_snapshot

FIXTURE = Path(__file__).parent / "fixtures" / "litellm_prices.json"
ROOT = Path(__file__).resolve().parents[2]


def _import(path: Path | str, *args: str) -> dict:
    out = io.StringIO()
    call_command("import_model_prices", str(path), *args, stdout=out)
    return json.loads(out.getvalue())


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
        '{"m": {"input_cost_per_token": 1.23456789e-19, "output_cost_per_token": 0, "litellm_provider": "x"}}'
    ).prices
    assert price.input_per_million == Decimal("0.000000000000")  # 1.23e-13 per 1M: below 12 places


def test_sample_spec_is_skipped_silently():
    parsed = price_map_parse('{"sample_spec": {"input_cost_per_token": 0.0, "mode": "one of: chat"}}')
    assert parsed.prices == [] and parsed.problems == []


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"mode": "embedding", "input_cost_per_token": 2e-08, "output_cost_per_token": 0}, "mode 'embedding'"),
        ({"mode": "audio_transcription", "input_cost_per_second": 0.0001}, "mode 'audio_transcription'"),
        ({"mode": "chat"}, "input_cost_per_token and output_cost_per_token missing"),
        ({"mode": "chat", "input_cost_per_token": 1e-06}, "output_cost_per_token missing"),
        ({"mode": "image_generation"}, "needs output_cost_per_image"),
        ({"input_cost_per_token": -1e-06, "output_cost_per_token": 1e-06}, "negative"),
        ({"input_cost_per_token": "1e-06", "output_cost_per_token": 1e-06}, "must be a number"),
        ({"input_cost_per_token": True, "output_cost_per_token": 1e-06}, "must be a number"),
        ({"input_cost_per_token": [1], "output_cost_per_token": 1e-06}, "must be a number"),
        ({"input_cost_per_token": 1e300, "output_cost_per_token": 1e-06}, "too large"),
        ({"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "mode": 3}, "mode must be a string"),
        ({"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "litellm_provider": 7}, "litellm_provider"),
    ],
)
def test_unusable_entries_are_problems_with_a_reason(entry, reason):
    parsed = price_map_parse(json.dumps({"model-x": entry}))
    assert parsed.prices == []
    (problem,) = parsed.problems
    assert problem.key == "model-x"
    assert reason in problem.reason


def test_non_finite_numbers_are_refused_per_entry():
    parsed = price_map_parse(
        '{"a": {"input_cost_per_token": NaN, "output_cost_per_token": 0}, '
        '"b": {"input_cost_per_token": Infinity, "output_cost_per_token": 0}, '
        '"ok": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}'
    )
    assert [p.name for p in parsed.prices] == ["ok"]
    assert {p.key: p.reason for p in parsed.problems} == {
        "a": "input_cost_per_token is NaN, not a finite number",
        "b": "input_cost_per_token is Infinity, not a finite number",
    }


def test_odd_names_and_entries_are_problems():
    parsed = price_map_parse(
        json.dumps({" spaced ": {"input_cost_per_token": 0, "output_cost_per_token": 0}, "x" * 201: {}, "s": "str"})
    )
    assert parsed.prices == [] and len(parsed.problems) == 3


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '"a string"', "{" * 100_000, b"\xff\xfe\x00"])
def test_a_file_that_is_not_a_price_map_is_an_error(text):
    with pytest.raises(PriceMapError):
        price_map_parse(text)


_json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(["NaN", "1e-7"])
_json_values = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
_cost_names = st.sampled_from(
    ["input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost", "output_cost_per_image",
     "litellm_provider", "mode"]
)  # fmt: skip
_entries = st.dictionaries(
    st.text(max_size=12), st.dictionaries(_cost_names, _json_values | st.decimals(allow_nan=False)) | _json_values
)


@settings(max_examples=200, deadline=None)
@given(_entries)
def test_the_parser_never_crashes_on_any_entries(entries):
    text = json.dumps(entries, default=str)
    parsed = price_map_parse(text)
    assert len(parsed.prices) + len(parsed.problems) == len([k for k in entries if k != "sample_spec"])
    for price in parsed.prices:
        assert price.input_per_million >= 0 and price.output_per_million >= 0 and price.image_price >= 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_the_parser_never_crashes_on_any_text(text):
    with contextlib.suppress(PriceMapError):
        price_map_parse(text)


# --- importing (database) -------------------------------------------------------------------------------------------


def test_import_creates_updates_and_reports(seeded_catalog, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        summary = _import(FIXTURE)
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (2, 1, 1)
    assert summary["skipped"] == len(summary["problems"]) == 6
    assert {p["key"] for p in summary["problems"]} == {
        "text-embedding-3-small", "free-but-unpriced", "negative-model", "string-priced-model", "not-an-object",
        "nan-priced-model",
    }  # fmt: skip
    assert all(p["reason"] for p in summary["problems"])

    # the alias claude-3-5-haiku-20241022 named the catalog's claude-3-5-haiku: a new version, reason defaulted
    haiku = ModelPrice.objects.filter(model__model_id="claude-3-5-haiku")
    assert haiku.count() == 2
    latest = haiku.latest("effective_from")
    assert (latest.input_per_million, latest.output_per_million) == (Decimal(1), Decimal(5))
    assert latest.cached_input_per_million == Decimal("0.1")
    assert latest.reason == "LiteLLM import litellm_prices.json"
    # gpt-4o-mini's prices did not change: no new version
    assert ModelPrice.objects.filter(model__model_id="gpt-4o-mini").count() == 1

    mistral = AIModel.objects.get(model_id="mistral/mistral-large-latest")
    assert (mistral.display_name, mistral.provider, mistral.is_active) == (
        "mistral/mistral-large-latest",
        "mistral",
        True,
    )
    dalle = ModelPrice.objects.get(model__model_id="dall-e-3")
    assert dalle.image_price == Decimal("0.04") and dalle.input_per_million == 0
    assert not AIModel.objects.filter(model_id__in=["text-embedding-3-small", "sample_spec"]).exists()


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


def test_a_second_import_changes_nothing(seeded_catalog):
    _import(FIXTURE)
    versions = ModelPrice.objects.count()
    summary = _import(FIXTURE)
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (0, 0, 4)
    assert ModelPrice.objects.count() == versions


def test_an_entry_named_by_model_id_wins_over_its_alias(seeded_catalog, tmp_path):
    path = _write(
        tmp_path,
        {
            "gpt-4o-mini-2024-07-18": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
            "gpt-4o-mini": {"input_cost_per_token": 2e-07, "output_cost_per_token": 8e-07},
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
            "claude-3-5-haiku": {"input_cost_per_token": 1e-06, "output_cost_per_token": 5e-06},
            "brand-new": {"input_cost_per_token": 1e-06, "output_cost_per_token": 5e-06, "litellm_provider": "x"},
        },
    )
    summary = _import(path, "--effective-from", "2024-01-01T00:00:00+00:00", "--reason", "restate")
    assert (summary["created"], summary["updated"]) == (1, 0)
    assert summary["problems"] == [
        {"key": "claude-3-5-haiku", "reason": "effective_from: a version already starts at that time"}
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

"""The report tables: columns, rounded cells for the page and unrounded cells for the CSV."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Any

from django import forms
from django.http import HttpResponse
from django.utils import timezone

from core.csv_export import csv_write
from pricing import display


class MonthForm(forms.Form):
    month = forms.DateField(input_formats=["%Y-%m"], widget=forms.DateInput(attrs={"type": "month"}, format="%Y-%m"))


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Any], Any]
    kind: str = "text"  # text, int, usd or credits: how the page shows it; the CSV has the raw value


@dataclass
class ReportTable:
    key: str
    title: str
    columns: list[Column]
    rows: list[Any]
    total: Any = None
    csv_url: str = ""
    link: Callable[[Any], str] | None = None
    note: str = ""
    body: list[dict[str, Any]] = field(init=False)
    footer: list[dict[str, Any]] | None = field(init=False)

    def __post_init__(self) -> None:
        self.body = [{"url": self.link(row) if self.link else "", "cells": self._cells(row)} for row in self.rows]
        self.footer = self._cells(self.total) if self.total is not None else None

    def _cells(self, row: Any) -> list[dict[str, Any]]:
        return [{"text": _cell(c.kind, c.value(row)), "num": c.kind != "text"} for c in self.columns]

    def csv_response(self, filename: str) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        header = [column.header for column in self.columns]
        csv_write(response, [header, *([column.value(row) for column in self.columns] for row in self.rows)])
        return response


def _cell(kind: str, value: Any) -> str:
    if kind == "usd":
        return display.usd(value, 4)
    if kind == "credits":
        return display.credits(value, 2)
    if kind == "int":
        return f"{value:,}"
    return str(value)


USAGE_COLUMNS = [
    Column("Events", lambda r: r.events, "int"),
    Column("Input tokens", lambda r: r.input_tokens, "int"),
    Column("Output tokens", lambda r: r.output_tokens, "int"),
    Column("Provider cost (USD)", lambda r: r.cost_usd, "usd"),
    Column("Customer charge (USD)", lambda r: r.charge_usd, "usd"),
    Column("Credits", lambda r: r.credits, "credits"),
]

PROJECTION_COLUMNS = [
    Column("Account", lambda p: p.account_name),
    Column("Account id", lambda p: p.account_id),
    Column("Plan", lambda p: p.plan_code or "-"),
    Column("Today: events", lambda p: p.today_events, "int"),
    Column("Today: charge (USD)", lambda p: p.today_charge_usd, "usd"),
    Column("Month so far: events", lambda p: p.month_events, "int"),
    Column("Month so far: provider cost (USD)", lambda p: p.month_cost_usd, "usd"),
    Column("Month so far: charge (USD)", lambda p: p.month_charge_usd, "usd"),
    Column("Projected month: provider cost (USD)", lambda p: p.projected_cost_usd, "usd"),
    Column("Projected month: charge (USD)", lambda p: p.projected_charge_usd, "usd"),
    Column("Projected month: credits", lambda p: p.projected_credits, "credits"),
]


def today_utc() -> date:
    return timezone.now().astimezone(UTC).date()


def _month_bounds(month: date) -> tuple[date, date]:
    next_month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return month, date.fromordinal(next_month.toordinal() - 1)

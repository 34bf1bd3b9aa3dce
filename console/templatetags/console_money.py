"""The console's templates show money through pricing.display, the one display module:

{% load console_money %}
{{ figures.revenue|usd }}       $1,234.50, -$0.60, $0.004
{{ wallet.balance|credits }}     1,234,567
{{ period.units_used|units }}    12,500
{{ invoice.total|money:invoice.currency }}   R 18.50
"""

from __future__ import annotations

from django import template

from pricing import display

register = template.Library()
register.filter("usd", display.usd)
register.filter("credits", display.credits)
register.filter("units", display.units)
register.filter("money", display.money)

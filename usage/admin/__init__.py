"""The usage console: events, dead letters, reservations and rollups in the Django admin, and the usage reports.

Events, reservations and rollups are written by the recording and authorization services only, so they are
read-only here. Dead letters are read-only too, but can be replayed (after the catalog is fixed) or discarded
through the replay services. The reports read the daily rollups, never the events table, and each table downloads
as CSV with the unrounded amounts; pages show amounts rounded for display only.
"""

from usage.admin import alerts, dead_letters, events, home, price_offer, reports, reservations

__all__ = ["alerts", "dead_letters", "events", "home", "price_offer", "reports", "reservations"]

"""What every app's console pages share: read-only admins and inlines, and a paginator for huge tables."""

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

# A changelist counts matches up to this, never the whole table.
COUNT_CAP = 10_000


class ReadOnlyPermissions:
    """Nothing is added, changed or deleted through this admin or inline: its rows are written by services only.
    `obj` is optional because inlines are asked about a parent object and model admins are not."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ViewOnlyAdmin(ReadOnlyPermissions, admin.ModelAdmin):
    """Shown, never added, edited or deleted in the console: these rows are written by services only."""


class ViewOnlyInline(ReadOnlyPermissions, admin.TabularInline):
    """The rows of a related table on a parent's page, read-only, with no empty forms."""

    extra = 0


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 matches (a bounded subquery), so a page of a huge table never waits on COUNT(*)."""

    @cached_property
    def count(self) -> int:
        object_list: Any = self.object_list
        if isinstance(object_list, QuerySet):
            return object_list[: COUNT_CAP + 1].count()
        return len(object_list)

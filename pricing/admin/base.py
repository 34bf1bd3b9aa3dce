"""What every catalog admin shares: service writes inside the request's transaction, a dry run for
previews, the version form page and the redirects after a save."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from pricing import console, display
from pricing.admin import previews
from pricing.errors import CatalogValidationError
from pricing.forms import CatalogForm, FeatureCostForm, tier_choices

T = TypeVar("T")
Fieldsets = list[tuple[str | None, dict[str, Any]]]
VERSION_FIELDSET = ("When and why", {"fields": ["effective_from", "reason"]})


def _data(request: HttpRequest) -> Any:
    return request.POST if request.method == "POST" else None


def _initial(values: dict[str, Any]) -> dict[str, Any]:
    """Current values as a form shows them: stored decimals without their 12-place padding."""
    return {k: display.plain(v) if hasattr(v, "normalize") else v for k, v in values.items()}


class _RolledBack(Exception):
    pass


def _dry_run(write: Callable[[], object]) -> None:
    """Run a service write and roll it back: the service's own validation, with nothing kept (the preview step)."""
    try:
        with transaction.atomic():
            write()
            raise _RolledBack
    except _RolledBack:
        pass


class CatalogAdmin(admin.ModelAdmin):
    """Shared by the catalog pages: forms that call services, read-only history tables, no deletes."""

    change_form_template = "admin/pricing/catalog_form.html"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _object(self, request: HttpRequest, object_id: str) -> Any:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"no {self.opts.verbose_name} {object_id!r}")
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def _require_change(self, request: HttpRequest, obj: Any) -> None:
        if not self.has_change_permission(request, obj):
            raise PermissionDenied

    def _save(self, request: HttpRequest, form: CatalogForm, write: Callable[[], T]) -> T | None:
        """On a valid POST, call the service; its CatalogValidationError becomes form errors, nothing written."""
        if request.method != "POST" or not form.is_valid() or previews.PREVIEW in request.POST:
            return None
        try:
            with transaction.atomic():
                return write()
        except CatalogValidationError as exc:
            form.add_service_errors(exc)
            return None

    def _change_preview(
        self, request: HttpRequest, form: CatalogForm, write: Callable[[], Any], kind: str
    ) -> dict[str, Any]:
        """The page's preview context: whether the form offers one and, after its button, the version the service
        would write drawn by the registered previewer, then rolled back (service errors become form errors)."""
        context: dict[str, Any] = {"change_preview_offered": previews.change_preview_offered(kind)}
        if not previews.change_preview_wanted(request, kind) or not form.is_valid():
            return context
        drawn: list[SafeString] = []

        def draw() -> None:
            drawn.append(previews.change_preview_draw(kind, write()))

        try:
            _dry_run(draw)
        except CatalogValidationError as exc:
            form.add_service_errors(exc)
        return {**context, "change_preview": drawn[0] if drawn else None}

    def _url(self, name: str, obj: Any = None) -> str:
        args = [obj.pk] if obj is not None else []
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=args)

    def _saved(self, request: HttpRequest, obj: Any, message: str, *, added: bool = False) -> HttpResponseRedirect:
        if added:
            self.log_addition(request, obj, "Added in the pricing console")
        else:
            self.log_change(request, obj, message)
        self.message_user(request, message, messages.SUCCESS)
        if "_continue" in request.POST or added:
            return HttpResponseRedirect(self._url("change", obj))
        return HttpResponseRedirect(self._url("changelist"))

    def _version_saved(self, request: HttpRequest, obj: Any, version: Any, what: str) -> HttpResponseRedirect:
        note = " (backdated)" if version.backdated else ""
        message = f"New {what} for {obj} in force from {console.when(version.effective_from)}{note}."
        self.log_change(request, obj, message)
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(self._url("change", obj))

    def _audit_link(self, key: str) -> tuple[str, str]:
        return "Audit log", f"{reverse('admin:pricing_catalogaudit_changelist')}?{urlencode({'object_key': key})}"

    def _page(
        self,
        request: HttpRequest,
        *,
        form: CatalogForm,
        obj: Any,
        title: str,
        fieldsets: Fieldsets,
        tables: Sequence[console.Table] = (),
        links: Iterable[tuple[str, str]] = (),
        facts: Iterable[tuple[str, str]] = (),
        can_save: bool = True,
        template: str | None = None,
        **extra: Any,
    ) -> TemplateResponse:
        adminform = helpers.AdminForm(cast(Any, form), fieldsets, {}, model_admin=self)
        formsets = [form.tier_formset] if isinstance(form, FeatureCostForm) else []
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": str(obj) if obj is not None else None,
            "adminform": adminform,
            "object_id": obj.pk if obj is not None else None,
            "original": obj,
            "is_popup": False,
            "to_field": None,
            "media": self.media + adminform.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(cast(Any, form), formsets),
            "preserved_filters": self.get_preserved_filters(request),
            "show_save": can_save,
            "show_save_and_continue": can_save and obj is not None,
            "show_save_and_add_another": False,
            "show_delete": False,
            "tables": tables,
            "links": list(links),
            "facts": list(facts),
            "tier_formset": formsets[0] if formsets else None,
            **extra,
        }
        # render_change_form always answers with a TemplateResponse (the stubs say HttpResponse)
        response = cast(
            TemplateResponse,
            self.render_change_form(request, context, add=obj is None, change=obj is not None, obj=obj),
        )
        if template is not None:
            response.template_name = template
        return response

    def _version_page(self, request: HttpRequest, obj: Any, form: CatalogForm, title: str, **kwargs: Any) -> Any:
        return self._page(request, form=form, obj=obj, title=title, show_save_and_continue=False, **kwargs)

    def _tiers(self, *extra: str) -> list[tuple[str, str]]:
        return tier_choices(console.plan_codes(), *extra)

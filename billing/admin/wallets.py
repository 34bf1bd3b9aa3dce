"""Wallets and the credit ledger in the console: read-only, the newest entries inline."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from billing.admin.base import LEDGER_INLINE_LIMIT, NewestOnlyFormSet, admin_link
from billing.models import CreditGrant, LedgerEntry, Wallet
from core.admin_base import ViewOnlyAdmin, ViewOnlyInline
from pricing.display import plain


class LedgerEntryInline(ViewOnlyInline):
    model = LedgerEntry
    show_change_link = True
    formset = NewestOnlyFormSet
    fields = readonly_fields = (
        "created_at",
        "kind",
        "signed_credits",
        "balance_after_display",
        "reference",
        "reason",
        "actor",
    )
    verbose_name_plural = f"ledger (newest {LEDGER_INLINE_LIMIT} entries)"

    @admin.display(description="credits")
    def signed_credits(self, entry: LedgerEntry) -> str:
        return plain(entry.credits, signed=True)

    @admin.display(description="balance after")
    def balance_after_display(self, entry: LedgerEntry) -> str:
        return plain(entry.balance_after)


class CreditGrantInline(ViewOnlyInline):
    model = CreditGrant
    formset = NewestOnlyFormSet
    fields = readonly_fields = ("entry", "credits", "remaining", "expires_at", "expired_at")
    show_change_link = False
    verbose_name_plural = "expiring grants"


@admin.register(Wallet)
class WalletAdmin(ViewOnlyAdmin):
    list_display = ["account_link", "balance_display", "held_display", "available_display", "updated_at"]
    list_select_related = ["account"]
    search_fields = ["account__name", "account__id__exact"]
    search_help_text = "Account name or id."
    ordering = ["account__name", "account__id"]
    fields = readonly_fields = (
        "account_link",
        "balance_display",
        "held_display",
        "available_display",
        "updated_at",
        "all_entries",
    )
    inlines = [LedgerEntryInline, CreditGrantInline]

    @admin.display(description="account", ordering="account__name")
    def account_link(self, wallet: Wallet) -> str | SafeString:
        return admin_link(wallet.account)

    @admin.display(description="balance (credits)", ordering="balance")
    def balance_display(self, wallet: Wallet) -> str:
        return plain(wallet.balance)

    @admin.display(description="held", ordering="held")
    def held_display(self, wallet: Wallet) -> str:
        return plain(wallet.held)

    @admin.display(description="available")
    def available_display(self, wallet: Wallet) -> str:
        return plain(wallet.available)

    @admin.display(description="ledger")
    def all_entries(self, wallet: Wallet) -> SafeString:
        url = reverse("admin:billing_ledgerentry_changelist") + f"?wallet__id__exact={wallet.pk}"
        return format_html('<a href="{}">all {} entries, with filters and search</a>', url, wallet.entries.count())


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ViewOnlyAdmin):
    list_display = [
        "created_at", "account", "kind", "signed_credits", "balance_after_display", "usd_amount", "reference",
        "reason", "actor",
    ]  # fmt: skip
    list_filter = ["kind", "created_at"]
    list_select_related = ["wallet__account", "actor"]
    search_fields = ["reference", "wallet__account__name"]
    search_help_text = "Reference (e.g. adjustment:…, topup:…) or account name."
    show_full_result_count = False
    fields = readonly_fields = (
        "account", "kind", "signed_credits", "balance_after_display", "usd_amount", "rate", "reference", "reason",
        "actor", "created_at",
    )  # fmt: skip

    @admin.display(description="account", ordering="wallet__account__name")
    def account(self, entry: LedgerEntry) -> str | SafeString:
        return admin_link(entry.wallet.account)

    @admin.display(description="credits", ordering="credits")
    def signed_credits(self, entry: LedgerEntry) -> str:
        return plain(entry.credits, signed=True)

    @admin.display(description="balance after")
    def balance_after_display(self, entry: LedgerEntry) -> str:
        return plain(entry.balance_after)

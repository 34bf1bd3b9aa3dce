"""Why a billing operation was refused. Each has a stable `code` for the API and the commands."""

from core.errors import DomainError


class BillingError(DomainError):
    code = "billing_error"


class InvalidAmount(BillingError):
    code = "invalid_amount"


class InvalidAccountName(BillingError):
    code = "invalid_account_name"


class UnknownDisplayCurrency(BillingError):
    code = "unknown_display_currency"


class UnknownAccountSetting(BillingError):
    code = "unknown_account_setting"


class WebhookUrlRefused(BillingError):
    """An alert webhook URL the egress rule refuses (not https, or not a public internet address)."""

    code = "webhook_url_refused"


class InvalidAccountStatus(BillingError):
    code = "invalid_account_status"


class InvalidMemberRole(BillingError):
    code = "invalid_member_role"


class LastOwner(BillingError):
    """An account keeps at least one owner: its last owner cannot be removed."""

    code = "last_owner"
    status_code = 409


class InsufficientCredits(BillingError):
    code = "insufficient_credits"
    status_code = 402


class AccountSuspended(BillingError):
    code = "account_suspended"
    status_code = 403


class AlreadyMember(BillingError):
    code = "already_member"
    status_code = 409


class PeriodNotEnded(BillingError):
    code = "period_not_ended"
    status_code = 409


class CloseInFuture(BillingError):
    code = "close_in_future"
    status_code = 400


class NoSubscription(BillingError):
    code = "no_subscription"
    status_code = 409


class IdempotencyConflict(BillingError):
    code = "idempotency_conflict"
    status_code = 409


class InvalidIdempotencyKey(BillingError):
    code = "invalid_idempotency_key"


class UnknownCustomer(BillingError):
    code = "unknown_customer"
    status_code = 404


class InvalidCustomer(BillingError):
    """A customer field is refused; `field` names it for the API's `fields`."""

    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.fields = {field: [message]}


class PortalUnavailable(BillingError):
    code = "portal_unavailable"
    status_code = 409

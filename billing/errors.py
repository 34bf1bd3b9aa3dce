"""Why a billing operation was refused. Each has a stable `code` for the API and the commands."""


class BillingError(Exception):
    code = "billing_error"
    status_code = 400

    @property
    def message(self) -> str:
        return str(self)


class InvalidAmount(BillingError):
    code = "invalid_amount"


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

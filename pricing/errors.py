"""Why a usage line cannot be rated. Each has a stable `code` the API and the dead-letter table report."""

from core.errors import DomainError


class PricingError(DomainError):
    code = "pricing_error"


class UnknownModel(PricingError):
    code = "unknown_model"

    suggestions: tuple[str, ...] = ()  # close catalog names, set where the name was looked up


class InactiveModel(PricingError):
    code = "model_inactive"


class ModelNotAllowed(PricingError):
    code = "model_not_allowed"


class UnknownFeature(PricingError):
    code = "unknown_feature"


class UnknownPlan(PricingError):
    code = "unknown_plan"


class NoPriceInForce(PricingError):
    code = "no_price_in_force"


class InvalidUsage(PricingError):
    code = "invalid_usage"


class UnpricedDimension(PricingError):
    """The event uses a dimension (1-hour cache writes, seconds, a service tier...) the model's price leaves empty."""

    code = "unpriced_dimension"


class CatalogValidationError(PricingError):
    """A catalog write was refused; `fields` maps field names to messages."""

    code = "invalid"
    fields: dict[str, str]

    def __init__(self, message: str, *, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}

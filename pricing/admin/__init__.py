"""The pricing console: the catalog in the Django admin.

Every write calls a pricing service inside the request's transaction, so a price edited here gets the same
validation, versioning, audit and cache invalidation as one changed over the API; a CatalogValidationError comes
back as form errors with nothing written. Version rows (prices, costs, rates, terms) are shown read-only and added
through "new version" forms; nothing is deleted from here; the audit log is read-only.
"""

from pricing.admin import ai_models, audit, exchange_rates, features, home, plans

__all__ = ["ai_models", "audit", "exchange_rates", "features", "home", "plans"]

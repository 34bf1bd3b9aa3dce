"""The inputs authorize, estimate and events share: feature uses and the price dimensions of a call."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pricing.rating import FeatureUse
from usage.event_dimensions import SERVICE_TIER_NAMES
from usage.events import EVENT_FEATURES, EventRefused


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                    "cepo": {"type": "boolean"},
                },
                "required": ["key"],
            },
        ]
    }
)
class FeatureUseField(serializers.Field):
    """A feature key, or {"key", "quantity"?, "cepo"?}: read by the same rules as an event's features."""

    def to_representation(self, value: FeatureUse) -> dict[str, Any]:
        return {"key": value.key, "quantity": str(value.quantity), "cepo": value.cepo}

    def to_internal_value(self, data: Any) -> FeatureUse:
        try:
            return EVENT_FEATURES.use_of(data)
        except EventRefused as exc:
            raise serializers.ValidationError(exc.message) from None


def features_distinct(uses: list[FeatureUse]) -> list[FeatureUse]:
    """Each feature listed once: a repeated key would compound its multiplier."""
    keys = [use.key for use in uses]
    if len(set(keys)) != len(keys):
        raise serializers.ValidationError(
            'each feature is listed once; a feature used several times is {"key", "quantity"}'
        )
    return uses


class PriceDimensionsSerializer(serializers.Serializer):
    """The price dimensions a client may know before a call (docs/pricing-dimensions.md): parts of `input_tokens`,
    the service tier and the units of other modes. `dimensions()` gives them as UsageLine fields."""

    cached_input_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    cache_write_input_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    cache_write_1h_input_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    image_input_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    audio_input_tokens = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    service_tier = serializers.ChoiceField(
        choices=sorted(SERVICE_TIER_NAMES),
        required=False,
        default="default",
        help_text="default, batch, flex, priority",
    )
    image_size = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    image_quality = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
    seconds = serializers.DecimalField(
        max_digits=16,
        decimal_places=6,
        min_value=Decimal(0),
        max_value=Decimal(10**7),
        required=False,
        default=Decimal(0),
    )
    characters = serializers.IntegerField(min_value=0, max_value=10**10, required=False, default=0)
    requests = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)

    DIMENSIONS = (
        "cached_input_tokens", "cache_write_input_tokens", "cache_write_1h_input_tokens", "image_input_tokens",
        "audio_input_tokens", "image_size", "image_quality", "characters", "requests",
    )  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        parts = sum(attrs.get(name, 0) for name in self.DIMENSIONS if name.endswith("_tokens"))
        total = attrs.get("input_tokens")
        if total is not None and parts > total:
            raise serializers.ValidationError(
                {"input_tokens": "the cached, cache-write, image and audio input tokens are parts of input_tokens"}
            )
        return attrs

    @classmethod
    def dimensions(cls, values: dict[str, Any]) -> dict[str, Any]:
        out = {name: values.get(name) or (0 if name not in ("image_size", "image_quality") else "")
               for name in cls.DIMENSIONS}  # fmt: skip
        out["service_tier"] = SERVICE_TIER_NAMES[values.get("service_tier") or "default"]
        out["seconds"] = Decimal(values.get("seconds") or 0)
        return out

"""Where the metering gateway sends each call: an upstream provider, its base URL, its key (encrypted) and models."""

from __future__ import annotations

import fnmatch

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Upstream(models.Model):
    """One provider endpoint the operator pays for. A call goes to the first active upstream of its provider kind
    (lowest `priority`) whose model patterns match the model asked for; an empty pattern list matches every model."""

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible"
        ANTHROPIC = "anthropic", "Anthropic"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    base_url = models.URLField(
        max_length=500,
        help_text="OpenAI: up to /v1 (https://api.openai.com/v1); Anthropic: the host (https://api.anthropic.com)",
    )
    # Fernet token of the provider key (gateway/upstream_keys.py); the clear key is never stored nor shown again
    api_key_encrypted = models.TextField(editable=False)
    api_key_hint = models.CharField(max_length=12, editable=False, help_text="the key's last four characters")
    model_patterns = models.TextField(
        blank=True, help_text="one model name or shell pattern per line (gpt-4o*, claude-*); empty: every model"
    )
    priority = models.PositiveIntegerField(default=100, help_text="lower first when several upstreams match")
    timeout_seconds = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(1), MaxValueValidator(3600)],
        help_text="seconds to wait for the provider: for its answer to start, then for each read of it (a long "
        "stream may take longer in all); connecting waits at most 10",
    )  # fmt: skip
    connect_retries = models.PositiveSmallIntegerField(
        default=2, validators=[MaxValueValidator(10)],
        help_text="retries when the connection fails, before any byte was sent back",
    )  # fmt: skip
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "priority", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def patterns(self) -> list[str]:
        return [line.strip() for line in self.model_patterns.splitlines() if line.strip()]

    def serves(self, model: str) -> bool:
        patterns = self.patterns
        return not patterns or any(fnmatch.fnmatchcase(model.lower(), p.lower()) for p in patterns)

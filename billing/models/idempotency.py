"""Stored first answers to POSTs sent with an Idempotency-Key."""

from __future__ import annotations

from django.db import models


class IdempotencyKey(models.Model):
    """The first answer to a POST sent with an `Idempotency-Key`, so a retry gets it again and never acts twice.

    Unique per (owner, key hash): a concurrent retry waits on the first one's insert and then reads its answer.
    The key itself is not stored; the answer is encrypted with a key derived from it (it may hold a new API key).
    """

    owner = models.CharField(max_length=100, help_text="who sent the key, e.g. server-key:12")
    key_hash = models.CharField(max_length=64)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.TextField(blank=True, help_text="the answer's body, encrypted")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "key_hash"], name="idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} by {self.owner} ({self.status_code})"

"""Per-user API tokens (the secret is shown once and stored only as a SHA-256 hash)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from .choices import TokenScope


class ApiToken(models.Model):
    """One API token of one user: label, scope, optional expiry, revocation, usage.

    ``key_hash`` is the SHA-256 of the whole secret. The secret has 256 bits of
    entropy, so a fast hash is enough (nobody can brute-force it) and lets every API
    request find its token with one indexed lookup; a password hasher (PBKDF2,
    ~0.3 s by design) would cost that much on every request. ``prefix`` is the first
    characters of the secret, kept to tell tokens apart in lists; it is not secret
    enough to authenticate anything.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    label = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(
        max_length=16, choices=TokenScope.choices, default=TokenScope.READ
    )
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    request_count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = "API token"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "label"],
                condition=models.Q(revoked_at__isnull=True),
                name="one_live_token_label_per_user",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} / {self.label} ({self.scope})"

    def get_absolute_url(self) -> str:
        return reverse("tokens:token_list")

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.is_expired else "active"

"""API tokens: shown once, stored hashed, scope vs. role (at creation and at use),
expiry, revocation, audit, throttling; the tokens page and the management command."""

from __future__ import annotations

import io
import logging
from datetime import timedelta

from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client, TestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from api import tokens
from api.models import ApiToken
from registry.models import ActionLog, ModelEntry
from tests.base import PersonaMixin, quiet_request_log

from .helpers import FixtureRegistryMixin, bearer

SIGLIP = "siglip-large-patch16-384_(FP32)"


class TokenServiceTests(FixtureRegistryMixin, PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        cls.sync()
        cls.siglip = ModelEntry.objects.get(name=SIGLIP)

    def unlock_url(self):
        return f"/api/v1/entries/{self.siglip.pk}/unlock"

    def get(self, path, secret, **extra):
        with quiet_request_log():
            return self.client.get(path, **bearer(secret), **extra)

    def post(self, path, secret, **extra):
        with quiet_request_log():
            return self.client.post(path, **bearer(secret), **extra)

    # --- creation -------------------------------------------------------------------

    def test_the_secret_is_returned_once_and_only_its_hash_is_stored(self):
        token, secret = tokens.create_token(self.viewer, "laptop", "read")
        self.assertTrue(secret.startswith("iwk_"))
        self.assertGreaterEqual(len(secret), 40)
        token.refresh_from_db()
        stored = [str(v) for v in token.__dict__.values()]
        self.assertNotIn(secret, stored)
        self.assertEqual(token.key_hash, tokens.hash_secret(secret))
        self.assertEqual(token.prefix, secret[:12])
        self.assertEqual(self.get("/api/v1/me", secret).json()["token_label"], "laptop")

    def test_a_scope_above_the_role_cannot_be_created(self):
        cases = [
            (self.viewer, "operate"),
            (self.viewer, "edit"),
            (self.operator, "edit"),
            (self.editor, "operate"),
            (self.outsider, "read"),
        ]
        for user, scope in cases:
            with (
                self.subTest(user=user.username, scope=scope),
                self.assertRaisesMessage(tokens.TokenError, "does not allow"),
            ):
                tokens.create_token(user, f"{scope}-x", scope)
        self.assertEqual(
            [s.value for s in tokens.allowed_scopes(self.admin)],
            ["read", "operate", "edit"],
        )
        self.assertEqual(
            [s.value for s in tokens.allowed_scopes(self.operator)], ["read", "operate"]
        )

    def test_labels_are_required_and_unique_among_live_tokens(self):
        with self.assertRaisesMessage(tokens.TokenError, "label"):
            tokens.create_token(self.viewer, "  ", "read")
        first, _ = tokens.create_token(self.viewer, "ci", "read")
        with self.assertRaisesMessage(tokens.TokenError, "already have"):
            tokens.create_token(self.viewer, "ci", "read")
        tokens.revoke_token(first, by="vera")
        tokens.create_token(self.viewer, "ci", "read")  # a revoked label is free again

    # --- use: scope AND role ----------------------------------------------------------

    def test_a_read_token_of_an_operator_cannot_change_anything(self):
        _, secret = tokens.create_token(self.operator, "reader", "read")
        self.assertEqual(self.get("/api/v1/entries", secret).status_code, 200)
        response = self.post(self.unlock_url(), secret)
        self.assertEqual(response.status_code, 403)
        self.assertIn("scope (read)", response.json()["detail"])
        self.assertTrue(ModelEntry.objects.get(pk=self.siglip.pk).locked)

    def test_the_role_is_checked_at_use_time_not_only_at_creation(self):
        _, secret = tokens.create_token(self.operator2, "ops", "operate")
        self.operator2.groups.set(Group.objects.filter(name="viewer"))
        response = self.post(self.unlock_url(), secret)
        self.assertEqual(response.status_code, 403)
        self.assertIn("your role does not allow", response.json()["detail"])
        self.assertEqual(self.get("/api/v1/entries", secret).status_code, 200)
        self.operator2.groups.clear()
        self.assertEqual(self.get("/api/v1/entries", secret).status_code, 403)

    def test_a_deactivated_user_s_tokens_stop_working_at_once(self):
        _, secret = tokens.create_token(self.operator2, "ops", "operate")
        self.operator2.is_active = False
        self.operator2.save()
        response = self.get("/api/v1/entries", secret)
        self.assertEqual(response.status_code, 401)
        self.assertEqual(response.json(), {"detail": "Invalid token."})

    def test_expired_and_revoked_tokens_are_refused_with_the_reason(self):
        token, secret = tokens.create_token(
            self.viewer, "old", "read", expires_in_days=1
        )
        self.assertEqual(self.get("/api/v1/entries", secret).status_code, 200)
        ApiToken.objects.filter(pk=token.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        response = self.get("/api/v1/entries", secret)
        self.assertEqual(response.status_code, 401)
        self.assertEqual(response.json()["detail"], "This token has expired.")
        self.assertIn("invalid_token", response["WWW-Authenticate"])
        token2, secret2 = tokens.create_token(self.viewer, "gone", "read")
        self.assertTrue(tokens.revoke_token(token2, by="vera"))
        self.assertFalse(tokens.revoke_token(token2, by="vera"))
        self.assertEqual(
            self.get("/api/v1/entries", secret2).json()["detail"],
            "This token was revoked.",
        )
        for bogus in ("iwk_" + "x" * 43, "not-even-a-token", ""):
            self.assertEqual(self.get("/api/v1/entries", bogus).status_code, 401)

    # --- audit -----------------------------------------------------------------------

    def test_a_state_changing_call_is_audited_with_the_user_and_the_token_label(self):
        _, secret = tokens.create_token(self.operator, "nightly-job", "operate")
        response = self.post(self.unlock_url(), secret)
        self.assertEqual(response.status_code, 200, response.content)
        row = ActionLog.objects.filter(action="unlock").latest("pk")
        self.assertEqual(row.user_name, "alice (token nightly-job)")
        self.assertEqual(row.user, self.operator)
        self.assertEqual(row.outcome, "succeeded")
        self.assertEqual(row.entry_name, SIGLIP)

    def test_reads_update_the_token_s_usage_and_log_a_line(self):
        token, secret = tokens.create_token(self.viewer, "dash", "read")
        with self.assertLogs("api.audit", logging.INFO) as logs:
            for _ in range(3):
                self.get("/api/v1/entries", secret, REMOTE_ADDR="10.1.2.3")
        self.assertEqual(
            sum("user=vera token=dash scope=read" in line for line in logs.output), 3
        )
        token.refresh_from_db()
        # Written at most once a minute: the first request wrote, two are pending.
        self.assertEqual((token.request_count, token.last_used_ip), (1, "10.1.2.3"))
        ApiToken.objects.filter(pk=token.pk).update(
            last_used=timezone.now() - timedelta(seconds=61)
        )
        self.get("/api/v1/entries", secret, REMOTE_ADDR="10.1.2.3")
        token.refresh_from_db()
        self.assertEqual(token.request_count, 4)
        self.get("/api/v1/entries", secret, REMOTE_ADDR="10.1.2.4")  # a new address
        token.refresh_from_db()
        self.assertEqual((token.request_count, token.last_used_ip), (5, "10.1.2.4"))
        # Reads go to the log lines above, not to the audit table (only the creation).
        self.assertEqual(
            list(ActionLog.objects.filter(user=self.viewer).values_list("action")),
            [("token",)],
        )

    # --- throttling ------------------------------------------------------------------

    @override_settings(AXES_ENABLED=True, AXES_FAILURE_LIMIT=3)
    def test_failed_token_attempts_lock_the_address_out_like_logins(self):
        _, good = tokens.create_token(self.viewer, "good", "read")
        attacker = {"REMOTE_ADDR": "10.9.9.9"}
        codes = [
            self.get("/api/v1/entries", f"iwk_guess{i}", **attacker).status_code
            for i in range(4)
        ]
        self.assertEqual(codes, [401, 401, 401, 429])
        locked = self.get("/api/v1/entries", "iwk_guess9", **attacker)
        self.assertIn("Too many failed token attempts", locked.json()["detail"])
        self.assertTrue(int(locked["Retry-After"]) > 0)
        # A real token cannot be guessed: presenting one is not held up.
        self.assertEqual(self.get("/api/v1/entries", good, **attacker).status_code, 200)
        other = self.get("/api/v1/entries", "iwk_guess", REMOTE_ADDR="10.0.0.7")
        self.assertEqual(other.status_code, 401, "another address is not locked out")
        call_command("axes_reset_ip", "10.9.9.9", stdout=io.StringIO())
        self.assertEqual(
            self.get("/api/v1/entries", "iwk_guess", **attacker).status_code, 401
        )


class TokenPageTests(PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def test_the_page_creates_a_token_and_shows_the_secret_once(self):
        client = self.client_for(self.operator)
        page = client.get(reverse("tokens:token_list"))
        self.assertContains(page, "API tokens")
        self.assertContains(page, '<option value="operate"')
        self.assertNotContains(page, '<option value="edit"')
        response = client.post(
            reverse("tokens:token_create"),
            {"label": "tagger", "scope": "operate", "expires_in_days": "30"},
        )
        self.assertEqual(response["Cache-Control"].count("no-store"), 1)
        secret = response.context["new_secret"]
        self.assertContains(response, secret)
        token = ApiToken.objects.get(user=self.operator, label="tagger")
        self.assertEqual(token.scope, "operate")
        self.assertAlmostEqual((token.expires_at - timezone.now()).days, 29, delta=1)
        again = client.get(reverse("tokens:token_list"))
        self.assertNotContains(again, secret)
        self.assertContains(again, token.prefix)

    def test_a_scope_above_the_role_is_refused_on_the_page(self):
        client = self.client_for(self.viewer)
        response = client.post(
            reverse("tokens:token_create"), {"label": "x", "scope": "edit"}
        )
        self.assertEqual(response.status_code, 200)
        self.assertFalse(ApiToken.objects.exists())
        self.assertContains(response, "Select a valid choice")
        nobody = self.client_for(self.outsider).get(reverse("tokens:token_list"))
        self.assertContains(nobody, "Your role allows no API tokens")

    def test_users_revoke_their_own_tokens_only(self):
        mine, _ = tokens.create_token(self.viewer, "mine", "read")
        theirs, _ = tokens.create_token(self.operator, "theirs", "read")
        client = self.client_for(self.viewer)
        with quiet_request_log():
            response = client.post(reverse("tokens:token_revoke", args=[theirs.pk]))
        self.assertEqual(response.status_code, 404)
        theirs.refresh_from_db()
        self.assertIsNone(theirs.revoked_at)
        client.post(reverse("tokens:token_revoke", args=[mine.pk]))
        mine.refresh_from_db()
        self.assertEqual(mine.revoked_by, "vera")
        self.assertEqual(mine.status, "revoked")

    def test_creating_and_revoking_on_the_page_is_in_the_audit_log(self):
        client = self.client_for(self.operator)
        client.post(
            reverse("tokens:token_create"),
            {"label": "tagger", "scope": "operate", "expires_in_days": "30"},
        )
        token = ApiToken.objects.get(user=self.operator, label="tagger")
        client.post(reverse("tokens:token_revoke", args=[token.pk]))
        client.post(reverse("tokens:token_revoke", args=[token.pk]))  # already revoked
        rows = list(ActionLog.objects.filter(action="token").order_by("pk"))
        self.assertEqual(
            [(r.user_name, r.details["op"], r.details["label"]) for r in rows],
            [("alice", "create", "tagger"), ("alice", "revoke", "tagger")],
        )
        self.assertEqual(rows[0].details["scope"], "operate")
        secret_free = " ".join(str(r.details) + r.message for r in rows)
        self.assertNotIn(token.key_hash, secret_free)
        log = self.client_for(self.admin).get(reverse("registry:actionlog_list"))
        self.assertContains(log, "Revoked API token &#x27;tagger&#x27; of alice.")

    def test_the_user_menu_links_to_the_tokens_page(self):
        page = self.client_for(self.viewer).get(reverse("dashboard"))
        self.assertContains(page, reverse("tokens:token_list"))

    def test_anonymous_users_are_sent_to_login_and_posts_need_csrf(self):
        response = Client().get(reverse("tokens:token_list"))
        self.assertIn("/login/", response["Location"])
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.viewer)
        with quiet_request_log():
            response = client.post(
                reverse("tokens:token_create"), {"label": "x", "scope": "read"}
            )
        self.assertEqual(response.status_code, 403)


class TokenCommandTests(PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def test_create_list_revoke(self):
        out, err = io.StringIO(), io.StringIO()
        call_command(
            "api_token",
            "create",
            "alice",
            "--label",
            "gpu1 tagger",
            "--scope",
            "operate",
            "--expires-days",
            "7",
            stdout=out,
            stderr=err,
        )
        secret = out.getvalue().strip()
        self.assertTrue(secret.startswith("iwk_"))
        token = ApiToken.objects.get(key_hash=tokens.hash_secret(secret))
        self.assertTrue(token.created_by.startswith("cli"))
        listing = io.StringIO()
        call_command("api_token", "list", "alice", stdout=listing)
        self.assertIn("gpu1 tagger\toperate", listing.getvalue())
        self.assertNotIn(secret, listing.getvalue())
        call_command("api_token", "revoke", str(token.pk), stdout=io.StringIO())
        token.refresh_from_db()
        self.assertEqual(token.status, "revoked")
        audit = ActionLog.objects.filter(action="token").order_by("pk")
        self.assertEqual(
            [(r.source, r.details["op"], r.details["user"]) for r in audit],
            [("cli", "create", "alice"), ("cli", "revoke", "alice")],
        )

    def test_errors_are_command_errors(self):
        with self.assertRaisesMessage(CommandError, "No user named"):
            call_command("api_token", "create", "nobody", "--label", "x")
        with self.assertRaisesMessage(CommandError, "does not allow"):
            call_command(
                "api_token", "create", "vera", "--label", "x", "--scope", "edit"
            )
        with self.assertRaisesMessage(CommandError, "No token"):
            call_command("api_token", "revoke", "999")

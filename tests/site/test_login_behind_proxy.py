"""Login throttling behind the reverse proxy of docs/deploy.md (issue 17, section 6).

Every request reaches gunicorn from the proxy. django-axes keys lockouts on username +
client address, so the address must be the real client's: taken from
``X-Forwarded-For`` only when the request comes from ``IMAGEWORKS_TRUSTED_PROXIES``.
"""

from __future__ import annotations

from django.test import Client, RequestFactory, TestCase, override_settings
from django.urls import reverse

from imageworks_site.client_ip import client_ip
from tests.base import PASSWORD, make_user, quiet_request_log
from tests.site.test_settings import run_manage

PROXY = "127.0.0.1"
ATTACKER = "203.0.113.9"
ALICE_HOME = "198.51.100.7"


@override_settings(
    AXES_ENABLED=True, AXES_FAILURE_LIMIT=3, IMAGEWORKS_TRUSTED_PROXIES=["127.0.0.1/32"]
)
class BehindTheProxyTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        make_user("alice", "operator")

    def login(self, password: str, forwarded: str, peer: str = PROXY):
        with quiet_request_log():
            return Client().post(
                reverse("login"),
                {"username": "alice", "password": password},
                REMOTE_ADDR=peer,
                HTTP_X_FORWARDED_FOR=forwarded,
            )

    def fail_three_times(self, forwarded: str, peer: str = PROXY) -> None:
        for _ in range(3):
            self.assertIn(self.login("wrong", forwarded, peer).status_code, (200, 429))

    def test_an_attacker_does_not_lock_the_user_out_everywhere(self):
        self.fail_three_times(ATTACKER)
        self.assertEqual(self.login(PASSWORD, ATTACKER).status_code, 429)
        # the real user, from home, through the same proxy
        self.assertEqual(self.login(PASSWORD, ALICE_HOME).status_code, 302)

    def test_a_forged_header_does_not_dodge_the_lockout(self):
        # The proxy appends the address it saw; the client controls what is left of it.
        for fake in ("10.1.1.1", "10.2.2.2", "10.3.3.3"):
            self.login("wrong", f"{fake}, {ATTACKER}")
        response = self.login(PASSWORD, f"{ALICE_HOME}, {ATTACKER}")
        self.assertEqual(response.status_code, 429)
        self.assertContains(response, "Too many failed sign-ins", status_code=429)

    def test_the_header_is_ignored_from_anyone_but_the_proxy(self):
        direct = "192.0.2.50"  # reaches gunicorn without the proxy
        for fake in ("10.1.1.1", "10.2.2.2", "10.3.3.3"):
            self.login("wrong", fake, peer=direct)
        self.assertEqual(self.login(PASSWORD, ALICE_HOME, peer=direct).status_code, 429)
        self.assertEqual(self.login(PASSWORD, ALICE_HOME).status_code, 302)


class ClientAddressTests(TestCase):
    def address(self, peer: str, forwarded: str | None = None, trusted=()):
        meta = {"REMOTE_ADDR": peer}
        if forwarded is not None:
            meta["HTTP_X_FORWARDED_FOR"] = forwarded
        request = RequestFactory().get("/", **meta)
        with self.settings(IMAGEWORKS_TRUSTED_PROXIES=list(trusted)):
            return client_ip(request)

    def test_without_trusted_proxies_the_peer_is_the_client(self):
        self.assertEqual(self.address("127.0.0.1", ATTACKER), "127.0.0.1")

    def test_the_right_most_untrusted_hop_is_the_client(self):
        trusted = ["10.0.0.0/8", "127.0.0.1"]
        self.assertEqual(
            self.address("127.0.0.1", f"1.1.1.1, {ATTACKER}, 10.0.0.2", trusted),
            ATTACKER,
        )

    def test_ports_ipv6_and_mapped_addresses(self):
        trusted = ["::1", "127.0.0.1"]
        self.assertEqual(
            self.address("::1", "[2001:db8::5]:4711", trusted), "2001:db8::5"
        )
        self.assertEqual(
            self.address("127.0.0.1", f"{ATTACKER}:443", trusted), ATTACKER
        )
        self.assertEqual(
            self.address("::ffff:127.0.0.1", f"::ffff:{ATTACKER}", trusted), ATTACKER
        )

    def test_garbage_or_a_missing_header_falls_back_to_the_peer(self):
        trusted = ["127.0.0.1"]
        self.assertEqual(self.address("127.0.0.1", "unknown", trusted), "127.0.0.1")
        self.assertEqual(self.address("127.0.0.1", None, trusted), "127.0.0.1")
        self.assertEqual(self.address("127.0.0.1", "127.0.0.1", trusted), "127.0.0.1")


def test_a_bad_trusted_proxy_setting_is_a_clear_startup_error():
    result = run_manage("check", IMAGEWORKS_TRUSTED_PROXIES="127.0.0.1, proxy.local")
    assert result.returncode != 0
    assert "IMAGEWORKS_TRUSTED_PROXIES" in result.stderr
    assert "'proxy.local'" in result.stderr
    assert "Traceback" not in result.stderr

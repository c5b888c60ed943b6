"""Stop never signals a process group we did not create (issue 13 §1).

A real parent process (``tests/fakes/fake_chat_proxy.py``, the original chat
proxy's launcher) starts the fake vLLM inside its *own* process group and writes
the original's state file; the console adopts the server and stops it (or
replaces it). The parent and its other child must survive; the server and its
workers must be gone. A server the console started itself is still cleaned up
as a whole group, workers included.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
from django.test import TransactionTestCase

from backends.choices import ActivationState
from backends.models import Activation
from backends.vllm import process, service
from registry.audit import Actor
from tests.backends.activation_fixtures import FakeVllmMixin, make_entry
from tests.backends.vllm_helpers import FAKES, wait_until

ACTOR = Actor.system("tester")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class ParentSurvivesTests(FakeVllmMixin, TransactionTestCase):
    def start_parent(self, name: str, *, workers: int = 2) -> dict[str, int]:
        """The chat-proxy stand-in, in a session of its own (like a real service)."""
        self.parent = subprocess.Popen(
            [
                sys.executable,
                str(FAKES / "fake_chat_proxy.py"),
                "--state",
                str(self.state_path),
                "--name",
                name,
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--sibling",
            ],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.addCleanup(self._kill_parent)
        pids: dict[str, int] = {}
        for line in self.parent.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "READY":
                break
            if word in ("SERVER", "SIBLING"):
                pids[word.lower()] = int(rest)
            elif self.parent.poll() is not None:
                self.fail(f"parent exited: {line}")
        server = psutil.Process(pids["server"])
        self.assertTrue(
            wait_until(lambda: len(server.children()) == workers),
            "workers did not start",
        )
        pids["workers"] = [c.pid for c in server.children()]
        # The premise: the server shares the parent's group (that is the bug's setup).
        self.assertEqual(os.getpgid(pids["server"]), self.parent.pid)
        return pids

    def _kill_parent(self):
        try:
            os.killpg(self.parent.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.parent.wait(timeout=5)

    def assert_parent_side_alive(self, pids):
        self.assertIsNone(self.parent.poll(), "the parent (chat proxy) was killed")
        self.assertTrue(_alive(pids["sibling"]), "the parent's other child was killed")

    def test_stop_after_adoption_leaves_the_parent_alive(self):
        entry = make_entry("proxy-model", self.weights)
        pids = self.start_parent(entry.name)
        state = service.current()  # adopts the server from the state file
        self.assertEqual(state["pid"], pids["server"])
        adopted = Activation.objects.get(state=ActivationState.RUNNING)
        self.assertEqual(adopted.user_name, "(adopted)")

        stopped = service.stop(ACTOR)

        self.assertEqual(stopped.state, ActivationState.STOPPED)
        self.assert_parent_side_alive(pids)
        for pid in [pids["server"], *pids["workers"]]:
            self.assertTrue(
                wait_until(lambda pid=pid: not _alive(pid)), f"{pid} still runs"
            )
        self.assertFalse(self.state_path.exists())

    def test_replacing_an_adopted_server_then_stopping_ours(self):
        theirs = make_entry("their-model", self.weights)
        ours = make_entry("our-model", self.weights)
        pids = self.start_parent(theirs.name)
        service.current()
        self.fake_env(workers=2)

        act = service.activate(ours, ACTOR)  # stops theirs first: server only

        self.assert_parent_side_alive(pids)
        self.assertFalse(any(_alive(p) for p in [pids["server"], *pids["workers"]]))
        self.assertEqual(act.state, ActivationState.RUNNING)
        self.assertEqual(act.pgid, act.pid)  # ours leads its own group
        self.assertTrue(wait_until(lambda: len(process.group_members(act.pgid)) == 3))

        service.stop(ACTOR)  # our own group is cleaned up fully, workers included

        self.assertEqual(process.group_members(act.pgid), [])
        self.assert_parent_side_alive(pids)

"""In-flight requests: /metrics of a real fake vLLM process, drain, and stop after
draining vs stop now (issue 13 §4)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from backends import clients
from backends.vllm import drain, process
from tests.backends.test_vllm_process import start, wait
from tests.backends.vllm_helpers import free_port, kill_fakes


@pytest.fixture(autouse=True)
def cleanup():
    yield
    kill_fakes()


@pytest.fixture
def server(tmp_path):
    cfg, spec, sp = start(tmp_path, {"FAKE_VLLM_COMPLETION_DELAY": "1.5"})
    wait(cfg, spec, sp)
    sp.url = cfg.base_url(spec.port)
    sp.served = spec.served_model_id
    yield sp
    process.stop_group(sp.identity, grace=1.0, popen=sp.popen)


def post(url: str, path: str, body: dict, timeout: float = 10.0):
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read())


def in_background(fn):
    result = {}

    def run():
        try:
            result["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def completion(url):
    return post(url, "/v1/completions", {"model": "m1", "prompt": "hi"})


def test_metrics_count_real_and_staged_requests(server):
    assert drain.in_flight(server.url).describe() == "idle"
    thread, _ = in_background(lambda: completion(server.url))
    _until_busy(server.url)
    post(server.url, "/_control", {"waiting": 2})
    reading = drain.in_flight(server.url, model_name=server.served)
    assert (reading.running, reading.waiting) == (1, 2)
    assert reading.describe() == "1 request running, 2 waiting"
    other = drain.in_flight(server.url, model_name="someone-else")
    assert other.known and not other.busy  # the gauges exist, none for that model
    thread.join()


def test_drain_waits_until_the_request_finishes(server):
    thread, result = in_background(lambda: completion(server.url))
    _until_busy(server.url)
    res = drain.drain(server.url, timeout=5.0, interval=0.1)
    assert res.idle is True and 0.3 < res.waited_s < 3.0, res
    assert res.message.startswith("Idle after")
    thread.join(timeout=1.0)  # idle means the request has been answered
    assert result["value"][0] == 200


def test_drain_gives_up_at_the_deadline_and_says_how_busy(server):
    post(server.url, "/_control", {"running": 3, "waiting": 1})
    ticks = []
    t0 = time.monotonic()
    res = drain.drain(
        server.url, timeout=1.0, interval=0.2, on_tick=lambda e, r: ticks.append(e)
    )
    elapsed = time.monotonic() - t0
    assert res.idle is False and not res.cancelled
    assert res.message == "Still busy after 1s: 3 requests running, 1 waiting."
    assert 1.0 <= elapsed < 2.5 and len(ticks) >= 2


def test_drain_can_be_cut_short_and_staged_counts_clear(server):
    post(server.url, "/_control", {"running": 1, "idle_after": 0.6})
    res = drain.drain(server.url, timeout=5.0, interval=0.1, cancelled=lambda: True)
    assert res.cancelled and res.idle is False
    res = drain.drain(server.url, timeout=5.0, interval=0.1)
    assert res.idle is True


def test_unreadable_metrics_are_unknown_not_idle():
    port = free_port()
    res = drain.drain(f"http://127.0.0.1:{port}", timeout=5.0)
    assert res.idle is None and res.waited_s < 1.0
    assert "cannot read /metrics: connection refused" in res.message
    bad = clients.parse_in_flight("vllm:num_requests_running{ 1\n")
    assert not bad.known and "malformed /metrics text" in bad.error
    none = clients.parse_in_flight("# TYPE other gauge\nother 1\n")
    assert (
        none.error
        == "/metrics has no vllm:num_requests_running, vllm:num_requests_waiting"
    )


def test_stop_after_draining_lets_the_request_finish(server):
    thread, result = in_background(lambda: completion(server.url))
    _until_busy(server.url)
    assert drain.drain(server.url, timeout=5.0, interval=0.1).idle is True
    process.stop_group(server.identity, grace=1.0, popen=server.popen)
    thread.join()
    assert result["value"][0] == 200  # the client got its answer


def test_stop_now_cuts_the_request_off(server):
    thread, result = in_background(lambda: completion(server.url))
    _until_busy(server.url)
    process.stop_group(server.identity, grace=1.0, popen=server.popen)
    thread.join()
    assert isinstance(
        result.get("error"), (urllib.error.URLError, ConnectionError, OSError)
    )


def _until_busy(url: str, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not drain.in_flight(url).busy:
        assert time.monotonic() < deadline, "the request never showed as running"
        time.sleep(0.02)

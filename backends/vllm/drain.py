"""Wait for a vLLM server's in-flight requests before stopping or replacing it.

``in_flight(act_or_url)`` reads ``/metrics`` once (what the Stop dialog shows:
"2 requests running, 1 waiting"). ``drain(...)`` polls until the server is idle,
the deadline passes, or the caller gives up ("stop now"), and says which. A
server whose metrics cannot be read is reported as such ("unknown"): the caller
decides (the CLI's ``--force``, the dialog's "stop now"); drain never guesses.
No Django; HTTP goes through ``backends.clients``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from backends import clients

DEFAULT_INTERVAL = 0.5


@dataclass
class DrainResult:
    idle: bool | None  # None: unknown (metrics unreadable)
    waited_s: float
    last: clients.InFlight
    message: str
    cancelled: bool = False


def in_flight(
    base_url: str, *, model_name: str | None = None, timeout: float = 1.0
) -> clients.InFlight:
    """One reading of the server's running/waiting requests."""
    return clients.vllm_in_flight(base_url, model_name=model_name, timeout=timeout)


def drain(
    base_url: str,
    *,
    timeout: float,
    model_name: str | None = None,
    interval: float = DEFAULT_INTERVAL,
    cancelled: Callable[[], bool] | None = None,
    on_tick: Callable[[float, clients.InFlight], None] | None = None,
    read: Callable[[float], clients.InFlight] | None = None,
) -> DrainResult:
    """Poll ``/metrics`` every ``interval`` s until idle, for at most ``timeout`` s.

    Returns at once when the server is idle or its metrics cannot be read (a
    server that cannot say is not waited for blindly). ``cancelled()`` is asked
    between polls (the operator chose "stop now"); ``on_tick(elapsed, reading)``
    reports progress (job progress, CLI output). The deadline is monotonic and
    each request is capped by what is left of it.
    """
    read = read or (
        lambda t: clients.vllm_in_flight(base_url, model_name=model_name, timeout=t)
    )
    start = time.monotonic()
    deadline = start + max(timeout, 0.0)
    while True:
        remaining = deadline - time.monotonic()
        reading = read(min(2.0, max(remaining, 0.2)))
        waited = time.monotonic() - start
        if not reading.known:
            return DrainResult(
                None,
                waited,
                reading,
                f"Cannot tell whether requests are in flight: {reading.error}.",
            )
        if not reading.busy:
            return DrainResult(True, waited, reading, f"Idle after {waited:.1f}s.")
        if on_tick is not None:
            on_tick(waited, reading)
        if cancelled is not None and cancelled():
            return DrainResult(
                False,
                waited,
                reading,
                f"Stopped waiting after {waited:.1f}s: {reading.describe()}.",
                cancelled=True,
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return DrainResult(
                False,
                waited,
                reading,
                f"Still busy after {timeout:g}s: {reading.describe()}.",
            )
        time.sleep(
            min(interval, remaining)
        )  # the last reading is taken at the deadline

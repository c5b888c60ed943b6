"""Probe every endpoint at once (one thread each), so a dead or slow server delays nobody.

The whole check takes about ``IMAGEWORKS_HEALTH_TIMEOUT`` plus :data:`CHECK_MARGIN_S`,
however many servers hang. Probing threads do HTTP only; every database write
happens in the caller's thread after the probes.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait

from .. import clients
from ..choices import BackendKind, HealthStatus
from .endpoints import Endpoint

logger = logging.getLogger(__name__)

# Extra wait on top of the probe timeout before an unanswered probe is declared offline.
CHECK_MARGIN_S = 0.5
MAX_THREADS = 32


def probe_endpoint(endpoint: Endpoint, timeout: float) -> clients.ProbeResult:
    """Probe one endpoint with the client for its kind (runs in a worker thread)."""
    if endpoint.fixed_status:
        return clients.ProbeResult(
            status=endpoint.fixed_status, error="", url=endpoint.url
        )
    if endpoint.kind == BackendKind.VLLM:
        expected = endpoint.expected[0] if endpoint.expected else None
        return clients.probe_vllm(endpoint.url, expected, timeout=timeout)
    if endpoint.kind == BackendKind.OLLAMA:
        return clients.probe_ollama(endpoint.url, timeout=timeout)
    if endpoint.kind == BackendKind.TRITON:
        return clients.probe_triton(endpoint.url, endpoint.expected, timeout=timeout)
    return clients.probe_openai_compatible(
        endpoint.url, endpoint.expected, timeout=timeout
    )


def probe_all(endpoints: list[Endpoint], timeout: float) -> list[clients.ProbeResult]:
    """Probe every endpoint concurrently; an unanswered probe is offline after timeout + margin."""
    if not endpoints:
        return []
    clients.warm_up()
    executor = ThreadPoolExecutor(
        max_workers=min(MAX_THREADS, len(endpoints)), thread_name_prefix="health"
    )
    try:
        futures = [executor.submit(probe_endpoint, ep, timeout) for ep in endpoints]
        wait(futures, timeout=timeout + CHECK_MARGIN_S)
        return [
            _outcome(endpoint, future, timeout)
            for endpoint, future in zip(endpoints, futures, strict=True)
        ]
    finally:
        # Never wait for a hung probe (e.g. a blocking DNS lookup): it ends on its own.
        executor.shutdown(wait=False, cancel_futures=True)


def _outcome(endpoint: Endpoint, future: Future, timeout: float) -> clients.ProbeResult:
    """The probe's result; a crashed probe is an error, an unfinished one offline."""
    if future.done() and not future.cancelled() and future.exception() is None:
        return future.result()
    if future.done() and future.exception() is not None:
        exc = future.exception()
        logger.error("health probe of %s crashed: %r", endpoint.key, exc, exc_info=exc)
        return clients.ProbeResult(
            status=HealthStatus.ERROR,
            url=endpoint.url,
            error=f"probe crashed: {exc!r}",
        )
    return clients.ProbeResult(
        status=HealthStatus.OFFLINE,
        url=endpoint.url,
        latency_ms=(timeout + CHECK_MARGIN_S) * 1000,
        error=f"timed out after {timeout:g}s (no answer)",
    )

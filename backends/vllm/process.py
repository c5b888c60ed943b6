"""Local vLLM process driver (psutil): spawn, identify, wait for readiness, stop.

What the original got wrong and this module does instead (reference §3.4, §5.3,
§5.4, §9):

* the child gets its own session/process group and its own log file per run, and
  an environment built from an allow-list, never the caller's whole environment;
* before spawning, the port is tested and the holder named (F1, F2);
* a process is "ours" only if pid, create_time and a hash of its command line all
  match, so a reused pid never counts and a process spawned by another web
  process, worker or CLI run is still recognised (F3, F10);
* readiness polls the child's exit status between requests, so an early exit is
  reported within about a second with its exit code and the log tail (F4);
* stop SIGTERMs, waits a grace period, SIGKILLs and confirms everything is gone
  (F11). It signals a whole process group only when that group is ours: we
  launched the server in a new session (``ProcessIdentity.owns_group``), or,
  where that was not recorded, the group is still the server's own session.
  Otherwise (a server adopted from a tool that started it inside its *own*
  group, like the original chat proxy) only the server pid and its descendants
  are signalled, so the tool that started it survives (issue 13 §1).

No Django imports; HTTP goes through ``backends.clients``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil

from .command import safe_name

LOG_TAIL_BYTES = 16 * 1024
#: Hint keywords (the original's five plus R8's additions), most specific first.
HINT_KEYWORDS = (
    "Address already in use",
    "OutOfMemoryError",
    "No available memory",
    "free memory",
    "CUDA",
    "OSError",
    "ValueError",
    "RuntimeError",
    "Error",
    "Traceback",
)


class PortInUse(Exception):
    """The launch port is held by another process (message names the holder)."""

    def __init__(self, message: str, pids: Sequence[int] = ()):
        super().__init__(message)
        self.pids = list(pids)


class StartFailed(Exception):
    """The server did not become ready: exited early, timed out, or was cancelled."""

    def __init__(
        self, message: str, *, exit_code: int | None = None, log_tail: str = ""
    ):
        super().__init__(message)
        self.exit_code = exit_code
        self.log_tail = log_tail


# --- identity -----------------------------------------------------------------


def cmdline_hash(cmdline: Sequence[str]) -> str:
    return hashlib.sha256(
        "\0".join(cmdline).encode("utf-8", "surrogateescape")
    ).hexdigest()


@dataclass(frozen=True)
class ProcessIdentity:
    """Who a process is, robust to pid reuse and restarts of the site (R2)."""

    pid: int
    pgid: int
    create_time: float
    cmdline_hash: str
    #: True: we launched it in a new session, so its process group is ours to
    #: signal. False: someone else started it (adopted): never signal its group.
    #: None: not recorded (older rows): decided by looking, see ``owned_group``.
    owns_group: bool | None = None

    @classmethod
    def of(cls, pid: int, *, owns_group: bool | None = False) -> ProcessIdentity | None:
        """Read the identity of a running process, or None if it is gone.

        ``owns_group`` defaults to False: a process we merely found (adoption) did
        not get its group from us. ``spawn`` passes True.
        """
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    return None
                create_time = proc.create_time()
                cmdline = proc.cmdline()
            pgid = os.getpgid(pid)
        except (psutil.Error, ProcessLookupError, PermissionError):
            return None
        return cls(
            pid=pid,
            pgid=pgid,
            create_time=create_time,
            cmdline_hash=cmdline_hash(cmdline),
            owns_group=owns_group,
        )

    def is_alive(self) -> bool:
        """The same process (pid + create_time + command line) is still running."""
        current = ProcessIdentity.of(self.pid)
        if current is None:
            return False
        # create_time is a float rounded from clock ticks: compare with tolerance.
        # A reused pid has a later create_time, so this alone rejects pid reuse.
        if abs(current.create_time - self.create_time) >= 0.05:
            return False
        if current.cmdline_hash == self.cmdline_hash:
            return True
        # A server may retitle itself (setproctitle); it is still ours if it is
        # still the leader of the process group we created for it.
        return current.pgid == self.pgid == self.pid

    def group_members(self) -> list[psutil.Process]:
        """Live (non-zombie) processes in this identity's process group."""
        return group_members(self.pgid)

    def same_process(self, proc: psutil.Process) -> bool:
        """``proc`` is this identity's process (not a later one with a reused pid)."""
        try:
            return (
                proc.pid == self.pid
                and abs(proc.create_time() - self.create_time) < 0.05
            )
        except psutil.Error:
            return False


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return members


def describe(pid: int) -> str:
    """``PID 123 (python -m vllm ...)`` for messages."""
    try:
        cmd = " ".join(psutil.Process(pid).cmdline()) or psutil.Process(pid).name()
    except psutil.Error:
        cmd = "unknown command"
    if len(cmd) > 160:
        cmd = cmd[:157] + "..."
    return f"PID {pid} ({cmd})"


# --- port pre-check -------------------------------------------------------------


def listeners(port: int) -> list[int]:
    """PIDs with a listening TCP socket on ``port`` (any address)."""
    pids: set[int] = set()
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        conns = []
    for conn in conns:
        if (
            conn.status == psutil.CONN_LISTEN
            and conn.laddr
            and conn.laddr.port == port
            and conn.pid
        ):
            pids.add(conn.pid)
    return sorted(pids)


def port_is_free(host: str, port: int) -> bool:
    """A bind test on host:port (SO_REUSEADDR, like uvicorn: TIME_WAIT does not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def check_port(host: str, port: int, *, allowed_pids: Sequence[int] = ()) -> None:
    """Refuse with ``PortInUse("port N is in use by PID X (command)")`` if taken.

    ``allowed_pids`` are holders we are about to stop (the current activation's
    process group): the port counts as free-able then.
    """
    holders = listeners(port)
    if port_is_free(host, port) and not holders:
        return
    foreign = [p for p in holders if p not in set(allowed_pids)]
    if holders and not foreign:
        return
    if foreign:
        who = ", ".join(describe(p) for p in foreign)
        raise PortInUse(f"port {port} is in use by {who}", foreign)
    raise PortInUse(
        f"port {port} is in use by another process (its owner is not visible to this user)"
    )


# --- spawn ----------------------------------------------------------------------


def build_env(
    allowlist: Sequence[str],
    environ: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The child's environment: only allow-listed variables (exact names, or a ``PREFIX*``)."""
    environ = os.environ if environ is None else environ
    env: dict[str, str] = {}
    for name in allowlist:
        if name.endswith("*"):
            prefix = name[:-1]
            env.update({k: v for k, v in environ.items() if k.startswith(prefix)})
        elif name in environ:
            env[name] = environ[name]
    # The original sets this; vLLM workers misbehave with fork in a threaded parent.
    env.setdefault("VLLM_WORKER_MULTIPROC_START_METHOD", "forkserver")
    env.update(extra or {})
    return env


def new_log_path(
    log_dir: str | os.PathLike, logical_name: str, now: datetime | None = None
) -> Path:
    """``<log_dir>/vllm/<safe-name>-<timestamp>.log``: one file per run (R8)."""
    now = now or datetime.now()
    stamp = now.strftime("%Y%m%d-%H%M%S-%f")
    return Path(log_dir) / "vllm" / f"{safe_name(logical_name)}-{stamp}.log"


@dataclass
class Spawned:
    popen: subprocess.Popen
    identity: ProcessIdentity
    log_path: Path
    started_at: float  # epoch seconds, for the state file


def spawn(
    argv: Sequence[str],
    *,
    log_path: str | os.PathLike,
    env: Mapping[str, str],
    cwd: str | None = None,
) -> Spawned:
    """Start ``argv`` in a new session with stdout+stderr to its own log file."""
    if isinstance(argv, str):  # defensive: argv lists only, never a shell string
        raise TypeError("argv must be a list, not a string")
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd or None,
            start_new_session=True,
            close_fds=True,
        )
    started_at = time.time()
    identity = _settled_identity(popen, list(argv))
    if identity is None:  # exited already; keep a usable identity for messages
        identity = ProcessIdentity(
            popen.pid, popen.pid, 0.0, cmdline_hash(list(argv)), owns_group=True
        )
    return Spawned(
        popen=popen, identity=identity, log_path=log_path, started_at=started_at
    )


def _settled_identity(
    popen: subprocess.Popen, argv: list[str], timeout: float = 2.0
) -> ProcessIdentity | None:
    """The child's identity once its exec'd command line is visible.

    Popen returns when exec has begun, but /proc/<pid>/cmdline is only filled in a
    moment later; hashing it too early would record an empty command line. The
    last argument survives shebang/wrapper rewriting, so wait for it to appear.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            cmdline = psutil.Process(popen.pid).cmdline()
        except psutil.Error:
            cmdline = []
        if (cmdline and cmdline[-1] == argv[-1]) or time.monotonic() >= deadline:
            # start_new_session=True: the child leads a new session and group.
            return ProcessIdentity.of(popen.pid, owns_group=True)
        if popen.poll() is not None:
            return None
        time.sleep(0.005)


# --- readiness ------------------------------------------------------------------


def exit_status(
    popen: subprocess.Popen | None, identity: ProcessIdentity
) -> tuple[bool, int | None]:
    """(exited, exit code). With a Popen we get the code; for adopted processes only liveness."""
    if popen is not None:
        code = popen.poll()
        return (code is not None, code)
    return (not identity.is_alive(), None)


def wait_ready(
    check: Callable[[float], object],
    *,
    timeout: float,
    exited: Callable[[], tuple[bool, int | None]],
    log_path: str | os.PathLike | None = None,
    cancelled: Callable[[], str | None] | None = None,
    on_tick: Callable[[float, str], None] | None = None,
    request_timeout: float = 1.0,
    interval: float = 0.05,
    max_interval: float = 0.1,
) -> object:
    """Poll ``check`` until ready, watching the child's exit at the same time.

    Polls every 0.05 s, backing off to 0.1 s: readiness is noticed within
    ~50 ms on average (a ``/health`` + ``/v1/models`` pair costs a few ms; at
    0.2 s the wait alone added ~0.1 s to every activation, issue 13 §5).

    ``check(timeout)`` returns an object with ``.ready`` and ``.reason`` (see
    ``clients.vllm_ready``). ``exited()`` is asked between requests; an exit is
    reported at once with the exit code and log tail. The deadline is monotonic,
    and each request is capped by what is left of it (the original's 120 s
    per-request timeout could overrun its own deadline).
    """
    start = time.monotonic()
    deadline = start + timeout
    last_reason = "no answer yet"
    sleep = interval
    while True:
        done, code = exited()
        if done:
            tail = log_tail(log_path) if log_path else ""
            hint = failure_hint(tail)
            what = f"exited early (code {code})" if code is not None else "exited early"
            msg = f"vLLM {what} after {time.monotonic() - start:.1f}s"
            raise StartFailed(
                msg + (f": {hint}" if hint else ""), exit_code=code, log_tail=tail
            )
        if cancelled is not None:
            reason = cancelled()
            if reason:
                raise StartFailed(reason)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            tail = log_tail(log_path) if log_path else ""
            hint = failure_hint(tail)
            msg = f"vLLM did not become ready within {timeout:g}s (last check: {last_reason})"
            raise StartFailed(msg + (f"; log: {hint}" if hint else ""), log_tail=tail)
        result = check(min(request_timeout, max(remaining, 0.05)))
        if getattr(result, "ready", False):
            return result
        last_reason = getattr(result, "reason", "") or last_reason
        if on_tick is not None:
            on_tick(time.monotonic() - start, last_reason)
        time.sleep(min(sleep, max(deadline - time.monotonic(), 0)))
        sleep = min(sleep * 1.5, max_interval)


def log_tail(path: str | os.PathLike | None, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last ``max_bytes`` of a log file as text ("" if missing)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    if size > max_bytes:  # drop the partial first line
        text = text.split("\n", 1)[-1]
    return text


def failure_hint(tail: str) -> str | None:
    """The most telling line of a log tail (reference §5.6, with R8's keywords).

    Scans from the end for the first line containing a keyword, in keyword
    priority order; falls back to the last non-empty line.
    """
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    if not lines:
        return None
    for keyword in HINT_KEYWORDS:
        low = keyword.lower()
        for line in reversed(lines):
            if low in line.lower():
                return line[:300]
    return lines[-1][:300]


# --- stop -----------------------------------------------------------------------


@dataclass
class StopResult:
    exit_code: int | None
    killed: bool  # SIGKILL was needed
    survivors: list[int]
    #: True when the whole process group was signalled (it was ours), False when
    #: only the server and its descendants were (adopted from someone else's group).
    group_signalled: bool = False

    @property
    def clean(self) -> bool:
        return not self.survivors


def owned_group(identity: ProcessIdentity) -> int | None:
    """The process group ``stop`` may signal as a whole, or None.

    Never a group we did not create:

    * ``owns_group`` False (adopted) -> None: only the server and its descendants.
    * the recorded group is not led by the server itself (``pgid != pid``: the
      server was started inside its parent's group) -> None, whatever was recorded.
    * the group's leader pid now belongs to a different process -> None: a pgid is
      never reused while its group exists, so our group is gone and that is a
      stranger's.
    * ``owns_group`` None (not recorded): the group counts as ours only if it is
      still the server's own session (every member's session id is the server's
      pid). Only the server's descendants can be in a session it leads, so such a
      group holds nothing of anyone else's.
    """
    pgid = identity.pgid
    if identity.owns_group is False or not pgid or pgid != identity.pid:
        return None
    try:
        leader = psutil.Process(pgid)
    except psutil.NoSuchProcess:
        leader = None
    except psutil.Error:
        return None
    if leader is not None and not identity.same_process(leader):
        return None
    if identity.owns_group:
        return pgid
    for proc in group_members(pgid):
        try:
            if os.getsid(proc.pid) != pgid:
                return None
        except (ProcessLookupError, PermissionError):
            continue
    return pgid


def server_processes(identity: ProcessIdentity) -> list[psutil.Process]:
    """The server (if it is still the process we know) and all its descendants.

    Also what the port check may treat as "our own server" and what the GPU
    memory measurement sums over.
    """
    try:
        proc = psutil.Process(identity.pid)
    except psutil.Error:
        return []
    if not identity.same_process(proc):
        return []
    try:
        children = proc.children(recursive=True)
    except psutil.Error:
        children = []
    return [p for p in [proc, *children] if _running(p)]


def stop_group(
    identity: ProcessIdentity,
    *,
    grace: float,
    popen: subprocess.Popen | None = None,
    kill_wait: float = 5.0,
) -> StopResult:
    """SIGTERM, wait ``grace``, SIGKILL, then confirm everything is gone.

    What is signalled: the server and every descendant (snapshotted before the
    first signal, so workers orphaned by the server's exit are still stopped),
    plus the whole process group when ``owned_group`` says it is ours. A group we
    did not create is never signalled, so a tool that launched the server inside
    its own group (the original chat proxy) survives the stop.
    """
    targets = _Targets(identity, popen)
    if not targets.alive():
        return StopResult(_reap(popen), killed=False, survivors=[])
    targets.signal(signal.SIGTERM)
    alive = targets.wait_gone(time.monotonic() + max(grace, 0.0))
    killed = False
    if alive:
        killed = True
        targets.signal(signal.SIGKILL)
        alive = targets.wait_gone(time.monotonic() + kill_wait)
    return StopResult(
        _reap(popen),
        killed=killed,
        survivors=[p.pid for p in alive],
        group_signalled=targets.group is not None,
    )


class _Targets:
    """The processes one stop is about, re-read between signals."""

    def __init__(self, identity: ProcessIdentity, popen: subprocess.Popen | None):
        self.identity = identity
        self.popen = popen
        self.group = owned_group(identity)
        self.known: dict[int, psutil.Process] = {}
        self._refresh()

    def _refresh(self) -> None:
        # Descendants can appear during the grace period (a worker restarting).
        for proc in server_processes(self.identity):
            self.known.setdefault(proc.pid, proc)
        if self.group is not None:
            for proc in group_members(self.group):
                self.known.setdefault(proc.pid, proc)

    def alive(self) -> list[psutil.Process]:
        _reap(self.popen)
        self._refresh()
        return [p for p in self.known.values() if _running(p)]

    def signal(self, sig: int) -> None:
        if self.group is not None:
            try:
                os.killpg(self.group, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in self.alive():
            try:
                if self.group is None or os.getpgid(proc.pid) != self.group:
                    proc.send_signal(sig)  # psutil refuses a reused pid
            except (psutil.Error, ProcessLookupError, PermissionError):
                continue

    def wait_gone(self, deadline: float) -> list[psutil.Process]:
        while True:
            alive = self.alive()
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.05)


def _running(proc: psutil.Process) -> bool:
    """Still running and still the same process (a zombie counts as gone)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reap(popen: subprocess.Popen | None) -> int | None:
    # Our own child stays a zombie until waited for; reaping also gives the exit code.
    if popen is None:
        return None
    return popen.poll()

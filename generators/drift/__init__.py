"""Drift: what is running versus what the profile renders, across every live system.

`detect(bundle, endpoints)` compares each live system it is given with the Bundle that `render` builds
(the same settings, rule file and Kubernetes objects: no second copy of any tuning logic) and returns a
DriftReport. One module per target (postgres, pgbouncer, redis, prometheus, kubernetes, pulumi); report
holds the result types and the text/JSON formats. Drift only reads: read-only transactions, SHOW and
CONFIG GET, HTTP GETs, and a Pulumi preview.

Targets are checked concurrently; one that cannot be reached or read is reported as an error and the
others are still checked.

Drift is bounded whatever the live side does: each target is read in a forked child process under an
address-space limit (TARGET_MEMORY_BYTES: an endless answer ends the child, not the machine), and the whole
run has one deadline (`timeout_s`, by default DEFAULT_TIMEOUT_PER_TARGET_S for each target): a target that has
not answered by then (a server that sends one byte a second) is killed with its process group and reported
as an error. Every credential of every endpoint (URL userinfo, `?password=` and other secret query values,
libpq `password=`/`sslpassword=`) is scrubbed from every string of the report.
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle import Bundle
from .report import DriftReport, TargetReport, failed, format_json, format_report, format_text, scrubbed, secrets_in

__all__ = ["DriftReport", "Endpoints", "TargetReport", "detect", "format_json", "format_report", "format_text"]


@dataclass(frozen=True)
class Endpoints:
    """The live systems to compare; None leaves a target out."""

    postgres: str | None = None  # a libpq DSN or URI
    pgbouncer: str | None = None  # a DSN of PgBouncer's admin console (dbname=pgbouncer)
    redis: str | None = None  # redis://[user:password@]host:port/db
    prometheus: str | None = None  # http://host:9090
    kubernetes: bool = False
    kube_context: str | None = None
    kube_api: Any = None  # an already built kubernetes ApiClient (used instead of the kubeconfig)
    pulumi_stack: str | None = None
    pulumi_dir: Path | None = None  # the folder of Pulumi.yaml (default: the current folder or a parent)

    def any(self) -> bool:
        return any([self.postgres, self.pgbouncer, self.redis, self.prometheus, self.kubernetes,
                    self.kube_api is not None, self.pulumi_stack])


def _checks(bundle: Bundle, endpoints: Endpoints) -> list[tuple[str, Callable[[], TargetReport]]]:
    from . import kubernetes, pgbouncer, postgres, prometheus, pulumi, redis

    checks: list[tuple[str, Callable[[], TargetReport]]] = []
    if endpoints.postgres:
        checks.append(("postgres", lambda: postgres.check(bundle, endpoints.postgres or "")))
    if endpoints.pgbouncer:
        checks.append(("pgbouncer", lambda: pgbouncer.check(bundle, endpoints.pgbouncer or "")))
    if endpoints.redis:
        checks.append(("redis", lambda: redis.check(bundle, endpoints.redis or "")))
    if endpoints.prometheus:
        checks.append(("prometheus", lambda: prometheus.check(bundle, endpoints.prometheus or "")))
    if endpoints.kube_api is not None:
        checks.append(("kubernetes", lambda: kubernetes.check(bundle.objects, endpoints.kube_api)))
    elif endpoints.kubernetes:
        checks.append(("kubernetes", lambda: kubernetes.check_context(bundle.objects, endpoints.kube_context)))
    if endpoints.pulumi_stack:
        checks.append(("pulumi", lambda: pulumi.check(endpoints.pulumi_stack or "", endpoints.pulumi_dir)))
    return checks


DEFAULT_TIMEOUT_PER_TARGET_S = 5.0
# The Pulumi target runs the Pulumi engine (a preview against the stack's state and the cluster): its default share
# of the deadline is that of a preview, not of one server query.
DEFAULT_TIMEOUT_S = {"pulumi": 120.0}
TARGET_MEMORY_BYTES = 1024**3  # address space one target's child may add to what it inherited: its client and a bounded answer
# The Pulumi target runs the pulumi CLI (a Go program with its own threads and arenas, started by the automation
# API's gRPC threads): an address-space limit is inherited across exec and would starve it, so that child is
# bounded by the deadline and the report size only, and reads its answer from perfstack's own state backend.
UNBOUNDED_MEMORY_TARGETS = frozenset({"pulumi"})
MAX_REPORT_BYTES = 16 * 1024 * 1024  # what one child may send back


def default_timeout(endpoints: Endpoints) -> float:
    names = _names(endpoints)
    return sum(DEFAULT_TIMEOUT_S.get(name, DEFAULT_TIMEOUT_PER_TARGET_S) for name in names) or DEFAULT_TIMEOUT_PER_TARGET_S


def _names(endpoints: Endpoints) -> list[str]:
    return [name for name, given in (("postgres", endpoints.postgres), ("pgbouncer", endpoints.pgbouncer),
                                     ("redis", endpoints.redis), ("prometheus", endpoints.prometheus),
                                     ("kubernetes", endpoints.kubernetes or endpoints.kube_api is not None),
                                     ("pulumi", endpoints.pulumi_stack)) if given]


def _endpoint_text(name: str, endpoints: Endpoints) -> str:
    from .postgres import redact
    from .report import redact_url

    value = getattr(endpoints, name, None)
    if not isinstance(value, str):
        return endpoints.kube_context or "" if name == "kubernetes" else str(value or "")
    return redact(value) if name in ("postgres", "pgbouncer") else redact_url(value)


def _child(name: str, check: Callable[[], TargetReport], write_fd: int) -> None:
    """In the forked child: bound its memory, run one target, send the pickled report, exit at once."""
    status = 0
    try:
        os.setsid()  # its own process group: a kill at the deadline reaches what it started (pulumi)
        if name not in UNBOUNDED_MEMORY_TARGETS:
            limit = _address_space_in_use() + TARGET_MEMORY_BYTES
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            report = _guarded(name, check)
        except MemoryError:
            report = failed(name, name, f"the answer needed more than {TARGET_MEMORY_BYTES // 1024**2} MiB; "
                            "perfstack reads no more")
        data = pickle.dumps(report)
        if len(data) > MAX_REPORT_BYTES:
            data = pickle.dumps(failed(name, name, "the report of this target is too large"))
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view):]
    except BaseException:  # noqa: BLE001 - the child never returns into the parent's code
        status = 1
    finally:
        os._exit(status)


def _address_space_in_use() -> int:
    """What this (forked) process already maps: the limit is counted on top of it, so a parent that has loaded
    many libraries (a test runner, the Kubernetes client) does not leave its child without room for a thread."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _guarded(name: str, check: Callable[[], TargetReport]) -> TargetReport:
    try:
        return check()
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug in one target must not hide the others
        return failed(name, name, f"{type(exc).__name__}: {exc}")


def detect(bundle: Bundle, endpoints: Endpoints, timeout_s: float | None = None) -> DriftReport:
    """Compare every given live system with the bundle: targets in a fixed order, each in its own bounded
    child process, all within one deadline."""
    checks = _checks(bundle, endpoints)
    if not checks:
        return DriftReport(bundle.profile.environment, [])
    budget = default_timeout(endpoints) if timeout_s is None else timeout_s
    deadline = time.monotonic() + budget
    secrets = sorted({s for name in _names(endpoints) if isinstance(value := getattr(endpoints, name, None), str)
                      for s in secrets_in(value)}, key=len, reverse=True)
    running: list[tuple[str, int, int]] = []  # name, pid, read end of its pipe
    for name, check in checks:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(name, check, write_fd)
        os.close(write_fd)
        running.append((name, pid, read_fd))
    reports = [_collect(name, pid, fd, deadline, budget, _endpoint_text(name, endpoints))
               for name, pid, fd in running]
    return DriftReport(bundle.profile.environment, [scrubbed(r, secrets) for r in reports])


def _collect(name: str, pid: int, fd: int, deadline: float, budget: float, endpoint: str) -> TargetReport:
    """Read one child's report until the deadline; past it, kill the child's process group."""
    import select

    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                _kill(pid)
                return failed(name, endpoint, f"no complete answer within the deadline of {budget:g}s "
                              "(drift --timeout); the target was abandoned")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_REPORT_BYTES:
                _kill(pid)
                return failed(name, endpoint, "the report of this target is too large")
            chunks.append(chunk)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return failed(name, endpoint, f"the check ended without a report (exit status {status})")
    report = pickle.loads(b"".join(chunks))  # noqa: S301 - our own child's report, through our own pipe
    if isinstance(report, TargetReport) and report.endpoint == name:  # failed() inside the child named no endpoint
        report.endpoint = endpoint
    return report if isinstance(report, TargetReport) else failed(name, endpoint, "the check sent no report")


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass

"""Drift: what is running versus what the profile renders, across every live system.

`detect(bundle, endpoints)` compares each live system it is given with the Bundle that `render` builds
(the same settings, rule file and Kubernetes objects: no second copy of any tuning logic) and returns a
DriftReport. One module per target (postgres, pgbouncer, redis, prometheus, kubernetes, pulumi); report
holds the result types and the text/JSON formats. Drift only reads: read-only transactions, SHOW and
CONFIG GET, HTTP GETs, and a Pulumi preview.

Targets are checked concurrently; one that cannot be reached or read is reported as an error and the
others are still checked.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle import Bundle
from .report import DriftReport, TargetReport, failed, format_json, format_report, format_text

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


def _guarded(name: str, check: Callable[[], TargetReport]) -> TargetReport:
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - a bug in one target must not hide the others
        return failed(name, name, f"{type(exc).__name__}: {exc}")


def detect(bundle: Bundle, endpoints: Endpoints) -> DriftReport:
    """Compare every given live system with the bundle; targets in a fixed order, checked concurrently."""
    checks = _checks(bundle, endpoints)
    if not checks:
        return DriftReport(bundle.profile.environment, [])
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = [pool.submit(_guarded, name, check) for name, check in checks]
        reports = [future.result() for future in futures]
    return DriftReport(bundle.profile.environment, reports)

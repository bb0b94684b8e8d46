"""Advise: from how the stack really runs to a reviewed profile change.

`advise(profile, source, sources)` reads each live system it is given (read-only and bounded, as drift:
postgres.py, redis.py, prometheus.py), turns what it finds into findings, proves index advice with
HypoPG (indexes.py), and turns each finding that maps to a profile key into an edit that is proposed
only when the project's cross-component checks accept the edited profile (edits.py). report.py prints
text, a Markdown PR description or JSON, and the SQL for review; perfstack never runs that SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..loader import Source
from ..profile import Profile
from .model import Advice, Edit, Finding, IndexAdvice, TargetResult

__all__ = ["Advice", "Edit", "Finding", "IndexAdvice", "Sources", "TargetResult", "advise"]


@dataclass(frozen=True)
class Sources:
    postgres: str | None = None
    redis: str | None = None
    prometheus: str | None = None
    since: str = "24h"  # the Prometheus window; PostgreSQL and Redis counters run since their last reset

    def any(self) -> bool:
        return any([self.postgres, self.redis, self.prometheus])


def _guarded(name: str, endpoint: str, run: Callable[[], TargetResult]) -> TargetResult:
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - a bug in one target must not hide the others
        return TargetResult(name, endpoint, error=f"{type(exc).__name__}: {exc}")


def advise(profile: Profile, source: Source, sources: Sources, profile_file: str = "") -> Advice:
    from . import edits, postgres, prometheus, redis

    runs: list[tuple[str, str, Callable[[], TargetResult]]] = []
    if sources.postgres:
        runs.append(("postgres", postgres.redact(sources.postgres),
                     lambda: postgres.check(profile, sources.postgres or "")))
    if sources.redis:
        runs.append(("redis", redis.redact(sources.redis), lambda: redis.check(profile, sources.redis or "")))
    if sources.prometheus:
        runs.append(("prometheus", prometheus.redact(sources.prometheus),
                     lambda: prometheus.check(profile, sources.prometheus or "", sources.since)))
    targets: list[TargetResult] = []
    if runs:
        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            futures = [pool.submit(_guarded, *run) for run in runs]
            targets = [future.result() for future in futures]
    advice = Advice(profile.environment, profile_file, targets)
    advice.edits, advice.checked_warnings = edits.validate(advice.findings, source, profile.environment)
    return advice

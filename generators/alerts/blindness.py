"""Blindness alerts: the alerts that fire when the others cannot (scrape.targets, the series they read).

For every scrape target (generators/scrape.py):
- `<Component>ScrapeFailing`: `up{job} == 0`, Prometheus reaches the target but the scrape fails (the
  exporter crashed, its port closed);
- `<Component>TargetMissing`: `absent(up{job})`, Prometheus has no target at all (no pod, the monitor not
  selected by the release, a relabelling gone wrong);
and for every series the component's alerts read, `<Component>SeriesAbsent_<metric>`: the target is
scraped (`up == 1`) and its exporter reaches its server, yet the series is missing (an exporter version
that renamed it, a disabled collector, a custom query that failed). Series an exporter creates only once
the event happened (metrics.APPEAR_ON_EVENT) are left out: their absence is health. A target that may
have no pods (a fleet scaled to zero) gets its `up == 0` alert only.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .. import metrics, scrape
from ..bundle import Parts
from ..profile import Profile
from .base import Alert, Proof, ceil_to, gauge_values, horizon, sample_count, selector, series_of

SCRAPE_FAILING_FOR_MS = 2 * 60_000
TARGET_MISSING_FOR_MS = 5 * 60_000
SERIES_ABSENT_FOR_MS = 10 * 60_000  # longer than a scrape or two missed and Prometheus's 5 m staleness
PREFIX = {"postgres": "Postgres", "pgbouncer": "PgBouncer", "redis": "Redis", "llm": "Llm", "workers": "Worker",
          "api": "Api"}
DECOY_NAMESPACE = "perfstack-proof-other"  # another namespace's series: a dropped selector would see them


def _absent_name(component: str, metric: str) -> str:
    return f"{PREFIX[component]}SeriesAbsent_{re.sub(r'[^A-Za-z0-9_]', '_', metric)}"


def _up_proof(job_labels: dict[str, str], for_ms: int, missing: bool) -> Callable[[int], Proof]:
    """ScrapeFailing (missing False): up 0 fires, up 1 does not; another job's up 0 never matters.
    TargetMissing (missing True): only other jobs' and namespaces' targets fire it; its own up does not."""
    def build(interval_ms: int) -> Proof:
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, 0))
        own = series_of("up", {**job_labels, "instance": "10.0.0.1:9"})
        other_job = series_of("up", {**job_labels, "job": "another-job", "instance": "10.0.0.2:9"})
        other_ns = series_of("up", {**job_labels, "namespace": DECOY_NAMESPACE, "instance": "10.0.0.3:9"})
        if missing:
            decoys = {other_job: gauge_values(1, n), other_ns: gauge_values(1, n)}
            return Proof(decoys, {own: gauge_values(1, n), **decoys}, 0, job_labels)
        labels = {**job_labels, "instance": "10.0.0.1:9"}
        decoys = {other_job: gauge_values(0, n), other_ns: gauge_values(0, n)}
        return Proof({own: gauge_values(0, n), **decoys}, {own: gauge_values(1, n), **decoys}, 0, labels)
    return build


def _series_proof(ns: dict[str, str], job: str, metric: str, server_up: str | None,
                  for_ms: int) -> Callable[[int], Proof]:
    """The target up (and its server reachable), the metric missing here but present in another namespace:
    fires. The metric present: quiet."""
    def build(interval_ms: int) -> Proof:
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, 0))
        up = {series_of("up", {**ns, "job": job, "instance": "10.0.0.1:9"}): gauge_values(1, n)}
        if server_up is not None and server_up != metric:
            up[series_of(server_up, {**ns, "job": job, "instance": "10.0.0.1:9"})] = gauge_values(1, n)
        decoy = {series_of(metric, {"namespace": DECOY_NAMESPACE, "job": job}): gauge_values(1, n)}
        own = {series_of(metric, {**ns, "job": job, "instance": "10.0.0.1:9"}): gauge_values(1, n)}
        # Its own target down while another job's is up: the alert waits for its own target (a rule that
        # lost its job matcher would fire on the other one).
        other = {**{k: gauge_values(0, n) for k in up if k.startswith("up{")},
                 series_of("up", {**ns, "job": "another-job", "instance": "10.0.0.2:9"}): gauge_values(1, n)}
        at = ceil_to(for_ms, interval_ms)
        quiet = (("its target down, another job's up", {**other, **decoy}, (at, at + interval_ms)),)
        return Proof({**up, **decoy}, {**up, **decoy, **own}, 0, ns, quiet)
    return build


def target_alerts(profile: Profile, target: scrape.ScrapeTarget, used: set[str]) -> list[Alert]:
    ns = {"namespace": profile.namespace}
    job = {**ns, "job": target.job}
    name = PREFIX[target.component]
    up = selector("up", job)
    alerts = [
        Alert(f"{name}ScrapeFailing", f"{up} == 0", SCRAPE_FAILING_FOR_MS, "critical",
              f"Prometheus cannot scrape {target.job}: the {target.component} alerts are blind",
              f"Scrapes of {{{{ $labels.instance }}}} (job {target.job}) have failed for 2m (up = 0): every "
              f"{target.component} alert reads series this target no longer delivers.",
              0, "up is 0 while a target's scrapes fail", {"job": target.job},
              _up_proof(job, SCRAPE_FAILING_FOR_MS, missing=False)),
    ]
    if target.may_be_empty:
        return alerts
    alerts.append(Alert(
        f"{name}TargetMissing", f"absent({up})", TARGET_MISSING_FOR_MS, "critical",
        f"Prometheus has no {target.job} target: the {target.component} alerts are blind",
        f"No target of job {target.job} in namespace {{{{ $labels.namespace }}}} (0 up series) for 5m: the exporter is not "
        "running or its monitor is not selected by the Prometheus release (monitoring.release).",
        0, "absent(up) while no target of the job exists", {"job": target.job},
        _up_proof(job, TARGET_MISSING_FOR_MS, missing=True)))
    exported = scrape.exported_by(target)
    for metric in sorted(used & exported - metrics.APPEAR_ON_EVENT - {"up"}):
        expr = f"absent({selector(metric, ns)}) and on (namespace) ({up} == 1)"
        if target.server_up is not None and target.server_up != metric:
            expr += f" unless on (namespace) ({selector(target.server_up, ns)} == 0)"
        alerts.append(Alert(
            _absent_name(target.component, metric), expr, SERIES_ABSENT_FOR_MS, "warning",
            f"{metric} is missing: an alert that reads it cannot fire",
            f"{target.job} is scraped in namespace {{{{ $labels.namespace }}}} but has not exported {metric} "
            f"for 10m: the {target.component} alerts that read it are blind (renamed by an exporter version, "
            "a collector or custom query disabled or failing).",
            0, "absent() of a series an alert reads, while its target is up",
            {"job": target.job, "metric": metric},
            _series_proof(ns, target.job, metric, target.server_up, SERIES_ABSENT_FOR_MS)))
    return alerts


def blindness_alerts(profile: Profile, parts: Parts, others: list[Alert]) -> list[Alert]:
    """others: the components' alerts (their expressions name the series to watch)."""
    used = {name for alert in others for name in metrics.metric_names(alert.expr)}
    return [alert for target in scrape.targets(profile) for alert in target_alerts(profile, target, used)]


"""What Prometheus scrapes in a stack: one ScrapeTarget per component perfstack deploys, by job label.

objects/monitoring.py renders a ServiceMonitor (or PodMonitor, or Probe) for each; alerts/blindness.py writes
an `up == 0` and an `absent(up)` alert for each, and an `absent()` alert for every series the component's
alerts read. Both read this table, so a target that is scraped is a target that is watched.

Job labels: prometheus-operator names a ServiceMonitor's job after the Service; the PodMonitor of
CloudNativePG's instances relabels its job to the same name the external PostgreSQL's exporter has, so the
PostgreSQL alerts (and these) read one job whichever runs the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import metrics
from .k8s import LLM_SERVER
from .profile import Profile

POSTGRES_EXPORTER = "postgres-exporter"
PGBOUNCER_EXPORTER = "pgbouncer-exporter"
REDIS_EXPORTER = "redis-exporter"
POSTGRES_EXPORTER_PORT = 9187  # postgres_exporter's and CloudNativePG's instance metrics port
PGBOUNCER_EXPORTER_PORT = 9127
REDIS_EXPORTER_PORT = 9121
CELERY_EXPORTER = "celery-exporter"  # its Service; the ServiceMonitor relabels the job to workers.exporter_job
CELERY_EXPORTER_PORT = 9808
METRICS_PORT = "metrics"  # the container port name every exporter exposes (CloudNativePG's own name too)


@dataclass(frozen=True)
class ScrapeTarget:
    component: str  # the alert group the target's alerts belong to (postgres, pgbouncer, redis, llm)
    job: str  # the `job` label its series carry
    exporter: str  # key of metrics.KNOWN: the names this target exports
    server_up: str | None  # the exporter's "can reach its server" gauge (pg_up), None when the target is the server
    may_be_empty: bool = False  # the target can have no pods (a fleet scaled to zero): no absent() alerts


def ollama_probe_job(profile: Profile) -> str:
    return f"probe/{profile.namespace}/{LLM_SERVER}"  # prometheus-operator's own default for a Probe


def targets(profile: Profile) -> list[ScrapeTarget]:
    """Every target the stack's monitoring objects make Prometheus scrape."""
    out = [ScrapeTarget("postgres", POSTGRES_EXPORTER, "postgres_exporter", "pg_up"),
           ScrapeTarget("pgbouncer", PGBOUNCER_EXPORTER, "pgbouncer_exporter", "pgbouncer_up"),
           ScrapeTarget("redis", REDIS_EXPORTER, "redis_exporter", "redis_up")]
    if profile.llm is not None:
        if profile.llm.server == "vllm":
            out.append(ScrapeTarget("llm", LLM_SERVER, "vllm", None,
                                    may_be_empty=profile.autoscaling.llm.min_replicas == 0))
        else:  # Ollama has no /metrics: the blackbox exporter's probe is the scrape
            out.append(ScrapeTarget("llm", ollama_probe_job(profile), "blackbox_exporter", None))
    if profile.workers is not None:
        out.append(ScrapeTarget("workers", profile.workers.exporter_job, "celery_exporter", None))
    # The app itself (autoscaling.api.min_replicas is at least 1: it always has pods).
    out.append(ScrapeTarget("api", profile.app.deployment, "app", None))
    return out


def exported_by(target: ScrapeTarget) -> frozenset[str]:
    return metrics.KNOWN[target.exporter]

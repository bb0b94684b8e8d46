"""Voluntary-disruption guards for PgBouncer and Redis: PodDisruptionBudgets and pod anti-affinity.

A node drain (cluster upgrade, autoscaler scale-down) evicts pods; without a budget both PgBouncer
replicas can be evicted at once, and every client loses its pool. The budgets keep all but one PgBouncer
replica (at least one) and the one Redis pod: a drain of Redis's node waits until an operator moves it
(`kubectl delete pod`), so the cache or queue is never lost without someone deciding to. Anti-affinity
(preferred, so a one-node cluster still schedules) spreads replicas over nodes: one node's loss never takes
every PgBouncer.
"""

from __future__ import annotations

from typing import Any

from ..k8s import labels, metadata
from ..profile import Profile

HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"


def _selector(profile: Profile, component: str) -> dict[str, str]:
    return {key: value for key, value in labels(profile, component).items()
            if key in ("app.kubernetes.io/name", "app.kubernetes.io/part-of")}


def anti_affinity(profile: Profile, component: str) -> dict[str, Any]:
    """The pod spec's `affinity`: prefer nodes not already running this component."""
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {"topologyKey": HOSTNAME_TOPOLOGY,
                            "labelSelector": {"matchLabels": _selector(profile, component)}},
    }]}}


def budget(profile: Profile, component: str, min_available: int) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": metadata(profile, component, component),
            "spec": {"minAvailable": min_available, "selector": {"matchLabels": _selector(profile, component)}}}


def objects(profile: Profile) -> list[dict[str, Any]]:
    """PgBouncer keeps replicas - 1 (at least 1) through a drain; Redis keeps its one pod."""
    return [budget(profile, "pgbouncer", max(1, profile.pgbouncer.replicas - 1)), budget(profile, "redis", 1)]

"""Every Kubernetes object perfstack renders, built here from the rendered parts (no target builds objects).

One module per component: `workloads` (the namespace, PgBouncer, Redis, PostgreSQL), `llm`, `app`,
`autoscaling`, `monitoring` (PrometheusRule, Probe, dashboards), `exporters` (the exporters, ServiceMonitors
and PodMonitors). Each reads the parts the config stage
rendered (files become ConfigMaps with checksum annotations), the alert rules and the dashboards.
"""

from __future__ import annotations

from typing import Any

from .. import dashboards
from ..alerts import Rules
from ..bundle import Part, Parts
from ..profile import Profile
from . import app, autoscaling, exporters, llm, monitoring, workers, workloads


def build(profile: Profile, parts: Parts, rules: Rules, boards: Part) -> tuple[Part, list[dict[str, Any]]]:
    """(the workloads' own settings and warnings, every object in registration order)."""
    core = workloads.render(profile, parts)
    objects = [*llm.objects(profile, parts.llm), *app.objects(profile, parts.app), *autoscaling.objects(profile, parts.llm),
               *workers.objects(profile, parts.workers),
               *monitoring.objects(profile, rules, dashboards.boards(profile, boards)), *exporters.objects(profile),
               *core.objects]
    return core, objects

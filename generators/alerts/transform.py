"""The one transform over the finished list (kubernetes-mixin's add-runbook-links), and the rule groups."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .. import units
from ..profile import Profile
from .base import DEFAULT_EVALUATION_MS, Alert


def runbook_url(profile: Profile, alertname: str) -> str:
    return f"{profile.kubernetes.runbook_url}#{alertname.lower()}"


def shared(profile: Profile, component: str, alert: Alert) -> Alert:
    """What every alert carries, applied once (kubernetes-mixin's add-runbook-links): severity, environment
    and component labels, the runbook link, and the profile's `for` scaling."""
    for_ms = round(alert.for_ms * profile.alerts.for_scale)
    return replace(
        alert, for_ms=for_ms,
        labels={**alert.labels, "severity": alert.severity, "environment": profile.environment, "component": component},
        annotations={"summary": alert.summary, "description": alert.description,
                     "runbook_url": runbook_url(profile, alert.name), **alert.annotations})


def group_name(component: str) -> str:
    return f"perfstack-{component}"


def evaluation_interval_ms(profile: Profile) -> int:
    return profile.alerts.evaluation_interval or DEFAULT_EVALUATION_MS


def rule(alert: Alert) -> dict[str, Any]:
    out: dict[str, Any] = {"alert": alert.name, "expr": alert.expr}
    if alert.for_ms:
        out["for"] = units.format_duration(alert.for_ms)
    out["labels"] = dict(sorted(alert.labels.items()))
    out["annotations"] = dict(sorted(alert.annotations.items()))
    return out


def groups(profile: Profile, rules: dict[str, list[Alert]]) -> list[dict[str, Any]]:
    out = []
    for component, found in rules.items():
        group: dict[str, Any] = {"name": group_name(component)}
        if profile.alerts.evaluation_interval:
            group["interval"] = units.format_duration(profile.alerts.evaluation_interval)
        records = {name: expr for alert in found for name, expr in alert.records}  # first, in reading order
        group["rules"] = ([{"record": name, "expr": expr} for name, expr in records.items()]
                          + [rule(alert) for alert in found])
        out.append(group)
    return out

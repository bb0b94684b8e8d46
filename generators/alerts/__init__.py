"""Prometheus alert rules whose thresholds are the rendered values, and the promtool tests that prove them.

Laid out the kubernetes-mixin way: one module per component (postgres, pgbouncer, redis, llm, api)
returns its alerts from the profile and the config parts (`parts.postgres.value("max_connections")`,
whatever set it: a rule, a profile key or a `postgres.settings` override); `transform.shared`, applied
once to the finished list, adds what every alert carries (environment and component labels, the runbook
link, the `for` scaling); `promtool` turns each alert's proof into promtool unit tests.

Metric names: generators/metrics.py (the exporters' names and the application's own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import paths, units
from ..bundle import Part, Parts, Setting
from ..k8s import dump_yaml
from ..profile import Profile
from .api import api_alerts
from .base import Alert, num
from .blindness import blindness_alerts
from .burn import burn_alerts
from .llm import llm_alerts
from .pgbouncer import pgbouncer_alerts
from .postgres import postgres_alerts
from .promtool import tests
from .redis import redis_alerts
from .transform import groups, shared
from .workers import worker_alerts

TARGET = "alerts"
RULES_FILE = paths.ALERT_RULES
TESTS_FILE = paths.ALERT_TESTS

Rules = dict[str, list[Alert]]  # component (rule group) -> its alerts, shared labels applied

# One entry per component, by reference: the rule group's name and the function that builds its alerts.
COMPONENTS: list[tuple[str, Callable[[Profile, Parts], list[Alert]]]] = [
    ("postgres", postgres_alerts), ("pgbouncer", pgbouncer_alerts), ("redis", redis_alerts),
    ("llm", llm_alerts), ("api", api_alerts), ("slo", burn_alerts), ("workers", worker_alerts),
]


def _blindness(profile: Profile, parts: Parts) -> list[Alert]:
    """The blindness alerts watch the scrape targets and every series the other components' alerts read."""
    others = [alert for _, alerts_of in COMPONENTS if alerts_of is not _blindness
              for alert in alerts_of(profile, parts) if alert.possible]
    return blindness_alerts(profile, parts, others)


COMPONENTS.append(("blindness", _blindness))


def build(profile: Profile, parts: Parts) -> Rules:
    """Every alert that can fire, by component, with the shared labels applied."""
    out: Rules = {}
    for component, alerts_of in COMPONENTS:
        found = [shared(profile, component, alert) for alert in alerts_of(profile, parts) if alert.possible]
        if found:
            out[component] = found
    return out


def to_yaml(data: Any) -> str:
    return dump_yaml(data, sort_keys=False)  # alert, expr, for, labels: in reading order


def settings(rules: Rules) -> list[Setting]:
    return [Setting(TARGET, alert.name, alert.threshold, num(alert.threshold), alert.rule,
                    {**alert.inputs, "for": units.format_duration(alert.for_ms), "severity": alert.severity})
            for found in rules.values() for alert in found]


def render(profile: Profile, rules: Rules) -> Part:
    header = f"# Rendered by perfstack from profile '{profile.environment}'. Do not edit: change the profile.\n"
    return Part(settings=settings(rules),
                files={RULES_FILE: header + to_yaml({"groups": groups(profile, rules)}),
                       TESTS_FILE: header + to_yaml(tests(profile, rules))})

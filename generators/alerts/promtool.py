"""The promtool proof generator: each alert's proof as promtool unit tests (prometheus/alerts_test.yaml).

For each alert: not firing one evaluation before the `for` window ends, firing at its end, and the series
under the threshold never firing.
"""

from __future__ import annotations

import re
from typing import Any

from .. import units
from ..profile import Profile
from .base import Alert, ceil_to, num
from .transform import evaluation_interval_ms

_TEMPLATE = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")


def expand(template: str, labels: dict[str, str]) -> str:
    """The annotation as Prometheus expands it; perfstack's templates use {{ $labels.NAME }} only."""
    return _TEMPLATE.sub(lambda m: labels.get(m.group(1), ""), template)


def alert_tests(profile: Profile, alert: Alert) -> list[dict[str, Any]]:
    interval = evaluation_interval_ms(profile)
    proof = alert.proof(interval)
    fires_at = proof.active_ms + ceil_to(alert.for_ms, interval)
    labels = {**proof.labels, **alert.labels}
    expected = {"exp_labels": dict(sorted(labels.items())),
                "exp_annotations": {k: expand(v, labels) for k, v in sorted(alert.annotations.items())}}
    fmt = units.format_duration

    def inputs(values: dict[str, str]) -> list[dict[str, str]]:
        return [{"series": series, "values": text} for series, text in sorted(values.items())]

    checks: list[dict[str, Any]] = []
    if fires_at - interval >= 0:
        checks.append({"eval_time": fmt(fires_at - interval), "alertname": alert.name, "exp_alerts": []})
    checks.append({"eval_time": fmt(fires_at), "alertname": alert.name, "exp_alerts": [expected]})
    quiet = [{"eval_time": fmt(t), "alertname": alert.name, "exp_alerts": []}
             for t in (proof.active_ms, fires_at, fires_at + interval)]
    extra = [{"name": f"{alert.name}: {what}, never fires", "interval": fmt(interval), "input_series": inputs(values),
              "alert_rule_test": [{"eval_time": fmt(t), "alertname": alert.name, "exp_alerts": []} for t in times]}
             for what, values, times in proof.quiet]
    return [
        {"name": f"{alert.name}: past {num(alert.threshold)}, fires after its for window ({fmt(alert.for_ms)}), not before",
         "interval": fmt(interval), "input_series": inputs(proof.bad), "alert_rule_test": checks},
        {"name": f"{alert.name}: on the healthy side of {num(alert.threshold)}, never fires",
         "interval": fmt(interval), "input_series": inputs(proof.good), "alert_rule_test": quiet},
        *extra,
    ]


def tests(profile: Profile, rules: dict[str, list[Alert]]) -> dict[str, Any]:
    return {
        "rule_files": ["alerts.yaml"],
        "evaluation_interval": units.format_duration(evaluation_interval_ms(profile)),
        "tests": [test for found in rules.values() for alert in found
                  for test in alert_tests(profile, alert)],
    }

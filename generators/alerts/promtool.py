"""The promtool proof generator: each alert's proof as promtool unit tests (prometheus/alerts_test.yaml).

For each alert: not firing one evaluation before the `for` window ends, firing at its end, and the series
under the threshold never firing.
"""

from __future__ import annotations

import re
from typing import Any

from .. import units
from ..profile import Profile
from .base import Alert, ceil_to, num, series_of
from .transform import evaluation_interval_ms

_TEMPLATE = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\{([^{}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_SERIES = re.compile(r"^([A-Za-z_:][\w:]*)\{(.*)\}$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _matches(op: str, pattern: str, value: str) -> bool:
    if op == "=":
        return value == pattern
    if op == "!=":
        return value != pattern
    hit = re.fullmatch(pattern.replace("\\\\", "\\"), value) is not None
    return hit if op == "=~" else not hit


def _rejected(op: str, pattern: str) -> str:
    """A label value the matcher rejects."""
    return {"=": pattern + "-decoy", "!=": pattern, "=~": "decoy"}.get(op, pattern.replace(".*", "1"))


def decoys(alert: Alert, bad: dict[str, str], good: dict[str, str]) -> dict[str, str]:
    """Series a dropped matcher would let in: each firing series with one selected label changed to a value
    its matcher rejects (another namespace's or job's series, a template database), carrying the firing
    values. Only decoys that no selector of the rule (or of the recording rules it reads) selects are kept,
    so the rule as rendered ignores them and a mutant that drops the matcher fires on them."""
    selectors: dict[str, list[list[tuple[str, str, str]]]] = {}
    for expr in (alert.expr, *(e for _, e in alert.records)):
        for metric, body in _SELECTOR.findall(expr):
            selectors.setdefault(metric, []).append(_MATCHER.findall(body))
    out: dict[str, str] = {}
    for text, values in sorted(bad.items()):
        parsed = _SERIES.match(text)
        if not parsed or parsed.group(1) not in selectors:
            continue
        metric, labels = parsed.group(1), dict(_LABEL.findall(parsed.group(2)))
        for matchers in selectors[metric]:
            for label, op, pattern in matchers:
                changed = {**labels, label: _rejected(op, pattern)}
                if any(all(_matches(o, p, changed.get(l_, "")) for l_, o, p in m) for m in selectors[metric]):
                    continue
                series = series_of(metric, changed)
                if series not in good and series not in bad:
                    out[series] = values
    return out


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
         "interval": fmt(interval), "input_series": inputs({**proof.good, **decoys(alert, proof.bad, proof.good)}),
         "alert_rule_test": quiet},
        *extra,
    ]


def tests(profile: Profile, rules: dict[str, list[Alert]]) -> dict[str, Any]:
    return {
        "rule_files": ["alerts.yaml"],
        "evaluation_interval": units.format_duration(evaluation_interval_ms(profile)),
        "tests": [test for found in rules.values() for alert in found
                  for test in alert_tests(profile, alert)],
    }

"""The promtool proof generator: each alert's proof as promtool unit tests (prometheus/alerts_test.yaml).

For each alert: not firing one evaluation before the `for` window ends, firing at its end, and the series
under the threshold never firing. Then, built from the expression's shape for every alert it fits (not per
alert), the cases a changed rule would misjudge (scripts/mutation_check.py measures how many it catches):

- decoys: each firing series with one matched label set to a value its matcher rejects (another namespace,
  job or database), carrying the firing values; the healthy test includes them, so a dropped matcher fires;
- a second instance: under `sum by`, the firing series split over two series the aggregation adds up (the
  numerator's in halves, the others 9:1: still fires; a `max` of the parts, a ratio moved, does not); under `max by`/`min by`, a second series on the
  healthy side beside the firing one (still fires; `min` does not), and the healthy series twice (quiet; a
  `sum` of them crosses the threshold);
- at the threshold: a gauge compared strictly (`>`, `<`) held exactly at the threshold does not fire (`>=`
  would);
- a switch, for an expression with one range window W: healthy for 3W, then on the firing side; it fires
  once W (and the `for` window) passed (a window 3x longer, still half healthy, does not yet);
- one event, for `increase(...[W]) > 0`: fires while the event is inside the window, quiet once it left it
  (a shorter window forgets it too soon, a longer one too late);
- decoys pushed further: in the healthy test each decoy's numerator series ten times further to the firing
  side (a mutant that mixes them with the healthy series still fires), and decoys ten times to the healthy
  side in the firing test (a mutant that lets them into a ratio goes quiet);
- healthy in halves over two instances under `sum by`: a `max` of the numerator halves a ratio, of the
  denominator doubles it, so one of them crosses the threshold;
- for a histogram quantile, one instance fast and one as busy and slow: the sum's quantile is past the
  threshold, a `max` per bucket is the fast one;
- far on the healthy side for 3W, then just past the threshold: still quiet one step after the switch plus
  the `for` window (the window needs nearly all of it past), where a window five times shorter fires.

The burn-rate alerts (burn.py) add their own: each window at (exactly, or a hundredth under) its threshold
while the other burns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .. import units
from ..profile import Profile
from .base import LABEL as _LABEL
from .base import PROOF_EVENTS_PER_STEP, Alert, ceil_to, gauge_values, num, series_of
from .base import SERIES as _SERIES
from .base import relabel as _relabel
from .transform import evaluation_interval_ms

PROOF_MAX_STEPS = 1000  # the longest shape-built switch case, in evaluation steps (1m: every alert keeps them)
_TEMPLATE = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\{([^{}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_AGGREGATED = re.compile(r"\b(sum|max|min) by \(([^)]*)\) \((?:(?:rate|increase)\()?([A-Za-z_:][\w:]*)\{[^{}]*\}"
                         r"(?:\[\w+\])?\)?\)")
_NUMBER = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
_GAUGE = re.compile(rf"^({_NUMBER})x(\d+)$")
_COUNTER = re.compile(rf"^0\+({_NUMBER})x(\d+)$")
_STRICT = re.compile(r"^(?:(?:sum|max|min) by \([^)]*\) \()?[A-Za-z_:][\w:]*\{[^{}]*\}\)? (>|<) (" + _NUMBER + ")$")
_WINDOW = re.compile(r"\[(\d+)m\]")
_RATE = re.compile(r"^(?:sum|max) by \([^)]*\) \(rate\([A-Za-z_:][\w:]*\{[^{}]*\}\[(\d+)m\]\)\) > (" + _NUMBER + ")$")
JUST_PAST = 1.01  # a rate alert's case near its threshold: 1% past it, once the window is full
_INCREASE = re.compile(r"^(?:sum|max) by \([^)]*\) \(increase\([A-Za-z_:][\w:]*\{[^{}]*\}\[(\d+)m\]\)\) > 0$")


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


def decoys(alert: Alert, bad: dict[str, str], good: dict[str, str], firing: bool = True) -> dict[str, str]:
    """Series a dropped matcher would let in: each firing series with one selected label changed to a value
    its matcher rejects (another namespace's or job's series, a template database). `firing`: they carry
    the firing values with the first selector's series (a ratio's numerator) pushed ten times further to
    the firing side, for the healthy test: a mutant that lets them in fires, even where it mixes them with
    the healthy series. Else pushed ten times to the healthy side, for the firing test: a mutant that lets
    them into a ratio's denominator (or numerator) goes quiet. Only decoys that no selector of the rule (or
    of the recording rules it reads) selects are kept, so the rule as rendered ignores them."""
    up = _rises(alert) == firing
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
                    pushed = _scaled(values, 10 if up else 0.1) if _first_reads(alert, text) else values
                    out[series] = pushed or values
    return out


def _rises(alert: Alert) -> bool:
    """Whether more of the first selector's series (a ratio's numerator) moves the alert toward firing: a
    `>` alert, unless it reads 1 - numerator / total (the share of slow requests from the fast ones)."""
    return (" < " not in alert.expr) != _reads(alert)[0].startswith("1 - ")


def _reads(alert: Alert) -> list[str]:
    """The expressions over the raw series: the alert's own, or the recording rules it reads (each once)."""
    names = [metric for metric, _ in _SELECTOR.findall(alert.expr)]
    records = dict(alert.records)
    if records and all(name in records for name in names):
        return list(dict.fromkeys(records[name] for name in names))
    return [alert.expr]


def _aggregation(alert: Alert) -> tuple[str, str] | None:
    """('sum'|'max'|'min', a label no aggregation keeps and no matcher names) when every series the alert
    reads is aggregated away by one kind of aggregation; None otherwise."""
    exprs = _reads(alert)
    text = " ".join(exprs)
    found = _AGGREGATED.findall(text)
    if not found or len(found) != len(_SELECTOR.findall(text)) or len({k for k, _, _ in found}) != 1:
        return None
    if " on (" in text or "ignoring" in text or " or " in text:
        return None
    label = next(x for x in ("instance", "pod", "replica") if x not in text + alert.expr)
    return found[0][0], label


_STEP = re.compile(rf"^({_NUMBER})(?:([+-])({_NUMBER}))?(?:x(\d+))?$")


def _scaled(values: str, factor: float) -> str | None:
    """promtool's expanding notation ('0 5+5x9', '3x10') with every number times `factor`."""
    out = []
    for token in values.split():
        m = _STEP.match(token)
        if m is None:
            return None
        text = num(float(m.group(1)) * factor)
        if m.group(2):
            text += m.group(2) + num(float(m.group(3)) * factor)
        if m.group(4):
            text += "x" + m.group(4)
        out.append(text)
    return " ".join(out)


def _split(values: dict[str, str], label: str, share: Callable[[str], float]) -> dict[str, str] | None:
    """Each series as two (label proof-a, proof-b) carrying share(series) and the rest of its values."""
    out: dict[str, str] = {}
    for series, text in values.items():
        a, b = _scaled(text, share(series)), _scaled(text, 1 - share(series))
        if a is None or b is None:
            return None
        out[_relabel(series, label, "proof-a")], out[_relabel(series, label, "proof-b")] = a, b
    return out


def _first_reads(alert: Alert, series: str) -> bool:
    """Whether the first selector of what the alert reads (a ratio's numerator) selects the series."""
    first, parsed = _SELECTOR.search(_reads(alert)[0]), _SERIES.match(series)
    if first is None or parsed is None or parsed.group(1) != first.group(1):
        return False
    labels = dict(_LABEL.findall(parsed.group(2)))
    return all(_matches(op, pattern, labels.get(name, "")) for name, op, pattern in _MATCHER.findall(first.group(2)))


_QUANTILE = re.compile(r"^histogram_quantile\((0\.\d+), sum by \([^)]*\ble\b[^)]*\) \(rate\(.*\)\)\) > (" + _NUMBER + ")$")


def _fast_and_slow(alert: Alert, bad: dict[str, str], label: str) -> dict[str, str] | None:
    """For `histogram_quantile(q, sum by (..., le) (rate(bucket)))) > T`: one series with all its requests in
    the first bucket, one as busy with all of them in the first bucket above T. The sum's quantile lies in the
    slow bucket (over T: fires); a max per bucket is the fast series everywhere, so its quantile stays in
    the first bucket (quiet)."""
    m = _QUANTILE.match(alert.expr)
    if m is None or float(m.group(1)) <= 0.5:
        return None
    threshold = float(m.group(2))
    bounds: dict[float, str] = {}
    samples = 0
    for series, values in bad.items():
        parsed, counter = _SERIES.match(series), _COUNTER.match(values)
        if parsed is None or counter is None:
            return None
        le = dict(_LABEL.findall(parsed.group(2))).get("le")
        if le is None:
            return None
        bounds[float(le)] = series
        samples = int(counter.group(2))
    finite = sorted(b for b in bounds if b != float("inf"))
    above = [b for b in finite if b > threshold]
    if not finite or finite[0] > threshold or len(above) < 2:
        return None
    slow_from = above[0] if threshold in finite else above[1]  # the bucket (slow_from's lower bound, ...] > T
    lower = max(b for b in finite if b < slow_from)
    if lower < threshold:
        return None
    step = PROOF_EVENTS_PER_STEP
    out = {}
    for bound, series in bounds.items():
        out[_relabel(series, label, "proof-fast")] = f"0+{step}x{samples}"
        out[_relabel(series, label, "proof-slow")] = f"0+{step if bound >= slow_from else 0}x{samples}"
    return out


def _calm(alert: Alert, good: dict[str, str]) -> dict[str, str] | None:
    """The healthy series far from the threshold: a histogram with every request in its first bucket; else
    the first selector's series (a ratio's numerator, or the one gauge) at 0 where more of it fires, ten
    times as large where less of it fires."""
    if alert.expr.startswith("histogram_quantile("):
        out = {}
        for series, values in good.items():
            counter = _COUNTER.match(values)
            if counter is None or "le=" not in series:
                return None
            out[series] = f"0+{PROOF_EVENTS_PER_STEP}x{counter.group(2)}"
        return out
    rises = _rises(alert)
    calm = {}
    for series, values in good.items():
        scaled = _scaled(values, 0 if rises else 10) if _first_reads(alert, series) else values
        if scaled is None:
            return None
        calm[series] = scaled
    return calm if calm != good else None


def _twice(values: dict[str, str], label: str) -> dict[str, str]:
    return {_relabel(s, label, v): text for s, text in values.items() for v in ("proof-a", "proof-b")}


def _phase(values: str) -> tuple[float, float] | None:
    """(first value, increment per step) of a flat gauge or a steady counter."""
    if m := _GAUGE.match(values):
        return float(m.group(1)), 0.0
    if m := _COUNTER.match(values):
        return 0.0, float(m.group(1))
    return None


def _switch(good: dict[str, str], bad: dict[str, str], steps: int, after: int) -> dict[str, str] | None:
    """Each series healthy for `steps` samples, then on the firing side for `after` more (counters go on
    counting from where they were)."""
    if set(good) != set(bad):
        return None
    out = {}
    for series in good:
        g, b = _phase(good[series]), _phase(bad[series])
        if g is None or b is None:
            return None
        last = g[0] + g[1] * (steps - 1)
        start = b[0] if b[1] == 0 else last + b[1]
        out[series] = f"{num(g[0])}+{num(g[1])}x{steps - 1} {num(start)}+{num(b[1])}x{after}"
    return out


def variants(alert: Alert, bad: dict[str, str], good: dict[str, str],
             interval: int, fires_at: int, active: int) -> list[tuple[str, dict[str, str], bool, tuple[int, ...]]]:
    """(what, series, fires, eval times) of the cases built from the expression's shape (module docstring)."""
    out: list[tuple[str, dict[str, str], bool, tuple[int, ...]]] = []
    shape = _aggregation(alert)
    if shape is not None:
        kind, label = shape
        # The numerator's series halved, the rest split 9:1: the sum is the same, a max of the parts takes
        # half the numerator and most of the rest, so a ratio (or a count) moves to the healthy side.
        above = _rises(alert)

        def share(series: str) -> float:
            return 0.5 if _first_reads(alert, series) == above else 0.9
        if kind == "sum" and (split := _split(bad, label, share)) is not None:
            out.append((f"split over two {label}s the sum adds up", split, True, (fires_at,)))
        if kind == "sum" and (halves := _split(good, label, lambda _: 0.5)) is not None:
            # Healthy in halves: a max of the numerator halves the ratio, a max of the denominator doubles it
            # (at least): one of the two crosses the threshold.
            out.append((f"healthy, in halves over two {label}s", halves, False, (active, fires_at)))
        if kind in ("max", "min"):
            if set(bad) == set(good):
                beside = {**_twice(bad, label), **{_relabel(s, label, "proof-b"): t for s, t in good.items()}}
                out.append((f"beside a healthy second {label}", beside, True, (fires_at,)))
            out.append((f"healthy on two {label}s", _twice(good, label), False, (active, fires_at)))
        if kind == "sum" and (fast_slow := _fast_and_slow(alert, bad, label)) is not None:
            out.append((f"one {label} fast, one as busy and slow", fast_slow, True, (fires_at,)))
    strict = _STRICT.match(alert.expr)
    if strict and len(good) == 1 and _GAUGE.match(next(iter(good.values()))):
        series, text = next(iter(good.items()))
        samples = int(text.rsplit("x", 1)[1])
        out.append((f"exactly at {strict.group(2)}", {series: gauge_values(float(strict.group(2)), samples)},
                    False, (active, fires_at)))
    windows = set(_WINDOW.findall(alert.expr))
    window_ms = int(next(iter(windows))) * 60_000 if len(windows) == 1 else 0
    held = fires_at - active
    steps = 3 * window_ms // interval
    check = steps * interval + window_ms + held + interval
    # Like the burn-rate threshold cases, the switches are kept where they last at most PROOF_MAX_STEPS
    # evaluations: each one is a test group promtool evaluates every rule over, step by step.
    if window_ms and not alert.records and check // interval <= PROOF_MAX_STEPS:
        switched = _switch(good, bad, steps, (check - steps * interval) // interval + 2)
        if switched is not None:
            out.append((f"healthy for {units.format_duration(3 * window_ms)}, then past the threshold", switched, True,
                        (check,)))
        # A threshold at the end of its range (`> 0`, a share `< 1`): no healthy value lies farther from it,
        # so one firing sample in the window fires at once and there is nothing to dilute.
        edge = (alert.threshold <= 0 and " > " in alert.expr) or (alert.threshold >= 1 and " < " in alert.expr
                                                                    and " / " in alert.expr)
        calm = None if edge else _calm(alert, good)
        switched = _switch(calm, bad, steps, (check - steps * interval) // interval + 2) if calm else None
        if switched is not None and window_ms >= 5 * interval:
            # Far on the healthy side, then just past the threshold: the window needs (nearly) all of it on the
            # firing side, so one step past the switch (and the `for` window) it is still quiet; a window five
            # times shorter has filled by then and fires.
            early = steps * interval + held + interval
            out.append((f"far on the healthy side for {units.format_duration(3 * window_ms)}, then just past "
                        f"the threshold: not yet {units.format_duration(held + interval)} later", switched, False,
                        (early,)))
    rate = _RATE.match(alert.expr)
    if rate and float(rate.group(2)) > 0 and len(bad) == 1 and _COUNTER.match(next(iter(bad.values()))):
        # The main proof's rate sits well past the threshold (so that it holds exactly once the window is full):
        # 1% past it, the expression holds once the window has (nearly) filled, and a threshold moved up by a
        # few percent never does.
        window_ms = int(rate.group(1)) * 60_000
        check = ceil_to(window_ms, interval) + (fires_at - active) + interval
        per_step = float(rate.group(2)) * JUST_PAST * interval / 1000
        out.append((f"{num((JUST_PAST - 1) * 100)}% past the threshold, once the window is full",
                    {next(iter(bad)): f"0+{num(per_step)}x{check // interval + 1}"}, True, (check,)))
    inc = _INCREASE.match(alert.expr)
    if inc and len(bad) == 1 and _COUNTER.match(next(iter(bad.values()))):
        window_ms = int(inc.group(1)) * 60_000
        step = interval
        held = fires_at - active  # the for window, on the evaluation grid
        if held + 2 * step < window_ms:
            event = 2 * step
            n = (event + window_ms + held + 4 * step) // step
            series = next(iter(bad))
            values = f"0x{event // step - 1} 1x{n - event // step}"
            out.append((f"one event at {units.format_duration(event)}, inside the window",
                        {series: values}, True, (event + held + step,)))
            out.append((f"one event at {units.format_duration(event)}, out of the window",
                        {series: values}, False, (event + window_ms + held + 2 * step,)))
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
    firing_decoys = decoys(alert, proof.bad, proof.good, firing=False)
    if fires_at - interval >= 0:
        checks.append({"eval_time": fmt(fires_at - interval), "alertname": alert.name, "exp_alerts": []})
    checks.append({"eval_time": fmt(fires_at), "alertname": alert.name, "exp_alerts": [expected]})
    quiet = [{"eval_time": fmt(t), "alertname": alert.name, "exp_alerts": []}
             for t in (proof.active_ms, fires_at, fires_at + interval)]
    shaped = [{"name": f"{alert.name}: {what}, {'fires' if fires else 'never fires'}", "interval": fmt(interval),
               "input_series": inputs(values),
               "alert_rule_test": [{"eval_time": fmt(t), "alertname": alert.name,
                                    "exp_alerts": [expected] if fires else []} for t in times]}
              for what, values, fires, times in variants(alert, proof.bad, proof.good, interval, fires_at,
                                                          proof.active_ms)]
    extra = [{"name": f"{alert.name}: {what}, never fires", "interval": fmt(interval), "input_series": inputs(values),
              "alert_rule_test": [{"eval_time": fmt(t), "alertname": alert.name, "exp_alerts": []} for t in times]}
             for what, values, times in proof.quiet]
    return [
        {"name": f"{alert.name}: past {num(alert.threshold)}, fires after its for window ({fmt(alert.for_ms)}), not before",
         "interval": fmt(interval), "input_series": inputs({**proof.bad, **firing_decoys}), "alert_rule_test": checks},
        {"name": f"{alert.name}: on the healthy side of {num(alert.threshold)}, never fires",
         "interval": fmt(interval), "input_series": inputs({**proof.good, **decoys(alert, proof.bad, proof.good)}),
         "alert_rule_test": quiet},
        *extra,
        *shaped,
    ]


def tests(profile: Profile, rules: dict[str, list[Alert]]) -> dict[str, Any]:
    return {
        "rule_files": ["alerts.yaml"],
        "evaluation_interval": units.format_duration(evaluation_interval_ms(profile)),
        "tests": [test for found in rules.values() for alert in found
                  for test in alert_tests(profile, alert)],
    }

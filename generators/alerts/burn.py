"""Burn-rate SLO alerts (the SRE workbook's multi-window, multi-burn-rate alerts) for the API's availability
(slo.error_rate of requests may fail) and latency (5% of requests may be slower than slo.api_latency_p95)
over the SLO period slo.window.

The error budget of a period W is the share of requests that may fail in it (b). A burn rate k spends it
k times as fast as the period allows: k = the share of the budget spent x W / the window it was spent in.
Four alerts per SLO, each true only while a long window AND a short one (a twelfth of it) burn faster than
k, so an alert starts within minutes of a fast burn and stops soon after it ends:

    page    2% of the budget in 1h (k = 14.4 for 30d), short window 5m
    page    5% in 6h (6), 30m
    ticket 10% in 1d (3), 2h
    ticket 10% in 3d (1), 6h

The error ratios over each window are recording rules (perfstack:api_errors:ratio_rate<window>,
perfstack:api_slow_requests:ratio_rate<window>), each alert reads two of them. The latency SLI counts the
requests in the histogram bucket at slo.api_latency_p95 (checks.latency_slos_within_buckets makes it a
bound), so the share of slow requests is exact, not interpolated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from .. import formats, units
from ..bundle import Parts
from ..profile import Profile
from .base import (
    PROOF_EVENTS_PER_STEP,
    PROOF_MARGIN,
    Alert,
    Proof,
    le_text,
    num,
    pct,
    relabel,
    sample_count,
    selector,
    series_of,
)

HOUR = 3_600_000
LATENCY_BUDGET = 0.05  # a p95 objective: 5% of requests may be slower


@dataclass(frozen=True)
class Window:
    severity: str  # critical pages, warning opens a ticket
    budget_share: float  # of the period's error budget
    long_ms: int
    short_ms: int
    for_ms: int


WINDOWS = (Window("critical", 0.02, HOUR, 5 * 60_000, 2 * 60_000),
           Window("critical", 0.05, 6 * HOUR, 30 * 60_000, 2 * 60_000),
           Window("warning", 0.10, 24 * HOUR, 2 * HOUR, 15 * 60_000),
           Window("warning", 0.10, 72 * HOUR, 6 * HOUR, 15 * 60_000))
# Proofs whose long window holds more evaluation steps than this skip the "short burst" and "recovered"
# cases (promtool evaluates every rule at every step): at a 1m interval the 1h and 6h alerts keep them,
# the 1d and 3d ones are proved flat.
BURST_PROOF_MAX_STEPS = 400
# The threshold cases (exact_cases) last a short window and four `for` windows: at a 1m interval every alert
# keeps them (3d/6h: some 420 steps); at 1s evaluation only the 1h/5m ones do.
EXACT_PROOF_MAX_STEPS = 1000


def burn_rate(profile: Profile, window: Window) -> float:
    return window.budget_share * profile.slo.window / window.long_ms


def fmt(ms: int) -> str:
    return units.format_duration(ms)


def piecewise(segments: list[tuple[float, int]]) -> str:
    """A counter from 0 growing by `increment` per step for `steps` steps, segment after segment."""
    value, parts = 0.0, ["0"]
    for increment, steps in segments:
        if steps <= 0:
            continue
        parts.append(f"{num(value + increment)}+{num(increment)}x{steps - 1}")
        value += increment * steps
    return " ".join(parts)


def _rate(counter: list[int], t: int, steps: int, step_s: float) -> float:
    """rate(counter[steps]) at sample t as Prometheus 2.x computes it for a counter that starts at 0 on the
    evaluation grid: the increase times (extrapolated / sampled interval) / the range's seconds, where the
    extrapolated interval is the sampled one (a sample on the range's start, or a start at zero: no
    extrapolation), so the factor is 1 / the range's seconds (promql/functions.go extrapolatedRate; checked
    against promtool 2.42)."""
    return float(counter[t] - counter[max(0, t - steps)]) * (1.0 / (steps * step_s))


def _cumulative(increments: list[int]) -> list[int]:
    out = [0]
    for inc in increments:
        out.append(out[-1] + inc)
    return out


def exact_cases(counts_bad: bool, threshold: float, window: Window, step: int) -> list[tuple[str, list[int], int, int]]:
    """(what, per-step bad increments, requests per step, eval sample) of two quiet cases with one window's
    ratio at the threshold and the other above it through the whole `for` window, so a `>=`, or a threshold
    moved down, on either side fires them (while the data is younger than a window, rate() covers all of
    it: the counters start at 0):

    - the long window at the threshold while the short one burns: failures at a share x, then y, whose sum
      is exactly the threshold's share of all requests, then the threshold's share for `for`;
    - the short window at the threshold (that share for a short window + `for`) after a burn at y.

    The threshold as rendered is a decimal p/q, so the requests per step are a multiple of q and the shares
    whole numbers of requests; each ratio is recomputed with Prometheus's floating-point steps (rate, the
    sum, the ratio, `1 -` for latency) and a multiple is kept when the ratio equals the rendered threshold
    exactly. Where none does (1 - v can never equal some thresholds), the share is a hundredth under it:
    a `>=` then survives, a threshold moved down does not."""
    target = float(num(threshold))
    exact = Fraction(num(threshold))
    S = window.short_ms // step
    f = max(1, -(-window.for_ms // step))
    step_s = step / 1000
    if not 0 < exact < 1 or S <= 2 * f or S + 4 * f > EXACT_PROOF_MAX_STEPS:
        return []

    def ratio(bad: list[int], total: int, t: int, steps: int) -> float:
        counted = _cumulative(bad if counts_bad else [total - a for a in bad])
        other = _cumulative([total - a for a in bad] if counts_bad else [total] * len(bad))
        r1, r2 = _rate(counted, t, steps, step_s), _rate(other, t, steps, step_s)
        return r1 / (r1 + r2) if counts_bad else 1 - r1 / r2

    L = window.long_ms // step
    out: list[tuple[str, list[int], int, int]] = []
    for what, build in (("the long window at the threshold while the short one burns", "long"),
                        ("the short window at the threshold after a burn", "short")):
        found = None
        for share, holds in ((exact, lambda v: v == target), (exact * Fraction(99, 100), lambda v: v < target)):
            base = share.denominator * max(1, -(-PROOF_EVENTS_PER_STEP // share.denominator))
            for multiple in range(1, 48):
                total = base * multiple
                a = int(share * total)
                if total * (S + 4 * f) >= 2 ** 50:
                    break
                if build == "long":
                    n_x, n_y = 2 * f + 1, S - f
                    c = min(a // (2 * n_y), (total - a) // (2 * n_x))
                    if c < 1:
                        continue
                    bad = [a - n_y * c] * n_x + [a + n_x * c] * n_y + [a] * f
                    at, over = L, S
                else:
                    bad = [min(total, a + max(1, (total - a) // 2))] * (2 * f + 1) + [a] * (S + f)
                    at, over = S, L
                end = len(bad)
                if all(holds(ratio(bad, total, t, at)) and ratio(bad, total, t, over) > target
                       for t in range(end - f, end + 1)):
                    found = (f"{what} ({'exactly' if share == exact else 'a hundredth under it'})", bad, total, end)
                    break
            if found:
                break
        if found:
            out.append(found)
    return out


def _runs(segments: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """Adjacent segments of the same increment merged (promtool's notation stays short)."""
    out: list[tuple[float, int]] = []
    for inc, k in segments:
        if out and out[-1][0] == inc:
            out[-1] = (inc, out[-1][1] + k)
        else:
            out.append((inc, k))
    return out


def burn_proof(bad_series: str, total_series: str, counts_bad: bool, threshold: float, window: Window,
               out: dict[str, str]) -> Callable[[int], Proof]:
    """`bad_series` counts failed requests and `total_series` the others (counts_bad: 5xx and 2xx), or
    `bad_series` counts the fast requests (the bucket at the SLO) and `total_series` all (the _count).
    Fires: a constant ratio PROOF_MARGIN over the threshold (both windows hold from the second sample).
    Quiet: the ratio PROOF_MARGIN under it; a burst of failures shorter than the long window (the short
    window burns, the long one stays at 0.7x the threshold, so halving the long window fires); and a
    burn that stopped one short window ago (the long window still burns at 3x, a doubled short one would)."""
    # The histogram's +Inf bucket (every request, as _count): a rule that lost its le matcher adds it in.
    inf_series = None if counts_bad else re.sub(r'le="[^"]*"', 'le="+Inf"', bad_series)

    def with_inf(values: dict[str, str]) -> dict[str, str]:
        return {**values, inf_series: values[total_series]} if inf_series else values

    def build(interval_ms: int) -> Proof:
        step = interval_ms
        horizon = window.for_ms + 4 * step
        n = sample_count(step, horizon + step)
        per = PROOF_EVENTS_PER_STEP

        def counted(ratio: float, steps: int) -> tuple[float, int]:
            return (per * ratio if counts_bad else per * (1 - ratio), steps)

        def other(segments: list[tuple[float, int]]) -> str:
            """The second series: the requests that did not fail (counts_bad), or all of them."""
            return piecewise([((per - inc if counts_bad else per), k) for inc, k in segments])

        def flat(ratio: float) -> dict[str, str]:
            return with_inf({bad_series: piecewise([counted(ratio, n)]), total_series: other([counted(ratio, n)])})

        bad_ratio = min(threshold * (1 + PROOF_MARGIN), (1 + threshold) / 2)
        quiet: list[tuple[str, dict[str, str], tuple[int, ...]]] = []
        if window.long_ms // step <= BURST_PROOF_MAX_STEPS:
            base = window.long_ms // step
            share = 0.7 * threshold * window.long_ms / step  # steps of failures only that fill 0.7x the long window
            burst = max(1, int(share))
            burst_ratio = min(1.0, share / burst)  # under one step's worth: a step of partial failures
            after = (window.for_ms + 2 * step) // step
            end = (base + burst) * step
            segments = [counted(0, base), counted(burst_ratio, burst), counted(0, after)]
            quiet.append((f"a burst of failures for {fmt(burst * step)}, under {fmt(window.long_ms)}",
                          with_inf({bad_series: piecewise(segments), total_series: other(segments)}),
                          (end, end + window.for_ms)))
            high = min(1.0, 3 * threshold)
            short = window.short_ms // step
            stop = window.long_ms // step
            recovered = [counted(high, stop), counted(0, short + after)]
            quiet.append((f"burning at {num(high)} until {fmt(window.long_ms)}, then healthy for {fmt(window.short_ms)}",
                          with_inf({bad_series: piecewise(recovered), total_series: other(recovered)}),
                          ((stop + short) * step, (stop + short) * step + window.for_ms)))
        for what, bad, total, end in exact_cases(counts_bad, threshold, window, step):
            first: list[tuple[float, int]] = [(inc if counts_bad else total - inc, 1) for inc in bad]
            second: list[tuple[float, int]] = [((total - inc) if counts_bad else total, 1) for inc in bad]
            values = with_inf({bad_series: piecewise(_runs(first)), total_series: piecewise(_runs(second))})
            if not counts_bad:
                # The latency ratio's series in halves over two instances: halving is exact in binary and two
                # equal halves add up to the whole, so each rate (and the ratio) is the same double, while a
                # max of the fast requests takes half of them (the slow share crosses the threshold).
                halves = {k: piecewise(_runs([(inc / 2, 1) for inc, _ in (first if k == bad_series else second)]))
                          for k in values}
                values = {relabel(k, "instance", part): v for k, v in halves.items() for part in ("proof-a", "proof-b")}
                what += ", in halves over two instances"
            quiet.append((what, values, (end * step,)))
        return Proof(flat(bad_ratio), flat(threshold * (1 - PROOF_MARGIN)), step, out, tuple(quiet))
    return build


def burn_alerts(profile: Profile, parts: Parts) -> list[Alert]:
    job = profile.app.deployment
    sel = {"namespace": profile.namespace, "job": job}
    series = {**sel, "instance": f"{job}:8000", "handler": "/v1/query", "method": "POST"}
    slo = profile.slo
    latency_s = slo.api_latency_p95 / 1000
    le = le_text(latency_s)
    by = "sum by (namespace, job)"

    failed, fast = formats.matcher("status", "5xx"), formats.matcher("le", le)

    def errors(w: str) -> str:
        return (f"{by} (rate({selector('http_requests_total', sel, failed)}[{w}])) / "
                f"{by} (rate({selector('http_requests_total', sel)}[{w}]))")

    def slow(w: str) -> str:
        return (f"1 - {by} (rate({selector('http_request_duration_seconds_bucket', sel, fast)}[{w}])) / "
                f"{by} (rate({selector('http_request_duration_seconds_count', sel)}[{w}]))")

    kinds = (
        ("Availability", "api_errors", errors, slo.error_rate, "slo.error_rate",
         f"{pct(slo.error_rate)} of requests may fail (5xx)",
         series_of("http_requests_total", {**series, "status": "5xx"}),
         series_of("http_requests_total", {**series, "status": "2xx"}), True),
        ("Latency", "api_slow_requests", slow, LATENCY_BUDGET, "slo.api_latency_p95",
         f"5% of requests may take longer than {fmt(slo.api_latency_p95)}",
         series_of("http_request_duration_seconds_bucket", {**series, "le": le}),
         series_of("http_request_duration_seconds_count", series), False),
    )
    alerts = []
    for kind, record, ratio_expr, budget, key, objective, bad_series, total_series, counts_bad in kinds:
        names = {w: f"perfstack:{record}:ratio_rate{fmt(w)}" for win in WINDOWS for w in (win.long_ms, win.short_ms)}
        records = tuple((names[w], ratio_expr(fmt(w))) for w in sorted(names))
        for win in WINDOWS:
            k = burn_rate(profile, win)
            threshold = k * budget
            long_name, short_name = names[win.long_ms], names[win.short_ms]
            alerts.append(Alert(
                f"Api{kind}BurnRate{fmt(win.long_ms)}",
                f"{selector(long_name, sel)} > {num(threshold)} and {selector(short_name, sel)} > {num(threshold)}",
                win.for_ms, win.severity, f"The API burns its {kind.lower()} error budget {num(round(k, 2))}x too fast",
                f"{{{{ $labels.job }}}} has spent {pct(win.budget_share)} of its {fmt(slo.window)} {kind.lower()} error "
                f"budget ({objective}, {key}) in {fmt(win.long_ms)}: the failing share is above {num(threshold)} "
                f"({num(round(k, 3))} x {num(budget)}) over {fmt(win.long_ms)} and over {fmt(win.short_ms)}.",
                threshold, f"{num(win.budget_share)} of the budget x slo.window / {fmt(win.long_ms)} x the budget",
                {"window": fmt(slo.window), "budget": budget, "burn_rate": round(k, 4), "long": fmt(win.long_ms),
                 "short": fmt(win.short_ms)},
                burn_proof(bad_series, total_series, counts_bad, threshold, win, sel),
                possible=0 < threshold < 1, records=records))
    return alerts

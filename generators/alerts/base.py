"""What every alert module shares: the Alert and Proof types, PromQL helpers and the proof series builders.

Each alert carries its own proof: input series that cross the threshold and series just under it, and
the time at which the expression first holds (promtool.py turns them into promtool unit tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import formats, units

# rate() windows: 5 minutes holds several scrapes at any usual scrape interval (15 s to 1 m), so one
# missed scrape does not blank a rate, and a burst shorter than the window is averaged out.
RATE_WINDOW_MS = 5 * 60_000
# Prometheus's own default evaluation_interval; promtool tests step at the group's interval or this.
DEFAULT_EVALUATION_MS = 60_000
# vLLM's metric label naming the served model; the API's job label is its Deployment's name.
MODEL_LABEL = "model_name"
OLLAMA_PROBE_PATH = "/api/version"  # Ollama has no /metrics; this answers as soon as the server is up
# A hit ratio over a trickle is noise (a restarted database reads its catalog from disk once): the cache
# alert waits for at least this many blocks read from outside shared_buffers per second (80 kB/s at 8 kB).
POSTGRES_MIN_BLOCK_READS_PER_SECOND = 10
# The ratio proofs' traffic per evaluation step: the first rate() (one step spread over the whole 5m
# window) already clears the noise floor above (6% of 10^6 / 300 s = 200 blocks/s).
PROOF_EVENTS_PER_STEP = 1_000_000


@dataclass(frozen=True)
class Proof:
    """Series that make an alert's expression hold (`bad`) and series just under its threshold (`good`)."""

    bad: dict[str, str]  # series selector -> promtool values
    good: dict[str, str]
    active_ms: int  # first evaluation at which `bad` makes the expression hold
    labels: dict[str, str]  # labels the expression yields for `bad` (alert labels come on top)


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_ms: int
    severity: str  # critical | warning
    summary: str
    description: str  # names the threshold; may use {{ $labels.NAME }} only
    threshold: float
    rule: str  # how the threshold was derived (explain)
    inputs: dict[str, Any]
    proof: Callable[[int], Proof]  # evaluation interval (ms) -> proof
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    possible: bool = True  # False: no series can cross the threshold (a share below 0, a latency above 0 s)


# ---------------------------------------------------------------- PromQL and promtool helpers
def num(value: float) -> str:
    """A number as PromQL and promtool read it: integers bare, others to 12 significant digits
    (0.8 x 197 is 157.6, not 157.60000000000002)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{float(value):.12g}"


def selector(metric: str, matchers: dict[str, str], *extra: str) -> str:
    parts = [formats.matcher(key, value) for key, value in matchers.items()] + list(extra)
    return metric + "{" + ", ".join(parts) + "}"


def eq(label: str, value: str) -> str:
    return formats.matcher(label, value)


def series_of(metric: str, labels: dict[str, str]) -> str:
    return selector(metric, dict(sorted(labels.items())))


def gauge_values(value: float, samples: int) -> str:
    return f"{num(value)}x{samples}"


def counter_values(increment: float, samples: int) -> str:
    return f"0+{num(increment)}x{samples}"


def seconds(ms: int) -> float:
    return ms / 1000


def sample_count(interval_ms: int, until_ms: int) -> int:
    return until_ms // interval_ms + 1


def horizon(alert_for_ms: int, interval_ms: int, active_ms: int) -> int:
    """Data must last past the moment the alert fires, with room for the check after it."""
    return active_ms + ceil_to(alert_for_ms, interval_ms) + 3 * interval_ms


def ceil_to(ms: int, step: int) -> int:
    return -(-ms // step) * step


def shares(threshold: float, above: bool) -> tuple[float, float]:
    """(firing, healthy) values of a share in [0, 1] around its threshold: 1 point past it on either side,
    less near 0 or 1, and exactly 0 or 1 when the healthy side is the end of the range."""
    up, down = min(0.01, (1 - threshold) / 2), min(0.01, threshold / 2)
    return (threshold + up, threshold - down) if above else (threshold - down, threshold + up)


def fireable(threshold: float, above: bool) -> bool:
    """A share (0..1) can exceed any threshold under 1 and fall below any threshold over 0."""
    return threshold < 1 if above else threshold > 0


def gauge_proof(metric: str, labels: dict[str, str], bad: float, good: float, out: dict[str, str] | None = None,
                for_ms: int = 0, zeros: tuple[str, ...] = ()) -> Callable[[int], Proof]:
    """A gauge held at `bad` (fires) or `good` (does not); `zeros`: metrics the expression adds, held at 0."""
    def build(interval_ms: int) -> Proof:
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, 0))
        series = series_of(metric, labels)
        rest = {series_of(other, labels): gauge_values(0, n) for other in zeros}
        return Proof({series: gauge_values(bad, n), **rest}, {series: gauge_values(good, n), **rest}, 0,
                     out if out is not None else labels)
    return build


def count_proof(metric: str, labels: dict[str, str], threshold: float, out: dict[str, str],
                for_ms: int, zeros: tuple[str, ...] = ()) -> Callable[[int], Proof]:
    """`sum(...) > threshold` over a count: the next whole number fires, the threshold's floor does not."""
    return gauge_proof(metric, labels, math.floor(threshold) + 1, math.floor(threshold), out, for_ms, zeros)


def ratio_proof(numerator: tuple[str, dict[str, str]], rest: tuple[str, dict[str, str]], threshold: float,
                above: bool, out: dict[str, str], for_ms: int) -> Callable[[int], Proof]:
    """Two counters whose rates give share = numerator / (numerator + rest); `above`: the alert fires
    when the share exceeds the threshold, else when it falls below it."""
    bad_share, good_share = shares(threshold, above)

    def build(interval_ms: int) -> Proof:
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, interval_ms))
        num_series, rest_series = series_of(*numerator), series_of(*rest)

        per_step = PROOF_EVENTS_PER_STEP

        def values(share: float) -> dict[str, str]:
            return {num_series: counter_values(per_step * share, n), rest_series: counter_values(per_step * (1 - share), n)}
        return Proof(values(bad_share), values(good_share), interval_ms, out)
    return build


def histogram_proof(metric: str, labels: dict[str, str], threshold_s: float, out: dict[str, str],
                    for_ms: int) -> Callable[[int], Proof]:
    """Buckets at the threshold and twice it: 94 of 100 observations at or under the threshold put the
    p95 at 1.17x the threshold (fires); 96 of 100 put it at 0.99x (does not)."""
    def build(interval_ms: int) -> Proof:
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, interval_ms))

        def values(under: int) -> dict[str, str]:
            return {series_of(f"{metric}_bucket", {**labels, "le": le}): counter_values(count, n)
                    for le, count in ((num(threshold_s), under), (num(2 * threshold_s), 100), ("+Inf", 100))}
        return Proof(values(94), values(96), interval_ms, out)
    return build


def rate_proof(metric: str, labels: dict[str, str], per_second: float, out: dict[str, str],
               for_ms: int) -> Callable[[int], Proof]:
    """`rate(counter[window]) > per_second`. A counter starting at 0 shows rate x elapsed / window until
    the window fills, so the proof's rate sits between the threshold and threshold x window / (the
    evaluation before the window fills): the expression holds exactly once the window is full."""
    def build(interval_ms: int) -> Proof:
        series = series_of(metric, labels)
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, ceil_to(RATE_WINDOW_MS, interval_ms)))
        if per_second == 0:  # `> 0`: any event holds from the second sample on; none never does
            return Proof({series: counter_values(1, n)}, {series: gauge_values(0, n)}, interval_ms, out)
        active = ceil_to(RATE_WINDOW_MS, interval_ms)
        before = active - interval_ms
        bad = per_second * (1 + RATE_WINDOW_MS / before) / 2 if before > 0 else 2 * per_second
        good = per_second * (1 - min(0.01, interval_ms / (2 * RATE_WINDOW_MS)))
        step = seconds(interval_ms)
        return Proof({series: counter_values(bad * step, n)}, {series: counter_values(good * step, n)}, active, out)
    return build


def increase_proof(metric: str, labels: dict[str, str], out: dict[str, str], for_ms: int) -> Callable[[int], Proof]:
    """`increase(counter[window]) > 0`: one event per evaluation fires; a counter that stays put does not."""
    def build(interval_ms: int) -> Proof:
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, interval_ms))
        series = series_of(metric, labels)
        return Proof({series: counter_values(1, n)}, {series: gauge_values(0, n)}, interval_ms, out)
    return build


def window() -> str:
    return units.format_duration(RATE_WINDOW_MS)


def p95(metric: str, sel: dict[str, str], by: str) -> str:
    return (f"histogram_quantile(0.95, sum by ({by}, le) "
            f"(rate({selector(metric + '_bucket', sel)}[{window()}])))")


def pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def duration_text(ms: int) -> str:
    return units.format_duration(ms)

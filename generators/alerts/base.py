"""What every alert module shares: the Alert and Proof types, PromQL helpers and the proof series builders.

Each alert carries its own proof: input series that cross the threshold and series just under it, and
the time at which the expression first holds (promtool.py turns them into promtool unit tests).
"""

from __future__ import annotations

import math
import re
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
# How far past and short of its threshold a proof puts a value: near enough that a threshold moved by a few
# percent, or `>` turned into `>=` on a whole count, fails the proof (scripts/mutation_check.py measures it).
PROOF_MARGIN = 0.02
# vLLM 0.10's own histogram buckets (vllm/v1/metrics/loggers.py), seconds.
VLLM_E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                    240.0, 480.0, 960.0, 1920.0, 7680.0)
VLLM_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                     20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)


@dataclass(frozen=True)
class Proof:
    """Series that make an alert's expression hold (`bad`) and series just under its threshold (`good`)."""

    bad: dict[str, str]  # series selector -> promtool values
    good: dict[str, str]
    active_ms: int  # first evaluation at which `bad` makes the expression hold
    labels: dict[str, str]  # labels the expression yields for `bad` (alert labels come on top)
    # More healthy cases: (what it shows, series, eval times at which the alert must not fire), e.g. a
    # burst shorter than the window, or two instances each under a threshold their sum would cross.
    quiet: tuple[tuple[str, dict[str, str], tuple[int, ...]], ...] = ()


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
    records: tuple[tuple[str, str], ...] = ()  # recording rules (name, expr) the expression reads


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


SERIES = re.compile(r"^([A-Za-z_:][\w:]*)\{(.*)\}$")  # a series as series_of writes it
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def relabel(series: str, label: str, value: str) -> str:
    """The series (as series_of writes it) with one label set to value."""
    parsed = SERIES.match(series)
    assert parsed, series
    return series_of(parsed.group(1), {**dict(LABEL.findall(parsed.group(2))), label: value})


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
    """(firing, healthy) values of a share in [0, 1] around its threshold: PROOF_MARGIN of it past it on
    either side (at least 0.001 past 0), less near 0 or 1."""
    up = min(max(PROOF_MARGIN * threshold, 0.001), (1 - threshold) / 2)
    down = min(PROOF_MARGIN * threshold, threshold / 2)
    return (threshold + up, threshold - down) if above else (threshold - down, threshold + up)


def near(threshold: float, above: bool = True) -> tuple[float, float]:
    """(firing, healthy) values of an unbounded gauge around its threshold, PROOF_MARGIN away (a threshold
    of 0: 1 and 0)."""
    if threshold == 0:
        return (1, 0) if above else (-1, 0)
    up, down = threshold * (1 + PROOF_MARGIN), threshold * (1 - PROOF_MARGIN)
    return (up, down) if above else (down, up)


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


def le_text(bound_s: float) -> str:
    """A bucket bound as prometheus_client (the app's Python client) writes `le`: 2.0, 0.5, 0.25."""
    return repr(float(bound_s))


def quantile_counts(buckets: tuple[float, ...], target: float, total: int, q: float = 0.95) -> list[int]:
    """Cumulative counts per bucket (then +Inf) that put histogram_quantile(q) at `target`, in its bucket
    (lo, hi]: c observations up to lo and m up to hi, so that lo + (hi - lo) x (q.total - c) / (m - c) = target
    (c = 0 where m fits in the total; else m = total and c below the rank). In the first bucket the
    quantile cannot fall below q x its bound (the caller's threshold is at least the first bound)."""
    index = next(i for i, b in enumerate(buckets) if target <= b)
    lo, hi = (buckets[index - 1] if index else 0.0), buckets[index]
    rank, share = q * total, (target - lo) / (hi - lo)
    below, m = 0, round(rank / share)
    if m > total:
        below, m = (round((rank - share * total) / (1 - share)), total) if index else (0, total)
    return [0 if i < index - 1 else below if i < index else (m if i == index else total)
            for i in range(len(buckets))] + [total]


def histogram_proof(metric: str, labels: dict[str, str], threshold_s: float, buckets: tuple[float, ...],
                    out: dict[str, str], for_ms: int, le: Callable[[float], str] = le_text) -> Callable[[int], Proof]:
    """The histogram's own buckets (those the app or server exports), filled so that the p95 lands
    PROOF_MARGIN over the threshold (fires) or under it (does not)."""
    bad_s = min(threshold_s * (1 + PROOF_MARGIN), (threshold_s + buckets[-1]) / 2)
    good_s = threshold_s * (1 - PROOF_MARGIN)

    def build(interval_ms: int) -> Proof:
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, interval_ms))

        def values(target: float) -> dict[str, str]:
            counts = quantile_counts(buckets, target, PROOF_EVENTS_PER_STEP)
            bounds = [le(b) for b in buckets] + ["+Inf"]
            return {series_of(f"{metric}_bucket", {**labels, "le": bound}): counter_values(count, n)
                    for bound, count in zip(bounds, counts, strict=True)}
        return Proof(values(bad_s), values(good_s), interval_ms, out)
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


def ratio_over_total_proof(part: tuple[str, dict[str, str]], total: tuple[str, dict[str, str]], threshold: float,
                           out: dict[str, str], for_ms: int) -> Callable[[int], Proof]:
    """`rate(part) / rate(total) > threshold`, part counted inside total (errors of all queries): both
    counters start at 0 together, so the ratio is exact from the second sample on."""
    bad_share, good_share = shares(threshold, True)

    def build(interval_ms: int) -> Proof:
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, interval_ms))
        part_series, total_series = series_of(*part), series_of(*total)

        def values(share: float) -> dict[str, str]:
            return {part_series: counter_values(PROOF_EVENTS_PER_STEP * share, n),
                    total_series: counter_values(PROOF_EVENTS_PER_STEP, n)}
        return Proof(values(bad_share), values(good_share), interval_ms, out)
    return build


def cpu_proof(usage: tuple[str, dict[str, str]], limit: tuple[str, dict[str, str]], limit_cores: float,
              threshold: float, out: dict[str, str], for_ms: int) -> Callable[[int], Proof]:
    """`rate(cpu seconds[window]) / limit > threshold`. A counter from 0 shows rate x elapsed / window until
    the window fills (as in rate_proof): the share sits between the threshold and the most that still stays
    under it one evaluation before the window is full, and within PROOF_MARGIN of the threshold."""
    def build(interval_ms: int) -> Proof:
        active = ceil_to(RATE_WINDOW_MS, interval_ms)
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, active))
        before = active - interval_ms
        bad = threshold * min(1 + PROOF_MARGIN, (1 + RATE_WINDOW_MS / before) / 2 if before > 0 else 2)
        good = threshold * (1 - PROOF_MARGIN)
        step = seconds(interval_ms)
        usage_series, limit_series = series_of(*usage), series_of(*limit)

        def values(share: float) -> dict[str, str]:
            return {usage_series: counter_values(share * limit_cores * step, n),
                    limit_series: gauge_values(limit_cores, n)}
        return Proof(values(bad), values(good), active, out)
    return build

"""Alerts (with their promtool proofs) and dashboard panels for the worker pools of `workers:`.

Metrics: danihodovic/celery-exporter (generators/metrics.py, CELERY_EXPORTER), which reads the queue
lengths from the broker (LLEN of each Celery queue's Redis list) and counts task events; the rendered
celeryconfig.py turns those events on. One alert of each kind per pool, its thresholds from the pool:
- backlog: more jobs waiting than max_replicas x target_queue_length, what KEDA scales to at most;
- wait: the time to drain the queue at the rate the pool takes jobs (length / receive rate, Little's
  law: the age of the newest job once it is taken) above max_queue_wait;
- no consumers: jobs waiting and no worker consuming the queue;
- retries: the share of attempts that end in a retry above slo.error_rate;
- given up ("dead letters"): a task failed after its last retry (Celery's Redis transport has no
  dead-letter queue: the task-failed event is the only trace).
"""

from __future__ import annotations

from collections.abc import Callable

from .. import formats, units
from ..bundle import Parts
from ..profile import Profile, WorkerPool
from .base import (
    PROOF_MARGIN,
    RATE_WINDOW_MS,
    Alert,
    Proof,
    ceil_to,
    count_proof,
    counter_values,
    gauge_values,
    horizon,
    increase_proof,
    num,
    ratio_proof,
    sample_count,
    selector,
    series_of,
    window,
)

EXPORTER_INSTANCE = "celery-exporter:9808"


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def backlog_limit(pool: WorkerPool) -> int:
    return pool.max_replicas * pool.target_queue_length


def _matchers(profile: Profile, pool: WorkerPool) -> tuple[dict[str, str], str]:
    return {"namespace": profile.namespace}, formats.matcher("queue_name", formats.regex_alternatives(pool.queues), "=~")


def wait_proof(length: tuple[str, dict[str, str]], received: tuple[str, dict[str, str]], depth: float,
               wait_s: float, out: dict[str, str], for_ms: int) -> Callable[[int], Proof]:
    """`length / rate(received) > wait_s`. A counter starting at 0 shows a rate of r x elapsed / window
    until the window fills, so early evaluations see a longer wait: the slow drain (r = depth / 2 wait)
    holds from the first rate on; the fast one is fast enough even at the first rate."""
    def build(interval_ms: int) -> Proof:
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, ceil_to(RATE_WINDOW_MS, interval_ms)))
        step = interval_ms / 1000
        slow = depth / (wait_s * (1 + PROOF_MARGIN))
        # The fast drain: a wait PROOF_MARGIN under the threshold once the rate's window is full. Before that a
        # counter from 0 shows a lower rate (a longer wait), so where the `for` window ends before the rate
        # window fills, the drain is fast enough from the first rate on.
        fast = (depth / (wait_s * (1 - PROOF_MARGIN)) if for_ms >= RATE_WINDOW_MS + interval_ms
                else 2 * depth * (RATE_WINDOW_MS / interval_ms) / wait_s)
        length_series, received_series = series_of(*length), series_of(*received)
        return Proof({length_series: gauge_values(depth, n), received_series: counter_values(slow * step, n)},
                     {length_series: gauge_values(depth, n), received_series: counter_values(fast * step, n)},
                     interval_ms, out)
    return build


def consumers_proof(length: tuple[str, dict[str, str]], workers: tuple[str, dict[str, str]],
                    out: dict[str, str], for_ms: int) -> Callable[[int], Proof]:
    def build(interval_ms: int) -> Proof:
        n = sample_count(interval_ms, horizon(for_ms, interval_ms, 0))
        length_series, workers_series = series_of(*length), series_of(*workers)
        parsed = dict(length[1])
        other = series_of(length[0], {**parsed, "namespace": parsed.get("namespace", "") + "-other"})
        # One job waiting is enough; an empty queue whose pool scaled to zero is healthy (KEDA does that),
        # even while another namespace's queue of the same name waits.
        idle = {length_series: gauge_values(0, n), workers_series: gauge_values(0, n), other: gauge_values(5, n)}
        at = ceil_to(for_ms, interval_ms)
        return Proof({length_series: gauge_values(1, n), workers_series: gauge_values(0, n)},
                     {length_series: gauge_values(5, n), workers_series: gauge_values(1, n)}, 0, out,
                     (("the queue empty, its pool scaled to zero, another namespace's queue waiting", idle,
                       (0, at, at + interval_ms)),))
    return build


def pool_alerts(profile: Profile, name: str, pool: WorkerPool) -> list[Alert]:
    assert profile.workers is not None
    ns, queues = _matchers(profile, pool)
    series = {**ns, "job": profile.workers.exporter_job, "instance": EXPORTER_INSTANCE, "queue_name": pool.queues[0]}
    out = {"queue_name": pool.queues[0]}
    task = {**series, "name": "tasks.example", "hostname": f"{name}@worker"}
    w = window()
    p = camel(name)
    by = "sum by (queue_name)"
    length = f"{by} ({selector('celery_queue_length', ns, queues)})"
    backlog = backlog_limit(pool)
    wait_s = pool.max_queue_wait / 1000
    error_rate = profile.slo.error_rate

    def rate(metric: str) -> str:
        return f"{by} (rate({selector(metric, ns, queues)}[{w}]))"

    return [
        Alert(f"Worker{p}QueueBacklog", f"{length} > {num(backlog)}", 10 * 60_000, "warning",
              f"Worker pool {name}: more jobs waiting than its replicas work off",
              f"Queue {{{{ $labels.queue_name }}}} holds more than {backlog} jobs for 10m: workers.pools.{name}."
              f"max_replicas {pool.max_replicas} x target_queue_length {pool.target_queue_length}, the most KEDA "
              "scales to; raise max_replicas or concurrency.",
              backlog, "max_replicas x target_queue_length (what KEDA scales the pool to at most)",
              {"max_replicas": pool.max_replicas, "target_queue_length": pool.target_queue_length},
              count_proof("celery_queue_length", series, backlog, out, 10 * 60_000)),
        Alert(f"Worker{p}QueueWaitHigh", f"{length} / {rate('celery_task_received_total')} > {num(wait_s)}",
              5 * 60_000, "warning", f"Worker pool {name}: jobs wait too long in the queue",
              f"Queue {{{{ $labels.queue_name }}}} takes more than {units.format_duration(pool.max_queue_wait)} "
              f"({num(wait_s)} s) to drain at the rate workers take jobs (length / receive rate) for 5m: above "
              f"workers.pools.{name}.max_queue_wait.",
              wait_s, "workers.pools.max_queue_wait in seconds, against queue length / jobs received per second",
              {"max_queue_wait": units.format_duration(pool.max_queue_wait)},
              wait_proof(("celery_queue_length", series), ("celery_task_received_total", task), 100, wait_s,
                         out, 5 * 60_000)),
        Alert(f"Worker{p}NoConsumers",
              f"{length} > 0 and on (queue_name) {by} ({selector('celery_active_worker_count', ns, queues)}) == 0",
              5 * 60_000, "critical", f"Worker pool {name}: jobs waiting and no worker consuming",
              f"Queue {{{{ $labels.queue_name }}}} has jobs waiting and 0 workers of pool {name} consume it "
              "(threshold: more than 0 jobs, 0 workers) for 5m.",
              0, "jobs waiting (length > 0) while the queue has 0 active workers", {},
              consumers_proof(("celery_queue_length", series), ("celery_active_worker_count", series), out,
                              5 * 60_000)),
        Alert(f"Worker{p}RetriesHigh",
              f"{rate('celery_task_retried_total')} / ({rate('celery_task_retried_total')} + "
              f"{rate('celery_task_succeeded_total')}) > {num(error_rate)}",
              15 * 60_000, "warning", f"Worker pool {name}: many task attempts end in a retry",
              f"More than {error_rate * 100:g}% (slo.error_rate) of task attempts on {{{{ $labels.queue_name }}}} "
              f"were retried for 15m (max_retries {pool.max_retries}): a dependency is failing.",
              error_rate, "slo.error_rate, against retried / (retried + succeeded) attempts",
              {"error_rate": error_rate, "max_retries": pool.max_retries},
              ratio_proof(("celery_task_retried_total", task), ("celery_task_succeeded_total", task), error_rate,
                          True, out, 15 * 60_000)),
        Alert(f"Worker{p}TasksGivenUp",
              f"{by} (increase({selector('celery_task_failed_total', ns, queues)}[{w}])) > 0",
              60_000, "warning", f"Worker pool {name}: tasks failed after their last retry",
              f"Tasks on {{{{ $labels.queue_name }}}} failed for good in the last {w} (threshold 0) after up to "
              f"{pool.max_retries} retries: Celery keeps no dead-letter queue, find them in the worker logs.",
              0, "any task that failed after max_retries is a lost job", {"max_retries": pool.max_retries},
              increase_proof("celery_task_failed_total", {**task, "exception": "RuntimeError"}, out, 60_000)),
    ]


def worker_alerts(profile: Profile, parts: Parts) -> list[Alert]:
    if profile.workers is None:
        return []
    return [alert for name, pool in profile.workers.pools.items() for alert in pool_alerts(profile, name, pool)]

"""The HorizontalPodAutoscaler's algorithm, as kube-controller-manager runs it (pkg/controller/podautoscaler),
to replay a rendered HPA's `metrics` and `behavior` over a load: no perfstack code is used here.

- replica_calculator: desired = ceil(current x metric / target) over the pods with a metric, nothing done
  within the 10 % tolerance; pods without a metric (still starting) count as 0 when scaling up and as the
  target when scaling down, and a change of direction that this causes cancels the scale.
- stabilizeRecommendationWithBehaviors: the smallest recommendation of the scale-up window and the largest
  of the scale-down window bound the new one.
- convertDesiredReplicasWithBehaviorRate: each policy allows, from the replicas at the start of its period
  (current minus what was added in it, or plus what was removed), + value pods or x (1 + value %) up
  (Percent rounds up), - value pods or x (1 - value %) down (rounds down); selectPolicy Max takes the
  largest change, Min the smallest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 0.1
SYNC_PERIOD_S = 15


@dataclass
class Pod:
    started: float
    ready_at: float


@dataclass
class Hpa:
    min_replicas: int
    max_replicas: int
    target: float
    behavior: dict[str, Any]
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)

    def metric_replicas(self, current: int, values: list[float], missing: int) -> int:
        if not values:
            return current
        ratio = sum(values) / len(values) / self.target
        if missing == 0:
            return current if abs(1 - ratio) <= TOLERANCE else math.ceil(ratio * len(values))
        total = sum(values) + (self.target * missing if ratio < 1 else 0.0)
        new_ratio = total / (len(values) + missing) / self.target
        if abs(1 - new_ratio) <= TOLERANCE or (ratio < 1 < new_ratio) or (new_ratio < 1 < ratio):
            return current
        desired = math.ceil(new_ratio * (len(values) + missing))
        if (desired > current and ratio < 1) or (desired < current and ratio > 1):
            return current
        return desired

    def stabilize(self, now: float, current: int, desired: int) -> int:
        up_window = self.behavior["scaleUp"]["stabilizationWindowSeconds"]
        down_window = self.behavior["scaleDown"]["stabilizationWindowSeconds"]
        up, down = desired, desired
        for stamp, value in self.recommendations:
            if stamp > now - up_window:
                up = min(up, value)
            if stamp > now - down_window:
                down = max(down, value)
        self.recommendations.append((now, desired))
        return min(max(current, up), down)

    def _limit(self, now: float, current: int, direction: str) -> int:
        rules = self.behavior["scaleUp" if direction == "up" else "scaleDown"]
        events = self.up_events if direction == "up" else self.down_events
        proposals = []
        for policy in rules["policies"]:
            moved = sum(n for stamp, n in events if stamp > now - policy["periodSeconds"])
            if direction == "up":
                start = current - moved
                proposals.append(start + policy["value"] if policy["type"] == "Pods"
                                 else math.ceil(start * (1 + policy["value"] / 100)))
            else:
                start = current + moved
                proposals.append(start - policy["value"] if policy["type"] == "Pods"
                                 else int(start * (1 - policy["value"] / 100)))
        bigger_change = rules["selectPolicy"] == "Max"
        if direction == "up":
            return max(proposals) if bigger_change else min(proposals)
        return min(proposals) if bigger_change else max(proposals)

    def step(self, now: float, current: int, values: list[float], missing: int) -> int:
        desired = self.stabilize(now, current, self.metric_replicas(current, values, missing))
        if desired > current:
            desired = min(desired, self.max_replicas, max(current, self._limit(now, current, "up")))
        elif desired < current:
            desired = max(desired, self.min_replicas, min(current, self._limit(now, current, "down")))
        desired = min(max(desired, self.min_replicas), self.max_replicas)
        if desired > current:
            self.up_events.append((now, desired - current))
        elif desired < current:
            self.down_events.append((now, current - desired))
        return desired


def simulate(hpa: Hpa, demand: Callable[[float], float], per_pod: Callable[[float, int], float],
             load_time_s: float, duration_s: float, start_replicas: int) -> list[tuple[float, int, int]]:
    """Replay `duration_s` seconds: (time, replicas, ready pods) after each sync. New pods are Ready (and report
    a metric) load_time_s after they are created; removed pods go at once (the newest first)."""
    pods = [Pod(-load_time_s, 0.0) for _ in range(start_replicas)]
    history = []
    now = 0.0
    while now <= duration_s:
        ready = [p for p in pods if p.ready_at <= now]
        value = per_pod(demand(now), len(ready)) if ready else 0.0
        values = [value] * len(ready)
        desired = hpa.step(now, len(pods), values, len(pods) - len(ready))
        while len(pods) < desired:
            pods.append(Pod(now, now + load_time_s))
        while len(pods) > desired:
            pods.pop()
        history.append((now, len(pods), len([p for p in pods if p.ready_at <= now])))
        now += SYNC_PERIOD_S
    return history


def direction_changes(replicas: list[int]) -> int:
    """How often the replica count turned from rising to falling or back."""
    moves = [b - a for a, b in zip(replicas, replicas[1:], strict=False) if b != a]
    return sum(1 for a, b in zip(moves, moves[1:], strict=False) if (a > 0) != (b > 0))

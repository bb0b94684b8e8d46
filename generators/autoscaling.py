"""Autoscaling: autoscaling/v2 HorizontalPodAutoscalers for the API and the LLM server, or a KEDA ScaledObject.

The API scales on CPU (and memory, when `autoscaling.api.target_memory` is given). The LLM server
scales on `autoscaling.llm.signal`: running + waiting requests per pod, or KV-cache usage (a ratio),
either through prometheus-adapter as a Pods metric (`scaler: hpa`, the adapter rule is rendered to
autoscaling/prometheus-adapter-rules.yaml) or through a KEDA ScaledObject with a Prometheus trigger
(`scaler: keda`). Every `behavior` field is written out: Kubernetes' defaults are not relied on.
Ollama exports no metrics, so an Ollama server is not autoscaled (checks warn when max_replicas > 1).
"""

from __future__ import annotations

import re
from typing import Any

from . import formats, paths, units
from .bundle import Part, Setting
from .k8s import LLM_SERVER, dump_yaml
from .profile import Profile

TARGET = "autoscaling"
ADAPTER_RULES = paths.ADAPTER_RULES

# API scale-up: Kubernetes' own default, pinned: double, or add 4 pods, every 15 s, whichever is more.
API_SCALE_UP: dict[str, Any] = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15},
                             {"type": "Pods", "value": 4, "periodSeconds": 15}]}
# API scale-down: after the stabilization window, at most 10% or 1 pod a minute, whichever is more;
# pools and caches of the remaining pods warm up gradually instead of at once.
API_SCALE_DOWN_POLICIES = [{"type": "Percent", "value": 10, "periodSeconds": 60},
                           {"type": "Pods", "value": 1, "periodSeconds": 60}]
# LLM scale-down: one GPU pod a minute after the stabilization window.
LLM_SCALE_DOWN_POLICIES = [{"type": "Pods", "value": 1, "periodSeconds": 60}]
HPA_MAX_PERIOD_S = 1800  # the API server's limit on a policy's periodSeconds
KEDA_POLLING_INTERVAL_S = 15


def adapter_metric_name(metric: str) -> str:
    """The custom-metrics API name prometheus-adapter serves a Prometheus metric as (':' is not kept)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", metric)


def policy_text(policies: list[dict[str, Any]]) -> str:
    """HPA policies as a reader says them, from the very constants the objects carry: '100% or 4 pods per 15s'."""
    parts = [f"{p['value']}%" if p["type"] == "Percent" else f"{p['value']} pod{'s' if p['value'] != 1 else ''}"
             for p in policies]
    periods = {p["periodSeconds"] for p in policies}
    period = periods.pop() if len(periods) == 1 else None
    return " or ".join(parts) + (f" per {period}s" if period else "")


# ---------------------------------------------------------------- API
def api_behavior(profile: Profile) -> dict[str, Any]:
    return {"scaleUp": API_SCALE_UP,
            "scaleDown": {"stabilizationWindowSeconds": units.seconds_up(profile.autoscaling.api.scale_down_stabilization),
                          "selectPolicy": "Max", "policies": API_SCALE_DOWN_POLICIES}}


def api_metrics(profile: Profile) -> list[dict[str, Any]]:
    api = profile.autoscaling.api
    metrics = [{"type": "Resource", "resource": {"name": "cpu",
                                                 "target": {"type": "Utilization", "averageUtilization": api.target_cpu}}}]
    if api.target_memory is not None:
        metrics.append({"type": "Resource", "resource": {
            "name": "memory", "target": {"type": "Utilization", "averageUtilization": api.target_memory}}})
    return metrics


# ---------------------------------------------------------------- LLM
# The signals, as vLLM 0.10 exports them. Running + waiting is the demand on the fleet: it does not fall
# when pods are added (waiting alone drops to zero once capacity suffices, so the fleet scales down and
# back up in a loop). KV-cache usage is a ratio in [0, 1]. vllm:gpu_cache_usage_perc is its deprecated name.
RUNNING, WAITING, KV_USAGE = "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"
ADAPTER_NAMES = {"requests": "vllm_requests_in_flight", "kv_cache": "vllm_kv_cache_usage_perc"}
# Default targets. Requests: 0.7 x max_num_seqs per pod, so a pod at the target still has 30 % of its
# batch free for the growth that arrives while a new pod starts (llm.load_time): the cold-start headroom.
REQUESTS_HEADROOM = 0.7
KV_CACHE_TARGET = 0.8
# LLM scale-up: double, or add 2 pods, a minute, whichever is more, no stabilization. Pods still starting
# have no metrics, and the HPA counts them at zero while scaling up, so it does not add pods for the
# same demand twice during a cold start.
LLM_SCALE_UP: dict[str, Any] = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 60},
                                             {"type": "Pods", "value": 2, "periodSeconds": 60}]}
# LLM scale-down: one GPU pod every two minutes after the stabilization window.
LLM_SCALE_DOWN_POLICIES = [{"type": "Pods", "value": 1, "periodSeconds": 120}]


def llm_target(profile: Profile) -> float:
    assert profile.llm is not None
    scaling = profile.autoscaling.llm
    if scaling.target is not None:
        return scaling.target
    if scaling.signal == "kv_cache":
        return KV_CACHE_TARGET
    return round(profile.llm.max_num_seqs * REQUESTS_HEADROOM, 3)


def threshold(value: float) -> str:
    """KEDA's threshold: a float written plainly (0.8, 44.8)."""
    return f"{value:g}"


def llm_behavior(profile: Profile) -> dict[str, Any]:
    return {"scaleUp": LLM_SCALE_UP,
            "scaleDown": {"stabilizationWindowSeconds": units.seconds_up(profile.autoscaling.llm.scale_down_stabilization),
                          "selectPolicy": "Max", "policies": LLM_SCALE_DOWN_POLICIES}}


def adapter_rules(profile: Profile) -> str:
    """prometheus-adapter rules (its Helm chart's `rules.custom`) serving the signal per pod."""
    signal = profile.autoscaling.llm.signal
    name = ADAPTER_NAMES[signal]
    if signal == "requests":
        rule = {"seriesQuery": f'{RUNNING}{{namespace!="",pod!=""}}',
                "metricsQuery": (f"sum(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>) + "
                                 f"sum({WAITING}{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)"),
                "name": {"matches": f"^{re.escape(RUNNING)}$", "as": name}}
    else:
        rule = {"seriesQuery": f'{KV_USAGE}{{namespace!="",pod!=""}}',
                "metricsQuery": "avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
                "name": {"matches": f"^{re.escape(KV_USAGE)}$", "as": name}}
    rule["resources"] = {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}}
    header = (f"# prometheus-adapter Helm values for {profile.environment}, rendered by perfstack: serves "
              f"{'running + waiting requests' if signal == 'requests' else 'KV-cache usage'} as the Pods metric "
              f"{name} that HorizontalPodAutoscaler/{LLM_SERVER} reads.\n")
    return "# " + formats.comment(header.removeprefix("# ").removesuffix("\n")) + "\n" + dump_yaml({"rules": {"custom": [rule]}})


def keda_cooldown_s(profile: Profile, load_time_ms: int) -> int:
    """Idle time before KEDA scales to zero: the scale-down window, and never less than a cold start."""
    return max(units.seconds_up(profile.autoscaling.llm.scale_down_stabilization), units.seconds_up(load_time_ms))


# ---------------------------------------------------------------- explain
def settings(profile: Profile) -> list[Setting]:
    api = profile.autoscaling.api
    items = [
        Setting(TARGET, "api.min_replicas", api.min_replicas, str(api.min_replicas), "given by autoscaling.api.min_replicas"),
        Setting(TARGET, "api.max_replicas", api.max_replicas, str(api.max_replicas), "given by autoscaling.api.max_replicas"),
        Setting(TARGET, "api.target_cpu", api.target_cpu, f"{api.target_cpu}%",
                "given by autoscaling.api.target_cpu: a share of the CPU request of each app pod, app.requests.cpu "
                "(the app's own Deployment must request it)",
                {"cpu_request": f"{profile.app.requests.cpu:g}",
                 "scales_above_cores": f"{profile.app.requests.cpu * api.target_cpu / 100:g}"}),
        Setting(TARGET, "api.scale_down_stabilization", api.scale_down_stabilization,
                f"{units.seconds_up(api.scale_down_stabilization)}s",
                "given by autoscaling.api.scale_down_stabilization; then at most "
                + policy_text(API_SCALE_DOWN_POLICIES).replace(" per 60s", " a minute"),
                {"scale_down_stabilization": units.format_duration(api.scale_down_stabilization)}),
        Setting(TARGET, "api.scale_up", policy_text(API_SCALE_UP["policies"]), policy_text(API_SCALE_UP["policies"]),
                "Kubernetes' default scale-up, pinned: double or add 4 pods every 15 s, whichever is more"),
    ]
    if api.target_memory is not None:
        items.append(Setting(TARGET, "api.target_memory", api.target_memory, f"{api.target_memory}%",
                             "given by autoscaling.api.target_memory: a share of the memory request of each app "
                             "pod, app.requests.memory (the app's own Deployment must request it)",
                             {"memory_request": units.format_size_human(profile.app.requests.memory)}))
    if profile.llm_autoscaled():
        assert profile.llm is not None
        scaling = profile.autoscaling.llm
        target = llm_target(profile)
        what = ("running + waiting requests per pod (vllm:num_requests_running + vllm:num_requests_waiting)"
                if scaling.signal == "requests" else "KV-cache usage per pod (vllm:kv_cache_usage_perc, 0 to 1)")
        target_rule = ("given by autoscaling.llm.target" if scaling.target is not None else
                       f"{REQUESTS_HEADROOM} x llm.max_num_seqs {profile.llm.max_num_seqs}: a pod at the target keeps "
                       f"{1 - REQUESTS_HEADROOM:.0%} of its batch free for the growth that arrives during a cold start"
                       if scaling.signal == "requests" else
                       f"{KV_CACHE_TARGET}: scale before the cache is full and vLLM preempts sequences")
        items += [
            Setting(TARGET, "llm.scaler", scaling.scaler, scaling.scaler,
                    "given by autoscaling.llm.scaler: " + ("HPA on a Pods metric through prometheus-adapter"
                                                           if scaling.scaler == "hpa" else
                                                           "KEDA ScaledObject with a Prometheus trigger")),
            Setting(TARGET, "llm.min_replicas", scaling.min_replicas, str(scaling.min_replicas),
                    "given by autoscaling.llm.min_replicas" + (" (0: scale to zero, KEDA wakes the fleet on the "
                                                              "app's LLM calls)" if scaling.min_replicas == 0 else "")),
            Setting(TARGET, "llm.max_replicas", scaling.max_replicas, str(scaling.max_replicas),
                    "given by autoscaling.llm.max_replicas"),
            Setting(TARGET, "llm.target", target, f"{target:g}", f"{target_rule}; the signal: {what}",
                    {"signal": scaling.signal, "max_num_seqs": profile.llm.max_num_seqs}),
            Setting(TARGET, "llm.scale_up", policy_text(LLM_SCALE_UP["policies"]),
                    policy_text(LLM_SCALE_UP["policies"]),
                    "no stabilization: pods still starting report no metric and count as zero while the HPA scales "
                    "up, so one rise in demand adds its pods once, however long the cold start"),
            Setting(TARGET, "llm.scale_down_stabilization", scaling.scale_down_stabilization,
                    f"{units.seconds_up(scaling.scale_down_stabilization)}s",
                    "given by autoscaling.llm.scale_down_stabilization (it must cover llm.load_time: a pod removed "
                    "in a dip costs a cold start to bring back); then " + policy_text(LLM_SCALE_DOWN_POLICIES),
                    {"scale_down_stabilization": units.format_duration(scaling.scale_down_stabilization)}),
        ]
    return items


def render(profile: Profile) -> Part:
    """The HPAs' and ScaledObject's numbers as settings; the objects themselves: objects/autoscaling.py."""
    files: dict[str, str] = {}
    if profile.llm_autoscaled() and profile.autoscaling.llm.scaler == "hpa":
        files[ADAPTER_RULES] = adapter_rules(profile)
    return Part(settings=settings(profile), files=files)

"""LLM server alerts (vLLM metrics, Ollama probed by the blackbox exporter)."""

from __future__ import annotations

from ..bundle import Parts
from ..k8s import LLM_SERVER
from ..profile import Profile
from .base import (
    MODEL_LABEL,
    OLLAMA_PROBE_PATH,
    VLLM_E2E_BUCKETS,
    VLLM_TTFT_BUCKETS,
    Alert,
    count_proof,
    duration_text,
    fireable,
    gauge_proof,
    histogram_proof,
    num,
    p95,
    pct,
    seconds,
    selector,
    shares,
)


def ollama_probe_job(profile: Profile) -> str:
    return f"probe/{profile.namespace}/{LLM_SERVER}"  # prometheus-operator's own default for a Probe


def ollama_probe_url(profile: Profile) -> str:
    assert profile.llm is not None
    return f"http://{LLM_SERVER}.{profile.namespace}.svc:{profile.llm.port}{OLLAMA_PROBE_PATH}"


def llm_alerts(profile: Profile, parts: Parts) -> list[Alert]:
    llm = profile.llm
    if llm is None:
        return []
    ns = {"namespace": profile.namespace}
    if llm.server == "ollama":
        job = ollama_probe_job(profile)
        series = {"job": job, "instance": ollama_probe_url(profile)}
        return [Alert(
            "LlmServerDown", f"{selector('probe_success', {'job': job})} == 0", 2 * 60_000, "critical",
            "The Ollama server does not answer",
            f"The blackbox probe of {{{{ $labels.instance }}}} has failed for 2m (probe_success = 0); "
            f"Ollama has no /metrics, so availability is probed at {OLLAMA_PROBE_PATH}.",
            0, "blackbox probe of Ollama's /api/version", {"url": ollama_probe_url(profile)},
            gauge_proof("probe_success", series, 0, 1, for_ms=2 * 60_000))]
    series = {**ns, "instance": f"{LLM_SERVER}:{llm.port}", "job": LLM_SERVER, MODEL_LABEL: llm.model.name}
    by_model = {**ns, MODEL_LABEL: llm.model.name}
    by_instance = {**ns, "instance": series["instance"], MODEL_LABEL: llm.model.name}
    scaling = profile.autoscaling.llm
    waiting = "vllm:num_requests_waiting"
    queue_limit = llm.max_num_seqs * scaling.max_replicas
    util = profile.slo.pool_utilization_max
    latency_s = seconds(profile.slo.llm_latency_p95)
    ttft_s = seconds(profile.slo.llm_time_to_first_token_p95)
    by = f"namespace, {MODEL_LABEL}"
    return [
        Alert("LlmQueueSaturated", f"sum by ({by}) ({selector(waiting, ns)}) > {num(queue_limit)}",
              5 * 60_000, "warning", "LLM requests queue beyond what max replicas absorb",
              f"{{{{ $labels.{MODEL_LABEL} }}}} has more than {num(queue_limit)} requests in {waiting} "
              f"for 5m: a whole batch (llm.max_num_seqs {llm.max_num_seqs}) waiting per replica at max_replicas "
              f"{scaling.max_replicas}; the autoscaler cannot add more.",
              queue_limit, "llm.max_num_seqs x autoscaling.llm.max_replicas",
              {"max_num_seqs": llm.max_num_seqs, "max_replicas": scaling.max_replicas, "metric": waiting},
              count_proof(waiting, series, queue_limit, by_model, 5 * 60_000)),
        Alert("LlmKvCacheHigh",
              f"max by (namespace, instance, {MODEL_LABEL}) ({selector('vllm:kv_cache_usage_perc', ns)}) > {num(util)}",
              5 * 60_000, "warning", "vLLM KV cache nearly full",
              f"vLLM {{{{ $labels.instance }}}} uses more than {pct(util)} (slo.pool_utilization_max) of its "
              "KV cache for 5m: new sequences wait or are preempted.",
              util, "slo.pool_utilization_max", {"pool_utilization_max": util},
              gauge_proof("vllm:kv_cache_usage_perc", series, *shares(util, True),
                          by_instance, 5 * 60_000), possible=fireable(util, True)),
        Alert("LlmLatencyHigh", f"{p95('vllm:e2e_request_latency_seconds', ns, by)} > {num(latency_s)}",
              10 * 60_000, "warning", "LLM p95 latency above its SLO",
              f"p95 end-to-end latency of {{{{ $labels.{MODEL_LABEL} }}}} is above "
              f"{duration_text(profile.slo.llm_latency_p95)} (slo.llm_latency_p95) for 10m.",
              latency_s, "slo.llm_latency_p95, in seconds",
              {"llm_latency_p95": duration_text(profile.slo.llm_latency_p95)},
              histogram_proof("vllm:e2e_request_latency_seconds", series, latency_s, VLLM_E2E_BUCKETS, by_model,
                              10 * 60_000),
              possible=VLLM_E2E_BUCKETS[0] <= latency_s < VLLM_E2E_BUCKETS[-1]),
        Alert("LlmTimeToFirstTokenHigh", f"{p95('vllm:time_to_first_token_seconds', ns, by)} > {num(ttft_s)}",
              10 * 60_000, "warning", "LLM time to first token above its SLO",
              f"p95 time to first token of {{{{ $labels.{MODEL_LABEL} }}}} is above "
              f"{duration_text(profile.slo.llm_time_to_first_token_p95)} (slo.llm_time_to_first_token_p95) "
              "for 10m: prefill is queueing.",
              ttft_s, "slo.llm_time_to_first_token_p95, in seconds",
              {"llm_time_to_first_token_p95": duration_text(profile.slo.llm_time_to_first_token_p95)},
              histogram_proof("vllm:time_to_first_token_seconds", series, ttft_s, VLLM_TTFT_BUCKETS, by_model,
                              10 * 60_000),
              possible=VLLM_TTFT_BUCKETS[0] <= ttft_s < VLLM_TTFT_BUCKETS[-1]),
    ]

"""Application settings: app/performance.env (KEY=value, plain units) and the ConfigMap carrying the same data."""

from __future__ import annotations

from generators import app
from generators.k8s import CHECKSUM_ANNOTATION, checksum_of
from generators.render import render

from .conftest import rendered_bundle, variant

PROD_ENV = {
    "COMPRESSION_ENABLED": "true",
    "COMPRESSION_MIN_SIZE_BYTES": "1024",
    "DB_MAX_OVERFLOW": "40",
    "DB_POOL_PRE_PING": "true",
    "DB_POOL_RECYCLE_SECONDS": "3600",
    "DB_POOL_SIZE": "20",
    "DB_POOL_TIMEOUT_SECONDS": "30",
    "DB_PREPARE_THRESHOLD": "5",
    "HTTP_MAX_CONNECTIONS": "100",
    "HTTP_TIMEOUT_SECONDS": "60",
    "LLM_BATCH_SIZE": "10",
    "LLM_BATCH_TIMEOUT_SECONDS": "0.1",
    "LLM_CACHE_SIZE": "3000",
    "LLM_CACHE_TTL_SECONDS": "1800",
    "LLM_CLIENT_MAX_CONNECTIONS": "10",
    "LLM_MODEL": "meta-llama/Llama-3.1-8B-Instruct",
    "LLM_REQUEST_TIMEOUT_SECONDS": "180",
    # the latency histograms' buckets (app.latency_buckets defaults: the instrumentation libraries' own)
    "METRICS_DB_QUERY_BUCKETS_SECONDS": "0.005,0.01,0.025,0.05,0.1,0.2,0.5,1,2.5,5",
    "METRICS_HTTP_BUCKETS_SECONDS": "0.1,0.25,0.5,1,2,5,10,30",
    "METRICS_LLM_BUCKETS_SECONDS": "0.1,0.25,0.5,1,2.5,5,10,20,30,60",
    "METRICS_WORKFLOW_BUCKETS_SECONDS": "1,5,15,30,60,120,300,600,1800",
    "PAGINATION_DEFAULT_PAGE_SIZE": "50",
    "PAGINATION_MAX_PAGE_SIZE": "500",
    "QUERY_CACHE_SIZE": "2000",
    "QUERY_CACHE_TTL_SECONDS": "300",
    "RATE_LIMIT_BURST": "100",
    "REDIS_HEALTH_CHECK_INTERVAL_SECONDS": "30",
    "REDIS_MAX_CONNECTIONS": "20",
    "REDIS_SOCKET_CONNECT_TIMEOUT_SECONDS": "1",
    "REDIS_SOCKET_TIMEOUT_SECONDS": "2",
    "REDIS_USERNAME": "app",
    "RATE_LIMIT_REQUESTS_PER_SECOND": "50",
    "RETRY_ATTEMPTS": "3",
    "RETRY_BACKOFF_BASE_SECONDS": "0.1",
    "RETRY_BACKOFF_MAX_SECONDS": "5",
    "WORKFLOW_BEAM_WIDTH": "3",
    "WORKFLOW_CHECKPOINT_EVERY": "3",
    "WORKFLOW_CONVERGENCE_THRESHOLD": "0.05",
    "WORKFLOW_EARLY_TERMINATION_THRESHOLD": "0.9",
    "WORKFLOW_MAX_ITERATIONS": "15",
}


def _env(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all("=" in line and " " not in line.split("=", 1)[0] for line in lines)
    return dict(line.split("=", 1) for line in lines)


def test_prod_performance_env() -> None:
    bundle = rendered_bundle("prod")
    assert _env(bundle.files["app/performance.env"]) == PROD_ENV


def test_dev_differs_where_its_profile_does() -> None:
    env = _env(rendered_bundle("dev").files["app/performance.env"])
    assert {k: v for k, v in env.items() if PROD_ENV.get(k) != v} == {"DB_MAX_OVERFLOW": "10", "LLM_MODEL": "llama3.1:8b"}


def test_values_follow_the_profile_in_plain_units() -> None:
    profile = variant("prod", {"app": {
        "db_pool": {"size": 7, "max_overflow": 3, "pre_ping": False, "recycle": "30m", "timeout": "1500ms"},
        "query_cache": {"size": 10, "ttl": "1h"}, "http": {"timeout": "90s", "max_connections": 5},
        "retry": {"attempts": 5, "backoff_base": "250ms", "backoff_max": "1m"},
        "compression": {"enabled": False, "min_size": "4KiB"}, "rate_limit": {"requests_per_second": 9, "burst": 18}}})
    env = {s.key: s.text for s in app.settings(profile)}
    assert env["DB_POOL_SIZE"] == "7" and env["DB_MAX_OVERFLOW"] == "3"
    assert env["DB_POOL_PRE_PING"] == "false"
    assert env["DB_POOL_RECYCLE_SECONDS"] == "1800"
    assert env["DB_POOL_TIMEOUT_SECONDS"] == "1.5"
    assert env["QUERY_CACHE_SIZE"] == "10" and env["QUERY_CACHE_TTL_SECONDS"] == "3600"
    assert env["HTTP_TIMEOUT_SECONDS"] == "90" and env["HTTP_MAX_CONNECTIONS"] == "5"
    assert env["RETRY_ATTEMPTS"] == "5"
    assert env["RETRY_BACKOFF_BASE_SECONDS"] == "0.25" and env["RETRY_BACKOFF_MAX_SECONDS"] == "60"
    assert env["COMPRESSION_ENABLED"] == "false" and env["COMPRESSION_MIN_SIZE_BYTES"] == "4096"
    assert env["RATE_LIMIT_REQUESTS_PER_SECOND"] == "9" and env["RATE_LIMIT_BURST"] == "18"


def test_config_map_carries_the_same_data_and_its_checksum() -> None:
    bundle = rendered_bundle("prod")
    [config] = [o for o in bundle.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "api-performance"]
    assert config["metadata"]["namespace"] == "ai-platform"
    assert config["data"] == PROD_ENV
    assert config["metadata"]["annotations"] == {CHECKSUM_ANNOTATION: checksum_of(PROD_ENV)}
    changed = render(variant("prod", {"app": {"db_pool": {"size": 21}}}))
    [other] = [o for o in changed.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "api-performance"]
    assert other["metadata"]["annotations"][CHECKSUM_ANNOTATION] != config["metadata"]["annotations"][CHECKSUM_ANNOTATION]


def test_config_map_is_named_after_the_app_deployment() -> None:
    assert app.config_map_name(variant("prod", {"app": {"deployment": "web"}})) == "web-performance"


def test_without_an_llm_there_are_no_llm_client_keys() -> None:
    env = {s.key for s in app.settings(variant("prod", {"llm": None}))}
    assert "LLM_MODEL" not in env and "LLM_REQUEST_TIMEOUT_SECONDS" not in env
    assert "LLM_CACHE_SIZE" in env


def test_explain_names_the_profile_key() -> None:
    setting = rendered_bundle("prod").setting("app.DB_POOL_SIZE")
    assert setting is not None and setting.rule == "given by app.db_pool.size" and setting.text == "20"
    setting = rendered_bundle("prod").setting("app.RETRY_BACKOFF_BASE_SECONDS")
    assert setting is not None and setting.inputs == {"backoff_base": "100ms"}


def test_no_secret_in_the_env_file() -> None:
    for env in ("dev", "prod"):
        text = rendered_bundle(env).files["app/performance.env"].lower()
        assert "password" not in text and "secret" not in text

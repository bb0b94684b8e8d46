"""PgBouncer and Redis checks, each one step over its line and exactly at it: per-user pools, the surge pod,
pool modes, queue wait and reserve timeouts, the database host and its TLS, Redis's maxmemory 0, the queue's
fsync, the app's Redis pool and health check; the prod lint's server TLS and CVE refusals; the versions'
settings (`pgbouncer.settings`, `redis.settings`) validated at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from generators import lint, pgbouncer, redis, serverversions
from generators.bundle import Finding
from generators.errors import CheckError, ProfileError
from generators.render import config_parts, render

from .conftest import run_checks, run_cli, variant


def errors(base: str, overrides: dict[str, Any], name: str) -> list[Finding]:
    return [f for f in run_checks(variant(base, overrides)) if f.severity == "error" and f.check == name]


# ---------------------------------------------------------------- the connection budget
def test_a_second_role_doubles_the_server_connections_and_max_db_connections_enforces_them() -> None:
    two = {"pgbouncer": {"users": ["app", "reporting"]}}
    parts = config_parts(variant("prod", two))
    # one pool per (database, user): 2 replicas x 1 database x 2 users x (20 + 5) = 100
    assert parts.pgbouncer.derived["server_connections"] == 100
    assert parts.pgbouncer.value("max_db_connections") == 50  # per PgBouncer and database: 2 x (20 + 5)
    assert config_parts(variant("prod", {})).pgbouncer.value("max_db_connections") == 25
    # + 50 for PgBouncer's own surge pod while it rolls: 153 - 3 reserved = 150 fits exactly; 152 does not.
    assert errors("prod", {**two, "postgres": {"max_connections": 153}}, "pgbouncer_fits_postgres") == []
    [error] = errors("prod", {**two, "postgres": {"max_connections": 152}}, "pgbouncer_fits_postgres")
    assert "2 replicas x 1 databases x 2 users (one pool per database and user) x (20 + 5) = 100 server connections" \
        ", + 50 for the surge pod of its own rolling update = 150" in error.message
    assert error.keys[0] == "pgbouncer.users"


def test_an_override_of_max_db_connections_caps_the_budget() -> None:
    parts = config_parts(variant("prod", {"pgbouncer": {"users": ["app", "reporting"],
                                                        "settings": {"max_db_connections": 30}}}))
    assert parts.pgbouncer.value("max_db_connections") == 30
    assert parts.pgbouncer.derived["server_connections"] == 60  # 2 replicas x 1 database x 30
    assert "max_db_connections = 30" in parts.pgbouncer.files["pgbouncer/pgbouncer.ini"]


def test_the_surge_pod_is_counted() -> None:
    # max_surge 0: 20 pods x 60 = 1200 on 2 x 600; max_surge 1: 21 x 60 = 1260 does not fit.
    assert errors("prod", {"app": {"max_surge": 0}, "pgbouncer": {"max_client_conn": 600}}, "app_fits_pgbouncer") == []
    [error] = errors("prod", {"app": {"max_surge": 1}, "pgbouncer": {"max_client_conn": 600}}, "app_fits_pgbouncer")
    assert "20 + 1 rolling-update surge" in error.message and "= 1260 client connections" in error.message


# ---------------------------------------------------------------- pool modes
def session(size: int) -> dict[str, Any]:
    return {"pgbouncer": {"pool_mode": "session"}, "app": {"db_pool": {"size": size, "max_overflow": 0}}}


def test_session_mode_with_more_clients_than_server_connections_is_refused() -> None:
    # prod: (20 + 5 surge) pods x 2 = 50 clients on 2 x 25 = 50 server connections: each has one.
    assert errors("prod", session(2), "pgbouncer_pool_mode_fits_app") == []
    [error] = errors("prod", session(3), "pgbouncer_pool_mode_fits_app")
    assert "25 pods (max_replicas + surge) x 3 = 75 client connections on 50 server connections" in error.message
    assert error.keys[0] == "pgbouncer.pool_mode"


def test_statement_mode_is_refused_for_an_app_with_multi_statement_transactions() -> None:
    [error] = errors("prod", {"pgbouncer": {"pool_mode": "statement"}}, "pgbouncer_pool_mode_fits_app")
    assert "refuses every transaction of more than one statement" in error.message
    assert errors("prod", {"pgbouncer": {"pool_mode": "statement"}, "app": {"multi_statement_transactions": False}},
                  "pgbouncer_pool_mode_fits_app") == []
    # An override of pool_mode is judged (and named) the same way.
    [error] = errors("prod", {"pgbouncer": {"settings": {"pool_mode": "statement"}}}, "pgbouncer_pool_mode_fits_app")
    assert error.keys[0] == "pgbouncer.settings.pool_mode"


# ---------------------------------------------------------------- timeouts
def test_query_timeout_covers_the_queue_wait_and_the_statement() -> None:
    # prod: query_wait_timeout 5s + statement_timeout 30s = 35s: query_timeout 35s is at the line.
    assert errors("prod", {"pgbouncer": {"query_timeout": "35s"}}, "query_timeout_covers_wait") == []
    [error] = errors("prod", {"pgbouncer": {"query_timeout": "34999ms"}}, "query_timeout_covers_wait")
    assert "query_wait_timeout 5s + postgres.statement_timeout 30s = 35000 ms" in error.message


@pytest.mark.parametrize(("overrides", "check", "ok", "bad"), [
    # app.db_pool.timeout 30s must be above query_wait_timeout (strict)
    ({"pgbouncer": {"query_timeout": "0"}}, "db_pool_timeout_above_query_wait_timeout",
     {"pgbouncer": {"query_wait_timeout": "29999ms"}}, {"pgbouncer": {"query_wait_timeout": "30s"}}),
    # the 200 ms query SLO covers reserve_pool_timeout
    ({}, "reserve_pool_within_query_slo", {"pgbouncer": {"reserve_pool_timeout": "200ms"}},
     {"pgbouncer": {"reserve_pool_timeout": "201ms"}}),
    # redis.timeout 300s above the app's health-check interval (strict)
    ({}, "redis_health_check_within_idle_timeout", {"app": {"redis_client": {"health_check_interval": "299s"}}},
     {"app": {"redis_client": {"health_check_interval": "300s"}}}),
])
def test_timeout_rows_at_and_over_the_line(overrides: dict[str, Any], check: str, ok: dict[str, Any],
                                           bad: dict[str, Any]) -> None:
    def named(extra: dict[str, Any]) -> list[Finding]:
        merged = variant("prod", _merge(overrides, extra))
        return [f for f in run_checks(merged) if f.check == check]

    assert named(ok) == []
    [error] = named(bad)
    assert error.severity == "error"


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_the_example_timeouts_as_rendered() -> None:
    parts = config_parts(variant("prod", {}))
    values = {k: parts.pgbouncer.value(k) for k in ("query_wait_timeout", "reserve_pool_timeout",
                                                    "idle_transaction_timeout", "server_lifetime", "query_timeout")}
    assert values == {"query_wait_timeout": 5000, "reserve_pool_timeout": 100, "idle_transaction_timeout": 60_000,
                      "server_lifetime": 3_600_000, "query_timeout": 35_000}


def test_keepalives_and_log_churn_rules() -> None:
    prod = {s.key: s.text for s in pgbouncer.settings(variant("prod", {}))}
    dev = {s.key: s.text for s in pgbouncer.settings(variant("dev", {}))}
    assert {k: prod[k] for k in pgbouncer.KEEPALIVE} == {"tcp_keepalive": "1", "tcp_keepidle": "60",
                                                         "tcp_keepintvl": "10", "tcp_keepcnt": "6"}
    assert (prod["log_connections"], prod["log_disconnections"]) == ("0", "0")  # production: no churn
    assert (dev["log_connections"], dev["log_disconnections"]) == ("1", "1")
    assert prod["log_pooler_errors"] == "1"


# ---------------------------------------------------------------- the database host and TLS
def test_an_external_database_needs_server_host() -> None:
    [error] = errors("prod", {"pgbouncer": {"server_host": None}}, "pgbouncer_server_host")
    assert "pgbouncer.server_host must name the database's host" in error.message
    assert errors("prod", {"pgbouncer": {"server_host": None}, "kubernetes": {"postgres": "cloudnativepg"}},
                  "pgbouncer_server_host") == []
    assert config_parts(variant("dev", {})).pgbouncer.derived["server_host"] == "postgres"


def test_verify_full_needs_the_ca_secret_and_mounts_it() -> None:
    [error] = errors("dev", {"pgbouncer": {"server_tls_sslmode": "verify-full"}}, "pgbouncer_server_host")
    assert "secrets.postgres_ca" in error.message
    with_ca = variant("dev", {"pgbouncer": {"server_tls_sslmode": "verify-full"},
                              "secrets": {"postgres_ca": {"secret": "pg-ca", "key": "ca.crt"}}})
    assert errors("dev", {"pgbouncer": {"server_tls_sslmode": "verify-full"},
                          "secrets": {"postgres_ca": {"secret": "pg-ca", "key": "ca.crt"}}}, "pgbouncer_server_host") == []
    keys = {s.key: s.text for s in pgbouncer.settings(with_ca)}
    assert keys["server_tls_sslmode"] == "verify-full" and keys["server_tls_ca_file"] == "/etc/pgbouncer/server-ca.crt"
    deployment = next(o for o in render(with_ca).objects if o["kind"] == "Deployment" and
                      o["metadata"]["name"] == "pgbouncer")
    sources = deployment["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]
    assert {"secret": {"name": "pg-ca", "items": [{"key": "ca.crt", "path": "server-ca.crt"}]}} in sources


def prod_lint(overrides: dict[str, Any]) -> list[str]:
    profile = variant("prod", overrides)
    parts = config_parts(profile)
    return [f.message for f in lint.findings(profile, parts, [])]


def test_prod_lint_refuses_an_unverified_external_database() -> None:
    assert not [m for m in prod_lint({}) if "server_tls_sslmode" in m]
    for mode in (None, "require", "verify-ca"):
        [message] = [m for m in prod_lint({"pgbouncer": {"server_tls_sslmode": mode}}) if "server_tls_sslmode" in m]
        assert f"server_tls_sslmode {mode or 'prefer'}" in message
    with pytest.raises(CheckError, match="pgbouncer.server_tls_sslmode: prod lint"):
        render(variant("prod", {"pgbouncer": {"server_tls_sslmode": "require"}}))


def test_prod_lint_refuses_releases_with_known_cves() -> None:
    assert not [m for m in prod_lint({}) if "vulnerabilities" in m]
    [message] = [m for m in prod_lint({"pgbouncer": {"version": "1.24"}}) if "vulnerabilities" in m]
    assert "PgBouncer 1.24.1" in message and "CVE-2026-6664" in message
    [message] = [m for m in prod_lint({"redis": {"version": "7.0"}}) if "vulnerabilities" in m]
    assert "Redis 7.0.15" in message and "CVE-2025-49844" in message
    # Outside production the lint does not apply (the local test servers are 1.18 and 7.0).
    assert lint.findings(variant("dev", {"pgbouncer": {"version": "1.18"}}), config_parts(variant("dev", {})), []) == []


def test_images_come_from_the_version_table() -> None:
    bundle = render(variant("prod", {}))
    images = {o["metadata"]["name"]: o["spec"]["template"]["spec"]["containers"][0]["image"]
              for o in bundle.objects if o["kind"] in ("Deployment", "StatefulSet")
              and o["metadata"]["name"] in ("pgbouncer", "redis", "redis-queue")}
    assert images == {"pgbouncer": "ghcr.io/cloudnative-pg/pgbouncer:1.26.1", "redis": "docker.io/library/redis:8.2.9",
                      "redis-queue": "docker.io/library/redis:8.2.9"}
    assert not serverversions.PGBOUNCER_RELEASES[serverversions.PGBOUNCER_DEFAULT].cves
    assert not serverversions.REDIS_RELEASES[serverversions.REDIS_DEFAULT].cves


# ---------------------------------------------------------------- Redis
def test_maxmemory_zero_is_refused() -> None:
    [error] = errors("prod", {"redis": {"maxmemory": 0}}, "redis_maxmemory_bounded")
    assert "0 means no limit" in error.message
    # A share that rounds to 0 bytes is refused while the profile loads, before any check runs.
    with pytest.raises(ProfileError, match="comes to 0 bytes"):
        errors("prod", {"redis": {"maxmemory": "0%"}}, "redis_maxmemory_bounded")
    assert errors("prod", {"redis": {"maxmemory": "1MiB"}}, "redis_maxmemory_bounded") == []


def test_a_queue_fsyncs_every_write() -> None:
    queue = {"redis": {"role": "queue", "persistence": "aof", "maxmemory": "40%"}}
    parts = config_parts(variant("prod", queue))
    assert parts.redis.value("appendfsync") == "always" and parts.redis.value("maxmemory-policy") == "noeviction"
    assert errors("prod", queue, "redis_queue_keeps_jobs") == []
    [error] = errors("prod", _merge(queue, {"redis": {"appendfsync": "everysec"}}), "redis_queue_keeps_jobs")
    assert "appendfsync always (is everysec" in error.message and error.keys[0] == "redis.appendfsync"


def test_cache_eviction_and_lazyfree() -> None:
    parts = config_parts(variant("prod", {}))
    assert parts.redis.value("maxmemory-policy") == "allkeys-lfu"  # the cache holds LLM answers
    no_llm = variant("prod", {}).model_copy(update={"llm": None})
    assert redis.eviction_policy(no_llm).text == "allkeys-lru"
    assert all(parts.redis.value(key) is True for key in redis.LAZYFREE)
    queue = config_parts(variant("prod", {"redis": {"role": "queue", "persistence": "aof", "maxmemory": "40%"}}))
    assert queue.redis.get("lazyfree-lazy-eviction") is None  # a queue never evicts


def test_the_app_redis_pools_fit_maxclients() -> None:
    # prod: (20 + 5 surge) pods x 400 = 10000 = maxclients.
    assert errors("prod", {"app": {"redis_client": {"max_connections": 400}}}, "redis_clients_fit") == []
    [error] = errors("prod", {"app": {"redis_client": {"max_connections": 401}}}, "redis_clients_fit")
    assert "= 10025 Redis connections exceed maxclients 10000" in error.message
    assert errors("prod", {"app": {"redis_client": {"max_connections": 401}}, "redis": {"settings": {
        "maxclients": 20000}}}, "redis_clients_fit") == []


def test_redis_runs_as_non_root() -> None:
    bundle = render(variant("prod", {}))
    for obj in bundle.objects:
        if obj["kind"] in ("Deployment", "StatefulSet") and obj["metadata"]["name"] in ("redis", "redis-queue"):
            pod = obj["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 999
            assert pod["containers"][0]["securityContext"]["runAsNonRoot"] is True


# ---------------------------------------------------------------- settings overrides, validated at load
def refused(overrides: dict[str, Any]) -> str:
    with pytest.raises(ProfileError) as caught:
        variant("prod", overrides)
    return str(caught.value)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"pgbouncer": {"settings": {"max_client_con": 10}}}, "unknown PgBouncer setting; did you mean 'max_client_conn'?"),
    ({"pgbouncer": {"settings": {"max_client_conn": "many"}}}, "max_client_conn takes a whole number"),
    ({"pgbouncer": {"settings": {"max_client_conn": 0}}}, "max_client_conn 0 is outside 1..1000000"),
    ({"pgbouncer": {"settings": {"log_connections": 1}}}, "log_connections takes true or false"),
    ({"pgbouncer": {"settings": {"pool_mode": "sessions"}}}, "pool_mode takes one of session, transaction, statement"),
    ({"pgbouncer": {"settings": {"auth_file": "/tmp/x"}}}, "auth_file is wired by perfstack"),
    ({"pgbouncer": {"version": "1.18", "settings": {"max_prepared_statements": 100}}},
     "PgBouncer 1.18 has no max_prepared_statements (it appeared in PgBouncer 1.21)"),
    ({"redis": {"settings": {"lazyfree-lazy-evict": True}}}, "did you mean 'lazyfree-lazy-eviction'?"),
    ({"redis": {"settings": {"hz": 1000}}}, "hz 1000 is outside 1..500"),
    ({"redis": {"settings": {"timeout": "1500ms"}}}, "timeout is whole seconds in Redis"),
    ({"redis": {"version": "9.9"}}, "redis.version"),
])
def test_bad_overrides_are_refused_at_the_key(overrides: dict[str, Any], message: str) -> None:
    text = refused(overrides)
    assert message in text, text


def test_overrides_win_and_are_read_in_the_rules_unit() -> None:
    parts = config_parts(variant("prod", {"pgbouncer": {"settings": {"query_wait_timeout": "2s",
                                                                     "server_check_delay": 10}},
                                          "redis": {"settings": {"maxmemory-samples": 10, "hz": 50,
                                                                 "appendfsync": "no"}}}))
    assert parts.pgbouncer.value("query_wait_timeout") == 2000  # ms, as the rule's value
    assert parts.pgbouncer.setting("query_wait_timeout").rule.startswith("given by pgbouncer.settings.query_wait_timeout")
    assert "server_check_delay = 10" in parts.pgbouncer.files["pgbouncer/pgbouncer.ini"]
    conf = parts.redis.files["redis/redis.conf"]
    assert "\nmaxmemory-samples 10\n" in conf and "\nhz 50\n" in conf and "\nappendfsync no\n" in conf
    assert "appendfsync everysec" not in conf


def test_cli_names_the_file_line_and_key_of_a_bad_override(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    for name in ("base", "prod"):
        (folder / f"{name}.yaml").write_text((Path(__file__).parents[1] / "profiles" / f"{name}.yaml").read_text())
    (folder / "tuned.yaml").write_text("extends: prod\nenvironment: tuned\nnamespace: tuned\npgbouncer:\n"
                                       "  settings:\n    server_lifetim: 600\n")
    result = run_cli("--profiles-dir", folder, "validate", "tuned")
    assert result.exit_code == 2
    assert "tuned.yaml:6:5: pgbouncer.settings.server_lifetim: unknown PgBouncer setting; did you mean " \
           "'server_lifetime'?" in result.stderr

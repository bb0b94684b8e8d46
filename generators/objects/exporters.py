"""The exporters the alerts read, and the ServiceMonitors and PodMonitors that make Prometheus scrape them.

- PostgreSQL: an external database gets a postgres_exporter Deployment; CloudNativePG (dev) exports from its
  own instance manager: a PodMonitor scrapes it and its custom-queries ConfigMap (referenced from the
  Cluster) produces the pg_* series the rules read. The instance manager prefixes every custom query with
  `cnpg_` and names its own collector `cnpg_collector_*`; the PodMonitor's metric relabelling drops the
  prefix (cnpg_pg_stat_database_* -> pg_stat_database_*, cnpg_collector_up -> pg_up), so one rule set reads
  either database.
- PgBouncer: pgbouncer_exporter as a sidecar of every PgBouncer pod (a Deployment beside them would see one
  replica per scrape), logging into the admin console as auth_user (pgbouncer.stats_users includes it).
- Redis: redis_exporter as a Deployment beside the single Redis.
- vLLM: its own /metrics, through a ServiceMonitor on the LLM Service (Ollama: the Probe, monitoring.py).
- The app (the user's Deployment app.deployment): a PodMonitor on its pods' labels and metrics port
  (app.metrics), its job relabelled to app.deployment.

Every credential comes from the Secrets the servers use (profile.secrets), by secretKeyRef; none is
written here. Images are pinned to the versions whose names generators/metrics.py verified. Every monitor
carries the label `release: <monitoring.release>`, which kube-prometheus-stack selects monitors by.
"""

from __future__ import annotations

from typing import Any

from .. import formats, metrics, scrape
from ..k8s import LLM_SERVER, USERNAME_KEY, config_map, dump_yaml, labels, metadata
from ..profile import Profile

CNPG_CLUSTER = "postgres"  # objects/workloads.POSTGRES_CLUSTER: CloudNativePG labels its pods cnpg.io/cluster
CNPG_QUERIES = "postgres-monitoring-queries"  # the custom-queries ConfigMap the Cluster references
CNPG_QUERIES_KEY = "queries"
# A scrape's worth of CPU and memory: the exporters hold one connection and a few hundred series.
EXPORTER_RESOURCES = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "250m", "memory": "128Mi"}}
SECURITY = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
            "runAsUser": 65534}

# CloudNativePG's custom queries, written so that (after the PodMonitor drops the `cnpg_` prefix) they
# produce the postgres_exporter names and labels the rules read. Query name + "_" + column = metric name.
CNPG_CUSTOM_QUERIES: dict[str, dict[str, Any]] = {
    "pg_stat_activity": {
        "query": "SELECT d.datname, s.state, count(a.pid) AS count, "
                 "COALESCE(max(EXTRACT(EPOCH FROM now() - a.xact_start)), 0) AS max_tx_duration "
                 "FROM pg_database d CROSS JOIN (VALUES ('active'), ('idle'), ('idle in transaction'), "
                 "('idle in transaction (aborted)'), ('fastpath function call'), ('disabled')) AS s(state) "
                 "LEFT JOIN pg_stat_activity a ON a.datname = d.datname AND a.state = s.state "
                 "WHERE d.datallowconn GROUP BY d.datname, s.state",
        "metrics": [{"datname": {"usage": "LABEL", "description": "database"}},
                    {"state": {"usage": "LABEL", "description": "connection state"}},
                    {"count": {"usage": "GAUGE", "description": "connections in this state"}},
                    {"max_tx_duration": {"usage": "GAUGE", "description": "oldest open transaction, seconds"}}],
    },
    "pg_stat_database": {
        "query": "SELECT datname, blks_hit, blks_read, xact_commit, xact_rollback, deadlocks "
                 "FROM pg_stat_database WHERE datname IS NOT NULL",
        "metrics": [{"datname": {"usage": "LABEL", "description": "database"}},
                    *({column: {"usage": "COUNTER", "description": f"pg_stat_database.{column}"}}
                      for column in ("blks_hit", "blks_read", "xact_commit", "xact_rollback", "deadlocks"))],
    },
    "pg_settings": {
        "query": "SELECT current_setting('max_connections')::float AS max_connections, "
                 "current_setting('superuser_reserved_connections')::float AS superuser_reserved_connections",
        "metrics": [{"max_connections": {"usage": "GAUGE", "description": "max_connections"}},
                    {"superuser_reserved_connections": {"usage": "GAUGE",
                                                        "description": "superuser_reserved_connections"}}],
    },
    "pg_locks": {
        "query": "SELECT d.datname, count(l.pid) AS count FROM pg_database d "
                 "LEFT JOIN pg_locks l ON l.database = d.oid WHERE d.datallowconn GROUP BY d.datname",
        "metrics": [{"datname": {"usage": "LABEL", "description": "database"}},
                    {"count": {"usage": "GAUGE", "description": "locks held"}}],
    },
    "pg_database": {
        "query": "SELECT datname, pg_database_size(datname) AS size_bytes FROM pg_database WHERE datallowconn",
        "metrics": [{"datname": {"usage": "LABEL", "description": "database"}},
                    {"size_bytes": {"usage": "GAUGE", "description": "database size"}}],
    },
}
# cnpg_<name> -> <name>, and the instance manager's own health in postgres_exporter's names.
CNPG_RELABEL = [
    {"sourceLabels": ["__name__"], "regex": "cnpg_collector_up", "targetLabel": "__name__", "replacement": "pg_up",
     "action": "replace"},
    {"sourceLabels": ["__name__"], "regex": "cnpg_collector_last_collection_error", "targetLabel": "__name__",
     "replacement": "pg_exporter_last_scrape_error", "action": "replace"},
    {"sourceLabels": ["__name__"], "regex": "cnpg_(pg_.+)", "targetLabel": "__name__", "replacement": "$1",
     "action": "replace"},
]


def cnpg_metric_names() -> set[str]:
    """The pg_* names the custom queries and the relabelling yield (tests: they cover what the rules read)."""
    names = {"pg_up", "pg_exporter_last_scrape_error"}
    for query, spec in CNPG_CUSTOM_QUERIES.items():
        for column in spec["metrics"]:
            ((name, desc),) = column.items()
            if desc["usage"] != "LABEL":
                names.add(f"{query}_{name}")
    return names


def _monitor_labels(profile: Profile) -> dict[str, str]:
    return {"release": profile.monitoring.release}


def _selector(profile: Profile, component: str) -> dict[str, str]:
    return {k: v for k, v in labels(profile, component).items()
            if k in ("app.kubernetes.io/name", "app.kubernetes.io/part-of")}


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _metrics_port(port: int) -> list[dict[str, Any]]:
    return [{"name": scrape.METRICS_PORT, "containerPort": port, "protocol": "TCP"}]


def _probes() -> dict[str, Any]:
    return {"readinessProbe": {"tcpSocket": {"port": scrape.METRICS_PORT}, "periodSeconds": 10},
            "livenessProbe": {"tcpSocket": {"port": scrape.METRICS_PORT}, "periodSeconds": 20, "failureThreshold": 6}}


def _image(exporter: metrics.Exporter) -> str:
    assert exporter.image is not None
    return exporter.image


def _service(profile: Profile, name: str, selector: dict[str, str], port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(profile, name, name),
            "spec": {"type": "ClusterIP", "selector": selector,
                     "ports": [{"name": scrape.METRICS_PORT, "port": port, "targetPort": scrape.METRICS_PORT,
                                "protocol": "TCP"}]}}


def _deployment(profile: Profile, name: str, container: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(profile, name, name),
            "spec": {"replicas": 1, "selector": {"matchLabels": _selector(profile, name)},
                     "template": {"metadata": {"labels": labels(profile, name)},
                                  "spec": {"containers": [container], "automountServiceAccountToken": False}}}}


def service_monitor(profile: Profile, name: str, service_component: str, port: str) -> dict[str, Any]:
    """Scrapes the Service labelled app.kubernetes.io/name=<service_component>; the job is the Service's name."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": metadata(profile, name, service_component, _monitor_labels(profile)),
            "spec": {"selector": {"matchLabels": _selector(profile, service_component)},
                     "namespaceSelector": {"matchNames": [profile.namespace]},
                     "endpoints": [{"port": port, "path": "/metrics"}]}}


# ---------------------------------------------------------------- PostgreSQL
def _data_source_uri(profile: Profile) -> str:
    """host:port/database?sslmode=require (postgres_exporter's DATA_SOURCE_URI): host and database bare
    (formats.connstring_value refuses anything a URI would read differently)."""
    pb = profile.pgbouncer
    host = formats.connstring_value(pb.server_host) if pb.server_host else ""  # none: checks refuse the profile
    return f"{host}:{pb.server_port}/{formats.connstring_value(pb.databases[0])}?sslmode=require"


def postgres_exporter_container(profile: Profile) -> dict[str, Any]:
    secret = profile.secrets.postgres_password
    return {
        "name": scrape.POSTGRES_EXPORTER, "image": _image(metrics.POSTGRES),
        "args": [f"--web.listen-address=:{scrape.POSTGRES_EXPORTER_PORT}"],
        # The role of the same Secret PgBouncer's userlist and CloudNativePG's bootstrap read; it needs
        # pg_monitor to see other sessions in pg_stat_activity.
        "env": [{"name": "DATA_SOURCE_URI", "value": _data_source_uri(profile)},
                _secret_env("DATA_SOURCE_USER", secret.secret, USERNAME_KEY),
                _secret_env("DATA_SOURCE_PASS", secret.secret, secret.key)],
        "ports": _metrics_port(scrape.POSTGRES_EXPORTER_PORT), "resources": EXPORTER_RESOURCES,
        "securityContext": SECURITY, **_probes(),
    }


def cnpg_queries(profile: Profile) -> dict[str, Any]:
    return config_map(profile, CNPG_QUERIES, "postgres", {CNPG_QUERIES_KEY: dump_yaml(CNPG_CUSTOM_QUERIES)},
                      {"cnpg.io/reload": ""})


def cnpg_monitoring() -> dict[str, Any]:
    """The Cluster's spec.monitoring: the custom queries above (CloudNativePG's defaults stay on)."""
    return {"customQueriesConfigMap": [{"name": CNPG_QUERIES, "key": CNPG_QUERIES_KEY}]}


def cnpg_pod_monitor(profile: Profile) -> dict[str, Any]:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
            "metadata": metadata(profile, scrape.POSTGRES_EXPORTER, "postgres", _monitor_labels(profile)),
            "spec": {"selector": {"matchLabels": {"cnpg.io/cluster": CNPG_CLUSTER, "cnpg.io/podRole": "instance"}},
                     "namespaceSelector": {"matchNames": [profile.namespace]},
                     "podMetricsEndpoints": [{
                         "port": scrape.METRICS_PORT, "path": "/metrics",
                         "relabelings": [{"targetLabel": "job", "replacement": scrape.POSTGRES_EXPORTER,
                                          "action": "replace"}],
                         "metricRelabelings": CNPG_RELABEL}]}}


def postgres_objects(profile: Profile) -> list[dict[str, Any]]:
    if profile.kubernetes.postgres == "cloudnativepg":
        return [cnpg_queries(profile), cnpg_pod_monitor(profile)]
    name = scrape.POSTGRES_EXPORTER
    return [_deployment(profile, name, postgres_exporter_container(profile)),
            _service(profile, name, _selector(profile, name), scrape.POSTGRES_EXPORTER_PORT),
            service_monitor(profile, name, name, scrape.METRICS_PORT)]


# ---------------------------------------------------------------- PgBouncer
def pgbouncer_connection_string(profile: Profile) -> str:
    """libpq keywords; user and password come from PGUSER and PGPASSWORD (lib/pq reads both)."""
    sslmode = "require" if profile.pgbouncer.client_tls else "disable"
    return f"host=127.0.0.1 port={profile.pgbouncer.listen_port} dbname=pgbouncer sslmode={sslmode}"


def pgbouncer_sidecar(profile: Profile) -> dict[str, Any]:
    secret = profile.secrets.postgres_password
    return {
        "name": scrape.PGBOUNCER_EXPORTER, "image": _image(metrics.PGBOUNCER),
        "args": [f"--web.listen-address=:{scrape.PGBOUNCER_EXPORTER_PORT}"],
        "env": [{"name": "PGBOUNCER_EXPORTER_CONNECTION_STRING", "value": pgbouncer_connection_string(profile)},
                _secret_env("PGUSER", secret.secret, USERNAME_KEY), _secret_env("PGPASSWORD", secret.secret, secret.key)],
        "ports": _metrics_port(scrape.PGBOUNCER_EXPORTER_PORT), "resources": EXPORTER_RESOURCES,
        "securityContext": SECURITY, **_probes(),
    }


def pgbouncer_objects(profile: Profile) -> list[dict[str, Any]]:
    name = scrape.PGBOUNCER_EXPORTER
    return [_service(profile, name, _selector(profile, "pgbouncer"), scrape.PGBOUNCER_EXPORTER_PORT),
            service_monitor(profile, name, name, scrape.METRICS_PORT)]


# ---------------------------------------------------------------- Redis
def redis_exporter_container(profile: Profile) -> dict[str, Any]:
    secret = profile.secrets.redis_password
    return {
        "name": scrape.REDIS_EXPORTER, "image": _image(metrics.REDIS),
        "env": [{"name": "REDIS_ADDR", "value": f"redis://redis:{profile.redis.port}"},
                _secret_env("REDIS_PASSWORD", secret.secret, secret.key),
                {"name": "REDIS_EXPORTER_WEB_LISTEN_ADDRESS", "value": f":{scrape.REDIS_EXPORTER_PORT}"}],
        "ports": _metrics_port(scrape.REDIS_EXPORTER_PORT), "resources": EXPORTER_RESOURCES,
        "securityContext": SECURITY, **_probes(),
    }


def redis_objects(profile: Profile) -> list[dict[str, Any]]:
    name = scrape.REDIS_EXPORTER
    return [_deployment(profile, name, redis_exporter_container(profile)),
            _service(profile, name, _selector(profile, name), scrape.REDIS_EXPORTER_PORT),
            service_monitor(profile, name, name, scrape.METRICS_PORT)]


# ---------------------------------------------------------------- Celery (the workers' queues and tasks)
# The image's `exporter` user (adduser's first UID): a name runAsNonRoot cannot check, so the number is given.
CELERY_SECURITY = {**SECURITY, "runAsUser": 1000}
CELERY_TMP = "tmp"


def celery_exporter_container(profile: Profile) -> dict[str, Any]:
    """danihodovic/celery-exporter on the queue's broker: the same Secret and URL the workers use (CE_ is its
    environment prefix); queue lengths come from the broker, task counts from the workers' events."""
    from ..workers import broker_url_template

    secret = profile.secrets.redis_password
    workers = profile.workers
    assert workers is not None
    return {
        "name": scrape.CELERY_EXPORTER, "image": _image(metrics.CELERY),
        # Every queue of every pool from the start: the exporter otherwise learns queues only from live workers,
        # so a pool scaled to zero (KEDA) would have no queue length and its backlog alerts no series.
        "args": [f"--port={scrape.CELERY_EXPORTER_PORT}",
                 "--queues=" + ",".join(sorted({q for pool in workers.pools.values() for q in pool.queues}))],
        "env": [_secret_env("REDIS_PASSWORD", secret.secret, secret.key),
                {"name": "CE_BROKER_URL", "value": broker_url_template(profile)}],
        "ports": _metrics_port(scrape.CELERY_EXPORTER_PORT), "resources": EXPORTER_RESOURCES,
        "securityContext": CELERY_SECURITY, **_probes(),
        "volumeMounts": [{"name": CELERY_TMP, "mountPath": "/tmp"}],  # Python's tempfiles; the root stays read-only
    }


def workers_objects(profile: Profile) -> list[dict[str, Any]]:
    if profile.workers is None:
        return []
    name = scrape.CELERY_EXPORTER
    deployment = _deployment(profile, name, celery_exporter_container(profile))
    deployment["spec"]["template"]["spec"]["volumes"] = [{"name": CELERY_TMP, "emptyDir": {}}]
    monitor = service_monitor(profile, name, name, scrape.METRICS_PORT)
    # The workers' alerts read job=<workers.exporter_job>: the scraped job is named so, whatever the Service is.
    monitor["spec"]["endpoints"][0]["relabelings"] = [
        {"targetLabel": "job", "replacement": profile.workers.exporter_job, "action": "replace"}]
    return [deployment, _service(profile, name, _selector(profile, name), scrape.CELERY_EXPORTER_PORT), monitor]


# ---------------------------------------------------------------- vLLM
def llm_objects(profile: Profile) -> list[dict[str, Any]]:
    if profile.llm is None or profile.llm.server != "vllm":
        return []
    return [service_monitor(profile, LLM_SERVER, LLM_SERVER, "http")]  # the LLM Service's port


# ---------------------------------------------------------------- the app
def app_pod_labels(profile: Profile) -> dict[str, str]:
    return profile.app.metrics.pod_labels or {"app.kubernetes.io/name": profile.app.deployment}


def app_objects(profile: Profile) -> list[dict[str, Any]]:
    """The app is the user's own Deployment: a PodMonitor selects its pods by app.metrics.pod_labels (no Service
    needed) and names the job app.deployment, the job the API alerts read."""
    app = profile.app
    return [{"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
             "metadata": metadata(profile, app.deployment, app.deployment, _monitor_labels(profile)),
             "spec": {"selector": {"matchLabels": dict(sorted(app_pod_labels(profile).items()))},
                      "namespaceSelector": {"matchNames": [profile.namespace]},
                      "podMetricsEndpoints": [{
                          "port": app.metrics.port, "path": app.metrics.path,
                          "relabelings": [{"targetLabel": "job", "replacement": app.deployment,
                                           "action": "replace"}]}]}}]


def objects(profile: Profile) -> list[dict[str, Any]]:
    return [*postgres_objects(profile), *pgbouncer_objects(profile), *redis_objects(profile), *llm_objects(profile),
            *workers_objects(profile), *app_objects(profile)]

"""Every file path perfstack writes or mounts, as shared constants (one spelling each).

Rendered files are relative to the output folder (`rendered/ENV/`); mount paths are inside the pods.
"""

from __future__ import annotations

# Rendered files
POSTGRESQL_CONF = "postgres/postgresql.conf"
ALTER_SYSTEM_SQL = "postgres/alter_system.sql"
ROLES_SQL = "postgres/roles.sql"
RDS_PARAMETERS = "postgres/rds-parameter-group.json"
CLOUDSQL_FLAGS = "postgres/cloudsql-flags.json"
AZURE_PARAMETERS = "postgres/azure-server-parameters.json"
PGBOUNCER_INI = "pgbouncer/pgbouncer.ini"
PGBOUNCER_AUTH_SQL = "pgbouncer/auth_query.sql"  # the auth_query lookup function, applied in each pooled database
REDIS_CONF = "redis/redis.conf"
VLLM_ARGS = "llm/vllm.args"
OLLAMA_ENV = "llm/ollama.env"
APP_ENV = "app/performance.env"
ADAPTER_RULES = "autoscaling/prometheus-adapter-rules.yaml"
ALERT_RULES = "prometheus/alerts.yaml"
ALERT_TESTS = "prometheus/alerts_test.yaml"
EXPLAIN = "explain.json"
KUBERNETES_DIR = "kubernetes"

# Mounted in the PgBouncer pod from Secrets (never rendered)
PGBOUNCER_AUTH_FILE = "/etc/pgbouncer/userlist.txt"
PGBOUNCER_TLS_CERT_FILE = "/etc/pgbouncer/tls.crt"  # from the kubernetes.io/tls Secret secrets.pgbouncer_tls
PGBOUNCER_TLS_KEY_FILE = "/etc/pgbouncer/tls.key"
PGBOUNCER_SERVER_CA_FILE = "/etc/pgbouncer/server-ca.crt"  # from the Secret secrets.postgres_ca

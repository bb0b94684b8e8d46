"""The core workloads as Kubernetes objects: the namespace, PgBouncer, Redis and PostgreSQL.

Each object carries a file another target rendered (pgbouncer.ini, redis.conf, postgresql.conf),
read from the config stage's parts (never rendered again); this module only wraps them for the cluster.
No password appears here: Secrets are created by the Pulumi program from secret stack config;
the objects below refer to them by name (profile.secrets) and key.
"""

from __future__ import annotations

import posixpath
from typing import Any

from .. import paths, units
from ..bundle import Finding, Part, Parts, Setting
from ..k8s import CHECKSUM_ANNOTATION, checksum_of, config_map, labels, metadata
from ..profile import Profile
from . import disruption, exporters

TARGET = "workloads"

# PgBouncer's and Redis's images come from their version tables (serverversions.py, by pgbouncer.version and
# redis.version), through the parts: parts.pgbouncer.derived["image"], parts.redis.derived["image"].
POSTGRES_IMAGE = "ghcr.io/cloudnative-pg/postgresql:{version}"  # CloudNativePG's images, tagged by major version
POSTGRES_CLUSTER = exporters.CNPG_CLUSTER  # CloudNativePG names its Services <cluster>-rw, -ro, -r
POSTGRES_SETTINGS_CONFIG_MAP = "postgres-settings"
REDIS_CONFIG_DIR = "/etc/redis"
USERLIST_KEY = "userlist.txt"  # key of the PostgreSQL Secret that PgBouncer mounts as its auth_file

# PgBouncer is one single-threaded process that keeps a small buffer per connection: a quarter
# of a core and 64Mi cover thousands of idle clients; the limit only guards against a leak.
PGBOUNCER_RESOURCES = {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
# A disk of twice the data: room for WAL, bloat and growth before anyone has to resize it.
POSTGRES_STORAGE_FACTOR = 2
POSTGRES_DEFAULT_STORAGE = 10 * units.GIB  # when hardware.postgres.data_size is not given
# The official Redis image's `redis` user and group: the server never runs as root.
REDIS_UID = 999
REDIS_SECURITY = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": REDIS_UID,
                  "runAsGroup": REDIS_UID, "capabilities": {"drop": ["ALL"]}}
REDIS_POD_SECURITY = {"runAsNonRoot": True, "runAsUser": REDIS_UID, "runAsGroup": REDIS_UID, "fsGroup": REDIS_UID,
                      "seccompProfile": {"type": "RuntimeDefault"}}
# Both RDB saves and AOF rewrites write a full new file beside the old one before renaming it.
REDIS_STORAGE_FACTOR = 2

# postgresql.conf parameters CloudNativePG sets itself and refuses in spec.postgresql.parameters,
# plus the two pgtune writes for desktop (wal_level minimal, no WAL senders) that would stop the
# operator from streaming WAL to replicas and backups.
CNPG_MANAGED = frozenset({
    "allow_system_table_mods", "archive_cleanup_command", "archive_command", "archive_mode", "bonjour",
    "bonjour_name", "cluster_name", "config_file", "data_directory", "data_sync_retry", "event_source",
    "external_pid_file", "full_page_writes", "hba_file", "hot_standby", "ident_file", "jit_provider",
    "listen_addresses", "log_destination", "log_directory", "log_file_mode", "log_filename",
    "log_rotation_age", "log_rotation_size", "log_truncate_on_rotation", "logging_collector", "port",
    "primary_conninfo", "primary_slot_name", "promote_trigger_file", "recovery_end_command",
    "recovery_min_apply_delay", "recovery_target", "recovery_target_action", "recovery_target_inclusive",
    "recovery_target_lsn", "recovery_target_name", "recovery_target_time", "recovery_target_timeline",
    "recovery_target_xid", "restart_after_crash", "restore_command", "shared_preload_libraries",
    "ssl", "ssl_ca_file", "ssl_cert_file", "ssl_crl_file", "ssl_dh_params_file", "ssl_ecdh_curve",
    "ssl_key_file", "ssl_passphrase_command", "ssl_passphrase_command_supports_reload",
    "ssl_prefer_server_ciphers", "stats_temp_directory", "synchronous_standby_names", "syslog_facility",
    "syslog_ident", "syslog_sequence_numbers", "syslog_split_messages", "unix_socket_directories",
    "unix_socket_group", "unix_socket_permissions", "wal_level", "wal_log_hints", "max_wal_senders",
})


def _setting(key: str, value: Any, text: str, rule: str, **inputs: Any) -> Setting:
    return Setting(TARGET, key, value, text, rule, inputs)


def _round_up_gib(num_bytes: int) -> int:
    return -(-num_bytes // units.GIB) * units.GIB


def userlist(user: str, password: str) -> str:
    """One line of PgBouncer's auth_file; the Pulumi program calls this with the secret password."""
    quote = '"{}"'.format
    return f"{quote(user.replace(chr(34), chr(34) * 2))} {quote(password.replace(chr(34), chr(34) * 2))}\n"


# ---------------------------------------------------------------- namespace
def namespace(profile: Profile) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": profile.namespace, "labels": labels(profile, "namespace")}}


# ---------------------------------------------------------------- shared shapes
def _selector(profile: Profile, component: str) -> dict[str, str]:
    return {key: value for key, value in labels(profile, component).items()
            if key in ("app.kubernetes.io/name", "app.kubernetes.io/part-of")}


def _service(profile: Profile, name: str, component: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(profile, name, component),
            "spec": {"type": "ClusterIP", "selector": _selector(profile, component),
                     "ports": [{"name": component, "port": port, "targetPort": component, "protocol": "TCP"}]}}


def _pod_template(profile: Profile, component: str, config: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    """A pod template whose checksum annotation changes with its config: a config change rolls the pods."""
    return {"metadata": {"labels": labels(profile, component),
                         "annotations": {CHECKSUM_ANNOTATION: checksum_of(config)}},
            "spec": spec}


def _tcp_probes(port_name: str) -> dict[str, Any]:
    return {
        "readinessProbe": {"tcpSocket": {"port": port_name}, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"tcpSocket": {"port": port_name}, "periodSeconds": 10, "failureThreshold": 6},
    }


# ---------------------------------------------------------------- pgbouncer
def pgbouncer_objects(profile: Profile, parts: Parts) -> list[dict[str, Any]]:
    pb = profile.pgbouncer
    ini = parts.pgbouncer.files[paths.PGBOUNCER_INI]
    data = {"pgbouncer.ini": ini}
    config_dir = posixpath.dirname(paths.PGBOUNCER_AUTH_FILE)
    secret = profile.secrets.postgres_password.secret
    container = {
        "name": "pgbouncer",
        "image": parts.pgbouncer.derived["image"],
        "command": ["pgbouncer", posixpath.join(config_dir, "pgbouncer.ini")],
        "ports": [{"name": "pgbouncer", "containerPort": pb.listen_port, "protocol": "TCP"}],
        "resources": PGBOUNCER_RESOURCES,
        "volumeMounts": [{"name": "config", "mountPath": config_dir, "readOnly": True}],
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
        **_tcp_probes("pgbouncer"),
    }
    volume: dict[str, Any] = {"name": "config", "projected": {"sources": [
        {"configMap": {"name": "pgbouncer", "items": [{"key": "pgbouncer.ini", "path": "pgbouncer.ini"}]}},
        {"secret": {"name": secret, "items": [{"key": USERLIST_KEY, "path": posixpath.basename(paths.PGBOUNCER_AUTH_FILE)}]}},
    ]}}
    sources: list[dict[str, Any]] = volume["projected"]["sources"]
    if parts.pgbouncer.get("server_tls_ca_file") is not None and profile.secrets.postgres_ca is not None:
        ca = profile.secrets.postgres_ca
        sources.append({"secret": {"name": ca.secret, "items": [
            {"key": ca.key, "path": posixpath.basename(paths.PGBOUNCER_SERVER_CA_FILE)}]}})
    if pb.client_tls:
        sources.append({"secret": {"name": profile.secrets.pgbouncer_tls, "items": [
            {"key": "tls.crt", "path": posixpath.basename(paths.PGBOUNCER_TLS_CERT_FILE)},
            {"key": "tls.key", "path": posixpath.basename(paths.PGBOUNCER_TLS_KEY_FILE)}]}})
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(profile, "pgbouncer", "pgbouncer"),
        "spec": {
            "replicas": pb.replicas,
            "selector": {"matchLabels": _selector(profile, "pgbouncer")},
            # Never fewer pools than the profile sized the connections for while pods roll.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0,
                                                                      "maxSurge": parts.pgbouncer.derived["rolling_surge"]}},
            "template": _pod_template(profile, "pgbouncer", data, {"containers": [container, exporters.pgbouncer_sidecar(profile)],
                                                                   "volumes": [volume],
                                                                   "affinity": disruption.anti_affinity(profile, "pgbouncer")}),
        },
    }
    return [config_map(profile, "pgbouncer", "pgbouncer", data), deployment,
            _service(profile, "pgbouncer", "pgbouncer", pb.listen_port)]


# ---------------------------------------------------------------- redis
def redis_storage(profile: Profile, parts: Parts) -> Setting | None:
    if profile.redis.persistence == "none":
        return None
    maxmemory = parts.redis.value("maxmemory")
    size = _round_up_gib(REDIS_STORAGE_FACTOR * maxmemory)
    return _setting("redis.storage", size, units.format_quantity(size),
                    f"{REDIS_STORAGE_FACTOR} x maxmemory, rounded up to GiB: a save or rewrite writes a new file "
                    "beside the old one", maxmemory=units.format_size_human(maxmemory),
                    persistence=profile.redis.persistence)


def redis_resources(profile: Profile) -> Setting:
    hw = profile.hardware.redis
    resources = {"cpu": str(hw.cpus), "memory": units.format_quantity(hw.memory)}
    return _setting("redis.resources", resources, f"cpu={resources['cpu']}, memory={resources['memory']}",
                    "hardware.redis as requests and limits: a cache the node may not squeeze (Guaranteed QoS)",
                    cpus=hw.cpus, memory=units.format_size_human(hw.memory))


def redis_command(parts: Parts) -> list[str]:
    """redis-server with the rendered redis.conf, the default user's password and the app's ACL user."""
    return ["redis-server", posixpath.join(REDIS_CONFIG_DIR, "redis.conf"), "--requirepass", "$(REDIS_PASSWORD)",
            "--user", parts.redis.derived["acl_user"], *parts.redis.derived["acl_rules"], ">$(REDIS_APP_PASSWORD)"]


def redis_objects(profile: Profile, parts: Parts) -> list[dict[str, Any]]:
    r = profile.redis
    conf = parts.redis.files[paths.REDIS_CONF]
    data = {"redis.conf": conf}
    secret = profile.secrets.redis_password
    app_secret = profile.secrets.redis_app_password
    resources = redis_resources(profile).value
    container = {
        "name": "redis",
        "image": parts.redis.derived["image"],
        # Kubernetes expands $(REDIS_PASSWORD) and $(REDIS_APP_PASSWORD) from the Secrets: no password is ever in
        # redis.conf. The app's ACL user is declared here once, with its password (Redis refuses a second
        # `user` line for one name).
        "command": redis_command(parts),
        "env": [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret.secret, "key": secret.key}}},
                {"name": "REDIS_APP_PASSWORD", "valueFrom": {"secretKeyRef": {
                    "name": app_secret.secret, "key": app_secret.key}}}],
        "ports": [{"name": "redis", "containerPort": r.port, "protocol": "TCP"}],
        "resources": {"requests": resources, "limits": resources},
        "volumeMounts": [{"name": "config", "mountPath": REDIS_CONFIG_DIR, "readOnly": True}],
        "securityContext": REDIS_SECURITY,
        **_tcp_probes("redis"),
    }
    volumes: list[dict[str, Any]] = [{"name": "config", "configMap": {"name": "redis"}}]
    storage = redis_storage(profile, parts)
    spec: dict[str, Any] = {"replicas": 1, "selector": {"matchLabels": _selector(profile, "redis")}}
    if storage is None:
        # A cache without persistence: a Deployment; Recreate so two pods never share the name.
        kind = "Deployment"
        spec["strategy"] = {"type": "Recreate"}
    else:
        kind = "StatefulSet"
        container["volumeMounts"].append({"name": "data", "mountPath": "/data"})  # the image's working dir
        spec["serviceName"] = "redis"
        spec["volumeClaimTemplates"] = [{
            "metadata": {"name": "data", "labels": labels(profile, "redis")},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage.text}}},
        }]
    spec["template"] = _pod_template(profile, "redis", data, {"containers": [container], "volumes": volumes,
                                                             "securityContext": REDIS_POD_SECURITY,
                                                             "affinity": disruption.anti_affinity(profile, "redis")})
    workload = {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata(profile, "redis", "redis"), "spec": spec}
    return [config_map(profile, "redis", "redis", data), workload, _service(profile, "redis", "redis", r.port)]


# ---------------------------------------------------------------- postgres
def postgres_storage(profile: Profile) -> Setting:
    data_size = profile.hardware.postgres.data_size
    if data_size is None:
        return _setting("postgres.storage", POSTGRES_DEFAULT_STORAGE, units.format_quantity(POSTGRES_DEFAULT_STORAGE),
                        "no hardware.postgres.data_size: CloudNativePG volume of 10Gi")
    size = _round_up_gib(POSTGRES_STORAGE_FACTOR * data_size)
    return _setting("postgres.storage", size, units.format_quantity(size),
                    f"{POSTGRES_STORAGE_FACTOR} x hardware.postgres.data_size, rounded up to GiB: WAL, bloat and growth",
                    data_size=units.format_size_human(data_size))


# Settings CloudNativePG takes as a list field of spec.postgresql rather than as a parameter.
CNPG_LISTS = {"shared_preload_libraries": "shared_preload_libraries"}


def cnpg_lists(parts: Parts) -> dict[str, list[str]]:
    """shared_preload_libraries as CloudNativePG's spec.postgresql.shared_preload_libraries (the operator adds its own)."""
    out = {}
    for key, field in CNPG_LISTS.items():
        setting = parts.postgres.get(key)
        if setting is not None:
            out[field] = [e.strip().strip('"') for e in setting.text.split(",") if e.strip()]
    return out


def postgres_hugepages(parts: Parts) -> dict[str, str]:
    """hugepages-2Mi requests and limits for the pages PostgreSQL's shared memory takes when huge_pages is on."""
    pages = parts.postgres.derived.get("nr_hugepages")
    huge = parts.postgres.get("huge_pages")
    if not pages or huge is None or huge.text != "on":
        return {}
    return {"hugepages-2Mi": f"{pages * 2}Mi"}


def cnpg_parameters(parts: Parts) -> tuple[dict[str, str], list[str]]:
    """Rendered PostgreSQL settings as CloudNativePG parameters, and the names the operator manages itself."""
    params: dict[str, str] = {}
    dropped: list[str] = []
    for s in parts.postgres.settings:
        if s.scope != "server" or s.key in CNPG_LISTS:
            continue  # per-role settings are in roles.sql; the libraries go to spec.postgresql.shared_preload_libraries
        if s.key in CNPG_MANAGED:
            dropped.append(s.key)
        else:
            params[s.key] = s.text
    return dict(sorted(params.items())), dropped


def _pgvector_init(profile: Profile) -> list[str]:
    """With vector.engine pgvector the application database gets the extension at bootstrap (CloudNativePG's
    images ship pgvector); an external database gets it from vector/pgvector.sql."""
    if profile.vector is None or profile.vector.engine != "pgvector":
        return []
    return ["CREATE EXTENSION IF NOT EXISTS vector"]


def postgres_objects(profile: Profile, parts: Parts) -> tuple[list[dict[str, Any]], list[Finding]]:
    if profile.kubernetes.postgres == "external":
        files = parts.postgres.files
        data = {path.split("/")[-1]: text for path, text in files.items()}
        return [config_map(profile, POSTGRES_SETTINGS_CONFIG_MAP, "postgres", data)], []
    hw = profile.hardware.postgres
    params, dropped = cnpg_parameters(parts)
    huge = postgres_hugepages(parts)
    # Huge pages are not part of the memory limit: the host's memory is split between the two.
    memory = hw.memory - (parts.postgres.derived["nr_hugepages"] * 2 * units.MIB if huge else 0)
    resources = {"memory": units.format_quantity(memory), **({"cpu": str(hw.cpus)} if hw.cpus else {}), **huge}
    database = profile.pgbouncer.databases[0]
    cluster = {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": metadata(profile, POSTGRES_CLUSTER, "postgres"),
        "spec": {
            "instances": 1,
            "imageName": POSTGRES_IMAGE.format(version=profile.postgres.version),
            "postgresql": {"parameters": params, **cnpg_lists(parts)},
            "resources": {"requests": resources, "limits": resources},
            "storage": {"size": postgres_storage(profile).text},
            "monitoring": exporters.cnpg_monitoring(),
            **({"walStorage": {"size": units.format_quantity(hw.wal_disk)}} if hw.wal_disk else {}),
            # The owner is PgBouncer's auth_user: the one role whose password is in its userlist.
            "bootstrap": {"initdb": {"database": database, "owner": profile.pgbouncer.auth_user,
                                     "secret": {"name": profile.secrets.postgres_password.secret},
                                     "postInitApplicationSQL": [*parts.pgbouncer.derived["auth_sql"],
                                                                *_pgvector_init(profile)]}},
        },
    }
    objects = [cluster]
    host = parts.pgbouncer.derived["server_host"]
    if host is not None and "." not in host:
        # PgBouncer dials pgbouncer.server_host: a Service of that name for the primary.
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": metadata(profile, host, "postgres"),
                        "spec": {"type": "ClusterIP",
                                 "selector": {"cnpg.io/cluster": POSTGRES_CLUSTER, "cnpg.io/instanceRole": "primary"},
                                 "ports": [{"name": "postgres", "port": profile.pgbouncer.server_port,
                                            "targetPort": 5432, "protocol": "TCP"}]}})
    warnings = []
    if dropped:
        warnings.append(Finding("workloads.cnpg_managed",
                                "CloudNativePG manages these parameters itself; not passed to the Cluster: "
                                + ", ".join(dropped), "warning", ("kubernetes.postgres",)))
    return objects, warnings


def render(profile: Profile, parts: Parts) -> Part:
    pg_objects, warnings = postgres_objects(profile, parts)
    settings = [redis_resources(profile)]
    if (storage := redis_storage(profile, parts)) is not None:
        settings.append(storage)
    if profile.kubernetes.postgres == "cloudnativepg":
        settings.append(postgres_storage(profile))
    # The Namespace is the stack's only when kubernetes.manage_namespace is on (it is then adopted, never deleted).
    managed = [namespace(profile)] if profile.kubernetes.manage_namespace else []
    objects = [*managed, *pgbouncer_objects(profile, parts), *redis_objects(profile, parts), *pg_objects,
               *disruption.objects(profile)]
    return Part(settings=settings, objects=objects, warnings=warnings)

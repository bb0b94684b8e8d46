"""The production lint, one half of render's gate (render.gate; the other half is checks.py).

`findings(profile, parts, objects)`: settings that are legal but unsafe in production (environment `prod`,
  `production`, `prod-*`, or `production: true`): `trust` authentication, PgBouncer without client TLS
  in an exposed environment, Redis without protected-mode or a password, PgBouncer's admin console
  reachable from outside the cluster, unbounded (0) statement, query and idle-in-transaction timeouts, an
  external database reached without `server_tls_sslmode verify-full`, and PgBouncer or Redis releases with known
  CVEs (serverversions.py).

PgBouncer's admin console is the virtual `pgbouncer` database on PgBouncer's one listener. In
Kubernetes that listener must accept the pod network (listen_addr 0.0.0.0), so "localhost" means
"not reachable from outside the cluster": with `exposed: true` the console would be reachable from
outside, and `pgbouncer.admin_users` must be empty (admins then `kubectl exec` into the pod and connect
over its Unix socket as user `pgbouncer`, which PgBouncer admits without a password for its own OS
user). `stats_users` stay allowed: they can only run SHOW commands.
"""

from __future__ import annotations

import re
from typing import Any

from . import serverversions
from .bundle import Finding, Parts
from .profile import Profile


# ---------------------------------------------------------------- production lint
def is_production(profile: Profile) -> bool:
    env = profile.environment
    return bool(getattr(profile, "production", False)) or env in ("prod", "production") or env.startswith("prod-")


def _zero_duration(text: str) -> bool:
    return bool(re.fullmatch(r"\s*'?0+(\.0+)?\s*(us|ms|s|min|m|h|d)?'?\s*", str(text)))


def findings(profile: Profile, parts: Parts, objects: list[dict[str, Any]]) -> list[Finding]:
    """Every production refusal (none outside production), from the profile, its parts and its objects."""
    if not is_production(profile):
        return []
    return [Finding("prod lint", message, "error", (keys[0],), tuple(keys[1:]))
            for keys, message in _refusals(profile, parts, objects)]


def _refusals(profile: Profile, parts: Parts, objects: list[dict[str, Any]]) -> list[tuple[list[str], str]]:
    out: list[tuple[list[str], str]] = []
    pb = profile.pgbouncer
    if pb.auth_type == "trust":
        out.append((["pgbouncer.auth_type"], "PgBouncer `trust` auth lets anyone who reaches it in without a "
                    "password; use scram-sha-256"))
    for obj in objects:
        hba = obj.get("spec", {}).get("postgresql", {}).get("pg_hba", []) if isinstance(obj.get("spec"), dict) else []
        if any(re.search(r"\btrust\b", str(line)) for line in hba):
            out.append((["kubernetes.postgres"], f"{obj['kind']}/{obj['metadata']['name']} has a pg_hba `trust` rule; "
                        "PostgreSQL must authenticate with scram-sha-256"))
    pg = {s.key: s for s in parts.postgres.settings}
    for name in pg:
        if name in ("hba_file", "ident_file"):
            out.append(([f"postgres.settings.{name}"], f"{name} replaces the managed authentication rules; "
                        "production PostgreSQL authenticates with scram-sha-256 from the operator's pg_hba"))
    if profile.exposed and not pb.client_tls:
        out.append((["pgbouncer.client_tls", "exposed"], "the environment is exposed (exposed: true) but PgBouncer "
                    "does not require client TLS; set pgbouncer.client_tls: true"))
    if profile.exposed and pb.admin_users:
        out.append((["pgbouncer.admin_users", "exposed"], "PgBouncer's admin console shares its listener, which is "
                    "reachable from outside the cluster (exposed: true); set pgbouncer.admin_users: [] and "
                    "administer through `kubectl exec` over the pod's Unix socket"))
    protected = parts.redis.get("protected-mode")
    if protected is None or protected.text != "yes":
        out.append((["redis"], "Redis must run with protected-mode yes"))
    redis_pods = [o for o in objects if o.get("kind") in ("Deployment", "StatefulSet")
                  and o["metadata"]["name"] == "redis"]
    for obj in redis_pods:
        commands = [c.get("command", []) + c.get("args", []) for c in obj["spec"]["template"]["spec"]["containers"]]
        if not any("--requirepass" in command for command in commands):
            out.append((["secrets.redis_password", "redis"], f"{obj['kind']}/redis starts Redis without a password "
                        "(--requirepass from the Secret named by secrets.redis_password)"))
    timeouts = {
        "postgres.statement_timeout": "statement_timeout",
        "postgres.idle_in_transaction_session_timeout": "idle_in_transaction_session_timeout",
    }
    for key, name in timeouts.items():
        setting = pg.get(name)
        if setting is not None and _zero_duration(setting.text):
            overridden = name in {k.lower() for k in profile.postgres.settings}
            where = [f"postgres.settings.{_written_name(profile, name)}"] if overridden else [key]
            out.append((where, f"{name} = 0 never times out; production needs a bound (e.g. 30s)"))
    if profile.kubernetes.postgres == "external" and pb.server_tls_sslmode != "verify-full":
        out.append((["pgbouncer.server_tls_sslmode", "kubernetes.postgres"], (
            f"PgBouncer reaches the external database with server_tls_sslmode {pb.server_tls_sslmode or 'prefer'} "
            "(PgBouncer's default): the link is not encrypted or not verified, so anyone on the path can read or "
            "impersonate the database; set pgbouncer.server_tls_sslmode: verify-full and secrets.postgres_ca")))
    releases = [("pgbouncer.version", "PgBouncer", serverversions.PGBOUNCER_RELEASES[pb.version]),
                ("redis.version", "Redis", serverversions.REDIS_RELEASES[profile.redis.version])]
    if profile.workers is not None and profile.workers.redis is not None:
        releases.append(("workers.redis.version", "Redis", serverversions.REDIS_RELEASES[profile.workers.redis.version]))
    for key, title, release in releases:
        if release.cves:
            out.append(([key], f"{title} {release.patch} (version {release.version}) has known vulnerabilities "
                        f"({', '.join(release.cves)}); use a patched version (generators/serverversions.py)"))
    if parts.pgbouncer.value("query_timeout") == 0:
        out.append((["pgbouncer.query_timeout"], "query_timeout = 0 never times out; production needs a bound just "
                    "above postgres.statement_timeout"))
    return out


def _written_name(profile: Profile, name: str) -> str:
    return next((k for k in profile.postgres.settings if k.lower() == name), name)

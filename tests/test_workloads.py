"""generators/objects/workloads.py: the namespace, PgBouncer, Redis and PostgreSQL objects.

Objects are checked against the Kubernetes schemas (kubernetes-validate) and, where a real tool reads
what they carry, with that tool: redis-server started with the container's own command line and the
ConfigMap's redis.conf, PgBouncer authenticating a client against the userlist the Secret holds.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import psycopg
import pytest
import redis as redis_client
from redis.backoff import NoBackoff
from redis.retry import Retry

from generators import localservers, pgbouncer, postgres, redis, units
from generators.k8s import CHECKSUM_ANNOTATION, checksum_of
from generators.objects import workloads
from generators.profile import Profile
from generators.validation import load_profile

from .conftest import parts_of

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES_VERSION = "1.33"
NO_RETRY = Retry(NoBackoff(), 0)  # redis-py retries a refused AUTH with backoff otherwise


def profile(env: str = "prod", **sections: dict[str, Any]) -> Profile:
    base, _ = load_profile(env, ROOT / "profiles")
    update = {key: getattr(base, key).model_copy(update=value) for key, value in sections.items()}
    return base.model_copy(update=update)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


VARIANTS = {
    "dev": lambda: profile("dev"),
    "prod": lambda: profile("prod"),
    "prod-cnpg-aof": lambda: profile("prod", kubernetes={"postgres": "cloudnativepg"},
                                     redis={"persistence": "aof", "maxmemory_policy": "noeviction", "role": "queue"}),
    "prod-rdb": lambda: profile("prod", redis={"persistence": "rdb"}),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_built_in_objects_are_valid_kubernetes(variant: str) -> None:
    objects = workloads.render(VARIANTS[variant](), parts_of(VARIANTS[variant]())).objects
    built_in = [o for o in objects if "." not in o["apiVersion"].split("/")[0] or "/" not in o["apiVersion"]]
    assert built_in
    for obj in built_in:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == VARIANTS[variant]().namespace  # also for custom resources


def test_pgbouncer_objects_carry_the_rendered_ini_and_replicas() -> None:
    p = profile("prod")
    objects = by_kind(workloads.render(p, parts_of(p)).objects)
    config_map, deployment = objects["ConfigMap/pgbouncer"], objects["Deployment/pgbouncer"]
    ini = pgbouncer.render(p).files["pgbouncer/pgbouncer.ini"]
    assert config_map["data"] == {"pgbouncer.ini": ini}
    assert deployment["spec"]["replicas"] == p.pgbouncer.replicas == 2
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"][CHECKSUM_ANNOTATION] == checksum_of(config_map["data"])
    container = template["spec"]["containers"][0]
    mount = container["volumeMounts"][0]["mountPath"]
    assert container["command"] == ["pgbouncer", f"{mount}/pgbouncer.ini"]
    # The auth_file pgbouncer.ini names is where the projected Secret key lands.
    sources = template["spec"]["volumes"][0]["projected"]["sources"]
    secret = next(s["secret"] for s in sources if "secret" in s)
    assert secret["name"] == p.secrets.postgres_password.secret
    assert f"{mount}/{secret['items'][0]['path']}" == pgbouncer.AUTH_FILE
    assert f"auth_file = {pgbouncer.AUTH_FILE}" in ini
    assert objects["Service/pgbouncer"]["spec"]["ports"][0]["port"] == p.pgbouncer.listen_port


def test_checksum_rolls_pods_only_when_the_config_changes() -> None:
    def annotation(p: Profile, kind: str) -> str:
        return by_kind(workloads.render(p, parts_of(p)).objects)[kind]["spec"]["template"]["metadata"]["annotations"][
            CHECKSUM_ANNOTATION]

    base = profile("prod")
    bigger = profile("prod", pgbouncer={"default_pool_size": 21})
    assert annotation(base, "Deployment/pgbouncer") != annotation(bigger, "Deployment/pgbouncer")
    assert annotation(base, "Deployment/redis") == annotation(bigger, "Deployment/redis")
    more = profile("prod", pgbouncer={"replicas": 3})
    assert annotation(base, "Deployment/pgbouncer") == annotation(more, "Deployment/pgbouncer")


def test_redis_without_persistence_is_a_deployment_sized_by_its_hardware() -> None:
    p = profile("prod")
    objects = by_kind(workloads.render(p, parts_of(p)).objects)
    assert "StatefulSet/redis" not in objects
    container = objects["Deployment/redis"]["spec"]["template"]["spec"]["containers"][0]
    # hardware.redis: 8GiB, 2 cpus, as requests and limits.
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
    assert objects["ConfigMap/redis"]["data"] == {"redis.conf": redis.render(p).files["redis/redis.conf"]}


@pytest.mark.parametrize("persistence", ["aof", "rdb"])
def test_redis_with_persistence_is_a_statefulset_with_room_to_rewrite(persistence: str) -> None:
    p = profile("prod", redis={"persistence": persistence})
    objects = by_kind(workloads.render(p, parts_of(p)).objects)
    assert "Deployment/redis" not in objects
    spec = objects["StatefulSet/redis"]["spec"]
    # maxmemory 75% of 8GiB = 6GiB; a rewrite needs the old and the new file: 2 x 6GiB = 12Gi.
    assert spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "12Gi"
    assert spec["serviceName"] == "redis"


def test_redis_password_comes_from_the_secret_not_the_config() -> None:
    p = profile("prod")
    objects = by_kind(workloads.render(p, parts_of(p)).objects)
    container = objects["Deployment/redis"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][2:4] == ["--requirepass", "$(REDIS_PASSWORD)"]
    assert container["command"][-1] == ">$(REDIS_APP_PASSWORD)"  # the app ACL user's password, from its Secret
    ref = container["env"][0]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": p.secrets.redis_password.secret, "key": p.secrets.redis_password.key}
    app_ref = container["env"][1]["valueFrom"]["secretKeyRef"]
    assert app_ref == {"name": p.secrets.redis_app_password.secret, "key": p.secrets.redis_app_password.key}
    directives = [line.split()[0].lower() for line in objects["ConfigMap/redis"]["data"]["redis.conf"].splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    assert "maxmemory" in directives  # the directives were really read (the file is not all comments)
    assert "requirepass" not in directives and "masterauth" not in directives


def test_external_postgres_is_a_settings_config_map() -> None:
    p = profile("prod")
    objects = by_kind(workloads.render(p, parts_of(p)).objects)
    assert "Cluster/postgres" not in objects
    files = postgres.render(p).files
    assert objects["ConfigMap/postgres-settings"]["data"] == {
        "postgresql.conf": files["postgres/postgresql.conf"], "alter_system.sql": files["postgres/alter_system.sql"],
        "roles.sql": files["postgres/roles.sql"]}


def test_cloudnativepg_cluster_carries_the_rendered_settings() -> None:
    p = profile("prod", kubernetes={"postgres": "cloudnativepg"}, pgbouncer={"server_host": None})
    part = workloads.render(p, parts_of(p))
    objects = by_kind(part.objects)
    cluster = objects["Cluster/postgres"]
    params = cluster["spec"]["postgresql"]["parameters"]
    # pgtune's web workload sets nothing CNPG owns; per-role timeouts are in roles.sql, libraries a list of their own
    assert params == {s.key: s.text for s in postgres.server_settings(postgres.settings(p))
                      if s.key != "shared_preload_libraries"}
    assert cluster["spec"]["postgresql"]["shared_preload_libraries"] == ["pg_stat_statements"]
    assert params["shared_buffers"] == "16GB" and params["max_connections"] == "200"
    assert all(isinstance(v, str) for v in params.values())
    assert cluster["spec"]["imageName"].endswith(":16")
    assert cluster["spec"]["storage"]["size"] == "300Gi"  # 2 x data_size 150GiB
    # the host pgtune sized for, split between huge pages for shared memory (huge_pages on) and the rest
    pages = parts_of(p).postgres.derived["nr_hugepages"]
    assert cluster["spec"]["resources"]["limits"] == {"memory": f"{64 * 1024 - 2 * pages}Mi", "cpu": "16",
                                                      "hugepages-2Mi": f"{2 * pages}Mi"}
    assert cluster["spec"]["resources"]["requests"] == cluster["spec"]["resources"]["limits"]
    assert cluster["spec"]["bootstrap"]["initdb"]["owner"] == p.pgbouncer.auth_user
    service = objects["Service/postgres"]  # no server_host: PgBouncer dials the CloudNativePG primary's Service
    assert service["spec"]["selector"] == {"cnpg.io/cluster": "postgres", "cnpg.io/instanceRole": "primary"}
    assert not part.warnings


def test_cloudnativepg_leaves_out_parameters_the_operator_owns() -> None:
    p = profile("prod", kubernetes={"postgres": "cloudnativepg"}, postgres={"workload": "desktop"})
    part = workloads.render(p, parts_of(p))
    params = by_kind(part.objects)["Cluster/postgres"]["spec"]["postgresql"]["parameters"]
    rendered = {s.key for s in postgres.settings(p)}
    assert {"wal_level", "max_wal_senders"} <= rendered  # pgtune's desktop rules write them
    assert not {"wal_level", "max_wal_senders"} & set(params)
    assert [w.check for w in part.warnings] == ["workloads.cnpg_managed"]
    assert "wal_level" in part.warnings[0].message


def test_quantity_and_userlist_formatting() -> None:
    assert units.format_quantity(8 * units.GIB) == "8Gi"
    assert units.format_quantity(1536 * units.MIB) == "1536Mi"
    assert units.format_quantity(1000) == "1000"
    assert workloads.userlist('a"b', 'p"w') == '"a""b" "p""w"\n'


# ---------------------------------------------------------------- real tools
def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path | None = None) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    log_text = log.read_text(errors="replace") if log and log.exists() else ""
    raise AssertionError(f"server on port {port} did not start (exit {process.poll()})\n{log_text}")


def _expand(argument: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command and args."""
    for name, value in env.items():
        argument = argument.replace(f"$({name})", value)
    return argument


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_redis_starts_with_the_container_command_and_requires_the_password() -> None:
    p = profile("prod")
    objects = by_kind(workloads.render(p, parts_of(p)).objects)
    container = objects["Deployment/redis"]["spec"]["template"]["spec"]["containers"][0]
    workdir = localservers.make_workdir("perfstack-workloads-redis-")
    try:
        conf = workdir / "redis.conf"
        conf.write_text(objects["ConfigMap/redis"]["data"]["redis.conf"])
        password, app_password = "s3cret with spaces", "app s3cret"
        command = [_expand(arg, {"REDIS_PASSWORD": password, "REDIS_APP_PASSWORD": app_password})
                   for arg in container["command"]]
        command[1] = str(conf)  # the ConfigMap mount, locally
        port = localservers.free_port()
        process = subprocess.Popen([*command, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, process)
            client = redis_client.Redis(port=port, socket_connect_timeout=5, socket_timeout=5, retry=NO_RETRY)
            with pytest.raises(redis_client.AuthenticationError):
                client.ping()
            authed = redis_client.Redis(port=port, password=password, socket_connect_timeout=5, retry=NO_RETRY)
            assert authed.config_get("maxmemory")["maxmemory"] == str(redis.maxmemory_bytes(p))
            assert authed.config_get("maxmemory-policy")["maxmemory-policy"] == \
                parts_of(p).redis.value("maxmemory-policy")
            # The app's ACL user: its own password, every key, and no dangerous command.
            app = redis_client.Redis(port=port, username=p.redis.acl_user, password=app_password,
                                     socket_connect_timeout=5, retry=NO_RETRY, decode_responses=True)
            assert app.set("k", "v") and app.get("k") == "v" and app.delete("k") == 1
            for command in (["FLUSHALL"], ["FLUSHDB"], ["CONFIG", "GET", "maxmemory"], ["KEYS", "*"], ["SHUTDOWN"],
                            ["ACL", "LIST"]):
                with pytest.raises(redis_client.exceptions.NoPermissionError):
                    app.execute_command(*command)
            # Every denied command, as Redis's own ACL judges it (DEBUG and MONITOR cannot be run in this test).
            subcommand = {"config": ["GET", "x"], "acl": ["LIST"], "module": ["LIST"], "cluster": ["INFO"]}
            for name in redis.DENIED_COMMANDS:
                arity = authed.execute_command("COMMAND", "INFO", name)[name]["arity"]  # n: exactly n words, -n: at least n
                args = subcommand.get(name, ["0"] * (abs(arity) - 1))
                verdict = authed.execute_command("ACL", "DRYRUN", p.redis.acl_user, name, *args)
                assert b"no permissions" in verdict, (name, verdict)
            assert authed.execute_command("ACL", "DRYRUN", p.redis.acl_user, "GET", "x") == b"OK"
            with pytest.raises(redis_client.AuthenticationError):
                redis_client.Redis(port=port, username=p.redis.acl_user, password=password, retry=NO_RETRY).ping()
        finally:
            process.terminate()
            process.wait(10)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.skipif(shutil.which("pgbouncer") is None, reason="pgbouncer not installed")
def test_pgbouncer_authenticates_against_the_userlist_the_secret_holds() -> None:
    p = profile("prod", pgbouncer={"version": localservers.pgbouncer_version()})  # the PgBouncer installed here
    objects = by_kind(workloads.render(p, parts_of(p)).objects)
    ini = objects["ConfigMap/pgbouncer"]["data"]["pgbouncer.ini"]
    workdir = localservers.make_workdir("perfstack-workloads-pgb-")
    password = 'pa"ss word\'s'
    try:
        userlist = workdir / "userlist.txt"
        userlist.write_text(workloads.userlist(p.pgbouncer.auth_user, password))
        port, nowhere = localservers.free_port(), localservers.free_port()
        local = {"listen_addr": "127.0.0.1", "listen_port": str(port), "unix_socket_dir": str(workdir),
                 "auth_file": str(userlist), "logfile": str(workdir / "pgbouncer.log"),
                 "pidfile": str(workdir / "pgbouncer.pid"),
                 # No server listens: give up on it after a second instead of the client's timeout.
                 "query_wait_timeout": "1", "server_connect_timeout": "1", "server_login_retry": "1",
                 # The CA Secret is not mounted here (and nothing listens).
                 "server_tls_sslmode": None, "server_tls_ca_file": None}
        ini_path = workdir / "pgbouncer.ini"
        ini_path.write_text(localservers.rewrite_ini(ini, local, f"host=127.0.0.1 port={nowhere}"))
        prefix: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for path in (userlist, ini_path):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            prefix = ["runuser", "-u", "postgres", "--"]
        process = subprocess.Popen([*prefix, "pgbouncer", str(ini_path)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            dsn = f"host=127.0.0.1 port={port} dbname={p.pgbouncer.databases[0]} user={p.pgbouncer.auth_user}"
            wait_for_port(port, process, workdir / "pgbouncer.log")
            with pytest.raises(psycopg.OperationalError, match="authentication failed"):
                psycopg.connect(dsn, password="wrong", connect_timeout=5)
            # The right password passes PgBouncer's own check; only the (absent) server fails then.
            with pytest.raises(psycopg.OperationalError) as caught:
                psycopg.connect(dsn, password=password, connect_timeout=5)
            assert "authentication failed" not in str(caught.value), caught.value
        finally:
            process.terminate()
            process.wait(10)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

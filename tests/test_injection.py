"""No profile string can smuggle a directive into a rendered file (issue 12, requirement 2).

A property test draws arbitrary Unicode (newline, CR, NEL, U+2028, U+2029, quotes, backslashes, '#', ';',
'=', NUL, spaces) into every string field of prod (whole, or inserted into a valid value) and proves that
either the profile is refused (exit 2, at that key, with its line) or every file reads back as intended
through its real reader: `postgres -C` for postgres.settings, PgBouncer's SHOW CONFIG, redis-server's CONFIG
GET, the vLLM launcher's argv, a shell reading the env files, a YAML load of every YAML file, and promtool
running the rendered alert tests. One server of each kind per example at most; bounded by max_examples.

Then one regression test per injection the issue reported.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from generators import localservers, paths, render, serverversions
from generators.bundle import Bundle
from generators.drift import redis as redis_drift
from generators.errors import ProfileError
from generators.k8s import dump_yaml
from generators.validation import load_profile

from .conftest import PROFILES, run_cli

HOSTILE = ["\n", "\r", "\x85", "\u2028", "\u2029", "'", '"', "\\", "#", ";", "=", "\x00", " ", "\t", "$(id)",
           "\nauth_type = trust", "\nreplicaof 10.0.0.1 6379", "\n--trust-remote-code", "\nLD_PRELOAD=/x.so",
           '", job=~".+', "\\'; CREATE TABLE smuggled (id int); --", "db\\101", "%YAML", "{{ x }}", "\u200b"]

# Every string field prod renders, with a value it accepts (the seed the strategy breaks).
FIELDS: dict[tuple[str, ...], Any] = {
    ("namespace",): "ai-platform",
    ("hardware", "gpu", "node_label"): "nvidia.com/gpu.product",
    ("hardware", "gpu", "product"): "NVIDIA-H100-80GB-HBM3",
    ("postgres", "settings", "application_name"): "perfstack api",
    ("postgres", "settings", "log_line_prefix"): "%m [%p] ",
    ("postgres", "settings", "search_path"): '"$user", public',
    ("pgbouncer", "listen_addr"): "0.0.0.0",
    ("pgbouncer", "databases"): ["app"],
    ("pgbouncer", "server_host"): "postgres",
    ("pgbouncer", "admin_users"): ["pgbouncer_admin"],
    ("pgbouncer", "auth_user"): "pgbouncer_auth",
    ("llm", "model", "name"): "meta-llama/Llama-3.1-8B-Instruct",
    ("llm", "model_cache", "claim"): "llm-model-cache",
    ("llm", "model_cache", "storage_class"): "standard",
    ("llm", "image"): "vllm/vllm-openai:v0.10.2",
    ("app", "deployment"): "api",
    ("autoscaling", "llm", "prometheus_url"): "http://prometheus.monitoring.svc:9090",
    ("alerts", "blackbox_exporter"): "blackbox.monitoring.svc:9115",
    ("kubernetes", "runbook_url"): "https://runbooks.example.com/perfstack",
    ("kubernetes", "prometheus_rule_labels", "release"): "kube-prometheus-stack",
    ("secrets", "postgres_password", "secret"): "postgres-credentials",
    ("secrets", "redis_password", "secret"): "redis-credentials",
    ("secrets", "redis_password", "key"): "password",
    ("secrets", "pgbouncer_tls"): "pgbouncer-tls",
    ("workers", "exporter_job"): "celery-exporter",
    ("workers", "pools", "default", "image"): "registry.example.com/ai-platform/api:1.0.0",
    ("workers", "pools", "default", "queues"): ["default"],
    ("vector", "collection"): "documents",
}
KEYED = {("kubernetes", "prometheus_rule_labels"), ("postgres", "settings")}  # the strategy also breaks their keys


@st.composite
def hostile(draw: st.DrawFn, seed: str) -> str:
    piece = draw(st.one_of(st.sampled_from(HOSTILE), st.text(min_size=1, max_size=6)))
    how = draw(st.sampled_from(["insert", "whole", "seed", "seed", "append"]))
    if how == "seed":
        return seed
    if how == "whole":
        return draw(st.text(alphabet=st.one_of(st.sampled_from("".join(HOSTILE)), st.characters()), max_size=30))
    if how == "append":
        return seed + piece
    at = draw(st.integers(0, len(seed)))
    return seed[:at] + piece + seed[at:]


@st.composite
def injections(draw: st.DrawFn) -> tuple[tuple[str, ...], Any]:
    path = draw(st.sampled_from(sorted(FIELDS)))
    seed = FIELDS[path]
    if path[:-1] in KEYED and draw(st.booleans()):
        key = draw(hostile(path[-1]))
        return path[:-1] + (key,), seed
    value = [draw(hostile(seed[0]))] if isinstance(seed, list) else draw(hostile(seed))
    return path, value


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    return out


def _write(folder: Path, overlay: dict[str, Any]) -> Path:
    for parent in PROFILES.glob("*.yaml"):
        target = folder / parent.name
        if not target.exists():
            target.write_text(parent.read_text())
    path = folder / "inj.yaml"
    data = {"extends": "prod", "environment": "inj", "namespace": "inj", **overlay}
    if "namespace" in overlay:
        data["namespace"] = overlay["namespace"]
    path.write_text(dump_yaml(data, sort_keys=False))
    return path


# ---------------------------------------------------------------- the readers
# alter_system.sql sets the extensions' settings after the restart that loads them (PostgreSQL 16 and older
# refuse them before): the servers here run as after that restart.
EXTENSIONS = "shared_preload_libraries = 'pg_stat_statements'\n"


@functools.cache
def _shared_postgres() -> localservers.Postgres:
    """One PostgreSQL for every example (stopped at exit)."""
    server = localservers.start_postgres(extra_conf=EXTENSIONS)
    atexit.register(server.cleanup)
    return server


def _postgres_c(bundle: Bundle, names: list[str]) -> dict[str, str]:
    """`postgres -C` of each name, the data folder's included perfstack.conf being the rendered file."""
    server = _shared_postgres()
    localservers._write(server.data_dir / "perfstack.conf", bundle.files[paths.POSTGRESQL_CONF])
    out = {}
    for name in names:
        result = subprocess.run([*localservers._prefix(), str(server.bin_dir / "postgres"), "-D", str(server.data_dir),
                                 "-C", name], capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        out[name] = result.stdout.decode().removesuffix("\n")
    localservers._write(server.data_dir / "perfstack.conf", "")
    return out


def _alter_system(bundle: Bundle) -> dict[str, str]:
    """The rendered ALTER SYSTEM statements run on a real server with standard_conforming_strings off:
    what postgresql.auto.conf then holds."""
    server = _shared_postgres()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM RESET ALL")
        conn.execute("SET standard_conforming_strings = off")
        conn.execute("SET escape_string_warning = off")
        for line in bundle.files[paths.ALTER_SYSTEM_SQL].split("\n"):
            if line.startswith("ALTER SYSTEM SET"):
                conn.execute(line.encode())
        rows = conn.execute("SELECT name, setting FROM pg_file_settings "
                            "WHERE sourcefile LIKE '%postgresql.auto.conf'").fetchall()
        conn.execute("ALTER SYSTEM RESET ALL")
    return dict(rows)


def _pgbouncer_config(bundle: Bundle) -> dict[str, str]:
    """The rendered pgbouncer.ini on a real PgBouncer, with only where it listens, its files, auth_type and TLS
    made local, and the settings newer than the local PgBouncer (prod names a newer pgbouncer.version) left
    out (admin_users, stats_users, auth_user and the databases stay as rendered)."""
    workdir = localservers.make_workdir("perfstack-inj-pgb-")
    port = localservers.free_port()
    admin = bundle.target_settings("pgbouncer")["admin_users"].text.split(",")[0]
    try:
        userlist = workdir / "userlist.txt"
        localservers._write(userlist, f'"{admin}" ""\n')
        ini = localservers.rewrite_ini(bundle.files[paths.PGBOUNCER_INI], {
            "listen_addr": "127.0.0.1", "listen_port": str(port), "unix_socket_dir": str(workdir), "auth_type": "trust",
            "auth_file": str(userlist), "logfile": str(workdir / "pgb.log"), "pidfile": str(workdir / "pgb.pid"),
            "client_tls_sslmode": None, "client_tls_cert_file": None, "client_tls_key_file": None,
            "server_tls_sslmode": None, "server_tls_ca_file": None,
            **{key: None for key, since in serverversions.PGBOUNCER_SINCE.items()
               if not serverversions.at_least(localservers.pgbouncer_version(), since)}})
        ini_path = workdir / "pgbouncer.ini"
        localservers._write(ini_path, ini)
        process = subprocess.Popen(["runuser", "-u", localservers.RUN_AS, "--", "pgbouncer", str(ini_path)]
                                   if localservers._as_root() else ["pgbouncer", str(ini_path)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            localservers._wait(lambda: localservers._port_open(port), 20, "PgBouncer", workdir / "pgb.log")
            with psycopg.connect(f"host=127.0.0.1 port={port} user={admin} dbname=pgbouncer connect_timeout=5",
                                 autocommit=True, prepare_threshold=None) as conn:
                cur = conn.execute("SHOW CONFIG")
                columns = [c.name for c in cur.description or []]
                return {row[columns.index("key")]: row[columns.index("value")] for row in cur.fetchall()}
        finally:
            localservers.stop_process(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _redis_config(conf: str) -> dict[str, str]:
    import redis as redis_client

    server = localservers.start_redis(conf)
    try:
        client = redis_client.Redis(port=server.port, socket_timeout=10, decode_responses=True)
        return {str(k): str(v) for k, v in client.config_get("*").items()}
    finally:
        server.cleanup()


def _launcher_argv(text: str, folder: Path) -> list[str]:
    (folder / "vllm.args").write_text(text)
    script = "grep -v '^#' vllm.args | xargs -d '\\n' python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))'"
    result = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, text=True, timeout=30, check=True)
    return list(json.loads(result.stdout))


def _sourced_env(text: str, folder: Path) -> dict[str, str]:
    (folder / "file.env").write_text(text)
    result = subprocess.run(["env", "-i", "bash", "-c", "set -a; . ./file.env; env -0"], cwd=folder,
                            capture_output=True, text=True, timeout=30, check=True)
    env = dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)
    return {k: v for k, v in env.items() if k not in ("PWD", "SHLVL", "_", "OLDPWD")}


def _promtool_tests(bundle: Bundle, folder: Path) -> None:
    (folder / "prometheus").mkdir(exist_ok=True)
    for name in (paths.ALERT_RULES, paths.ALERT_TESTS):
        (folder / name).write_text(bundle.files[name])
    result = subprocess.run(["promtool", "test", "rules", paths.ALERT_TESTS], cwd=folder, capture_output=True,
                            text=True, timeout=600)  # prod's proofs: about a minute on a loaded 2-core machine
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def check_files(bundle: Bundle, field: tuple[str, ...], folder: Path) -> None:
    """Every rendered file through its reader; the costly real servers only where the field reaches them."""
    for name, text in bundle.files.items():
        if name.endswith((".yaml", ".yml")):
            yaml.safe_load(text)  # one document that loads
        elif name.endswith(".json"):
            json.loads(text)
    for obj in bundle.objects:
        assert yaml.safe_load(dump_yaml(obj)) == obj
    args_text = bundle.files.get(paths.VLLM_ARGS)
    if args_text is not None:
        llm = next(o for o in bundle.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "llm")
        assert _launcher_argv(args_text, folder) == llm["spec"]["template"]["spec"]["containers"][0]["args"]
    app_env = _sourced_env(bundle.files[paths.APP_ENV], folder)
    assert app_env == {k: s.text for k, s in bundle.target_settings("app").items()}
    if field[0] == "postgres":
        expected = {k: s.text for k, s in bundle.target_settings("postgres").items()
                    if k in ("application_name", "log_line_prefix", "search_path") or k == field[-1].lower()}
        assert _postgres_c(bundle, sorted(expected)) == expected
        assert _alter_system(bundle) == {s.key: s.text for s in bundle.target_settings("postgres").values()
                                         if s.scope == "server"}  # the per-role ones are in roles.sql
    if field[0] == "pgbouncer" or field[:2] == ("secrets", "postgres_password"):
        config = _pgbouncer_config(bundle)
        for key in ("admin_users", "stats_users", "auth_user", "auth_query", "pool_mode", "max_client_conn"):
            assert config[key] == bundle.target_settings("pgbouncer")[key].text, key
    if field[:2] == ("secrets", "redis_password"):
        diffs, _ = redis_drift.compare(bundle, _redis_config(bundle.files[paths.REDIS_CONF]))
        assert diffs == []
    if field[0] in ("namespace", "app", "workers", "llm") and shutil.which("promtool"):
        _promtool_tests(bundle, folder)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(injection=injections())
def test_every_string_field_is_refused_or_reads_back(tmp_path_factory: pytest.TempPathFactory,
                                                      injection: tuple[tuple[str, ...], Any]) -> None:
    field, value = injection
    folder = tmp_path_factory.mktemp("inj")
    path = _write(folder, _nested(field, value))
    try:
        profile, source = load_profile(str(path), folder)
    except ProfileError as refused:
        event("refused at load")
        dotted = ".".join(field)
        located = [p for p in refused.problems if p.file == str(path) and p.line]
        assert located, refused.problems
        assert any(dotted.startswith(p.key) or p.key.startswith(dotted) or p.key.startswith(".".join(field[:-1]))
                   for p in located), (dotted, refused.problems)
        return
    try:
        bundle = render.render(profile, source)
    except ProfileError:  # a cross-component check refused it (a name that breaks a rule): refused cleanly
        event("refused by a check")
        return
    event(f"rendered and read back: {field[0]}")
    check_files(bundle, field, folder)


# ---------------------------------------------------------------- the injections, one by one
def _refused(tmp_path: Path, overlay: dict[str, Any], key: str) -> None:
    path = _write(tmp_path, overlay)
    result = run_cli("render", str(path), "--out", str(tmp_path / "out"), catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert f"{path}:" in result.output and key in result.output, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key", ["secret", "key"])
def test_newline_in_redis_secret_name_is_refused(tmp_path: Path, key: str) -> None:
    value = "redis-credentials\nreplicaof 10.0.0.1 6379\nrename-command FLUSHALL \"\""
    _refused(tmp_path, {"secrets": {"redis_password": {key: value}}}, f"secrets.redis_password.{key}")


def test_newline_in_postgres_secret_name_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, {"secrets": {"postgres_password": {"secret": "pg\nauth_type = trust"}}},
             "secrets.postgres_password.secret")


@pytest.mark.parametrize("name", ["meta-llama/Llama-3.1-8B-Instruct --trust-remote-code",
                                  "meta-llama/Llama-3.1-8B-Instruct\n--trust-remote-code",
                                  "meta-llama/Llama-3.1-8B-Instruct\nLD_PRELOAD=/tmp/x.so"])
def test_space_or_newline_in_model_name_is_refused(tmp_path: Path, name: str) -> None:
    _refused(tmp_path, {"llm": {"model": {"name": name}}}, "llm.model.name")


def test_newline_in_a_metric_name_is_refused() -> None:
    """The issue's autoscaling.llm.metric is gone (signal is a Literal); metric names keep their grammar."""
    from pydantic import TypeAdapter, ValidationError

    from generators.types import MetricName
    with pytest.raises(ValidationError):
        TypeAdapter(MetricName).validate_python("vllm:num_requests_running\nimage: evil/image")


def test_quote_in_app_deployment_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path, {"app": {"deployment": 'api", job=~".+'}}, "app.deployment")


@pytest.mark.parametrize("name", ["llm", "pgbouncer", "redis", "postgres"])
def test_app_deployment_with_a_rendered_name_is_refused(tmp_path: Path, name: str) -> None:
    _refused(tmp_path, {"app": {"deployment": name}}, "app.deployment")


def test_backslash_in_postgres_settings_reads_the_same_both_ways(tmp_path: Path) -> None:
    """db\\101 and a quote after a backslash, rendered by perfstack and applied to a real server whose
    standard_conforming_strings is off: ALTER SYSTEM stores exactly the value, postgresql.conf reads it the
    same, and nothing else runs."""
    values = {"application_name": "db\\101", "log_line_prefix": "x\\'; CREATE TABLE smuggled (id int); --"}
    path = _write(tmp_path, {"postgres": {"settings": values}})
    profile, source = load_profile(str(path), tmp_path)
    bundle = render.render(profile, source)
    assert _postgres_c(bundle, sorted(values)) == values
    server = localservers.start_postgres(extra_conf=EXTENSIONS)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("SET standard_conforming_strings = off")
            conn.execute("SET escape_string_warning = off")
            for line in bundle.files[paths.ALTER_SYSTEM_SQL].split("\n"):
                if line.startswith("ALTER SYSTEM SET"):
                    conn.execute(line.encode())
            assert conn.execute("SELECT to_regclass('smuggled')").fetchone() == (None,)
            rows = dict(conn.execute("SELECT name, setting FROM pg_file_settings "
                                     "WHERE sourcefile LIKE '%%auto.conf' AND name = ANY(%s)", (list(values),)).fetchall())
        assert rows == values
    finally:
        server.cleanup()


def test_a_list_value_postgresql_cannot_read_is_refused_at_load(tmp_path: Path) -> None:
    _refused(tmp_path, {"postgres": {"settings": {"search_path": "a b, public"}}}, "postgres.settings.search_path")


def test_postgresql_conf_and_alter_system_sql_agree_on_every_setting(tmp_path: Path) -> None:
    """prod with overrides full of quotes, backslashes and '#', and a list: a real server reads the rendered
    postgresql.conf (pg_file_settings parses it without applying it) and stores the rendered ALTER SYSTEM
    statements (run with standard_conforming_strings off) as the same text, setting by setting."""
    overrides = {"application_name": "it's a \\ # test", "log_line_prefix": "%m [%p] \\x ", "search_path":
                 '"$user", public'}
    path = _write(tmp_path, {"postgres": {"settings": overrides}})
    profile, source = load_profile(str(path), tmp_path)
    bundle = render.render(profile, source)
    server = localservers.start_postgres(extra_conf=EXTENSIONS)
    try:
        localservers._write(server.data_dir / "rendered.conf", bundle.files[paths.POSTGRESQL_CONF])
        main = server.data_dir / "postgresql.conf"
        localservers._write(main, main.read_text() + "\ninclude 'rendered.conf'\n")
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("SET standard_conforming_strings = off")
            conn.execute("SET escape_string_warning = off")
            for line in bundle.files[paths.ALTER_SYSTEM_SQL].split("\n"):
                if line.startswith("ALTER SYSTEM SET"):
                    conn.execute(line.encode())
            rows = conn.execute("SELECT sourcefile, name, setting, error FROM pg_file_settings").fetchall()
    finally:
        server.cleanup()
    by_file: dict[str, dict[str, str]] = {"rendered.conf": {}, "postgresql.auto.conf": {}}
    # postmaster-only parameters that differ from the running server say so; nothing else may err
    assert [r for r in rows if r[3] not in (None, "setting could not be applied")] == []
    for file, name, setting, _ in rows:
        base = Path(file).name
        if base in by_file:
            by_file[base][name] = setting
    expected = {s.key: s.text for s in bundle.target_settings("postgres").values() if s.scope == "server"}
    assert by_file["rendered.conf"] == expected
    assert by_file["postgresql.auto.conf"] == expected

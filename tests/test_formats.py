"""generators/formats.py against the real reader of each format: what it writes reads back as exactly the
value meant and nothing else, and what it cannot write it refuses (and the profile's types refuse first).

Values are arbitrary Unicode with the characters that break formats mixed in (newline, CR, NEL, U+2028,
U+2029, quotes, backslashes, '#', ';', '=', NUL, tabs, leading and trailing space). The real-server
parts reuse one server each and are bounded (max_examples); each runs in well under a minute.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from generators import formats, localservers, types
from generators.k8s import dump_yaml

HOSTILE = "\n\r\x85\u2028\u2029'\"\\#;= \t\x00\x1b\u200b$`{}[],:|*&!%@"
# Text with the hostile characters well represented, and plain text around them.
text = st.text(alphabet=st.one_of(st.sampled_from(HOSTILE), st.characters(codec="utf-8")), max_size=40)
REAL = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


def _one_line_ok(value: str) -> bool:
    try:
        TypeAdapter(types.OneLine).validate_python(value)
    except ValidationError:
        return False
    return True


# ---------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="module")
def postgres() -> Iterator[localservers.Postgres]:
    server = localservers.start_postgres()
    try:
        yield server
    finally:
        server.cleanup()


def _postgres_c(server: localservers.Postgres, conf: str, *names: str) -> list[str]:
    """`postgres -C NAME` of a data folder whose perfstack.conf is `conf` (the running server ignores it
    until a reload; -C reads the files as a starting server would)."""
    localservers._write(server.data_dir / "perfstack.conf", conf)
    out = []
    for name in names:
        result = subprocess.run([*localservers._prefix(), str(server.bin_dir / "postgres"), "-D", str(server.data_dir),
                                 "-C", name], capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        out.append(result.stdout.decode().removesuffix("\n"))
    return out


@REAL
@given(value=text)
def test_postgresql_conf_value_reads_back(postgres: localservers.Postgres, value: str) -> None:
    try:
        written = formats.pg_conf_value(value)
    except formats.FormatError:
        assert not _one_line_ok(value) or "\x00" in value  # the profile's type refuses it first
        return
    conf = f"perfstack.probe = {written}  # {formats.comment(value)}\nperfstack.after = 'sentinel'\n"
    assert _postgres_c(postgres, conf, "perfstack.probe", "perfstack.after") == [value, "sentinel"]


def _auto_conf(server: localservers.Postgres) -> dict[str, str]:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        rows = conn.execute("SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf'"
                            ).fetchall()
    return {name: setting for name, setting in rows}


@REAL
@given(value=text, conforming=st.booleans())
def test_alter_system_literal_reads_back_whatever_standard_conforming_strings(
        postgres: localservers.Postgres, value: str, conforming: bool) -> None:
    try:
        literal = formats.pg_sql_literal(value)
    except formats.FormatError:
        assert not _one_line_ok(value)
        return
    # log_line_prefix: a free string with no check hook (ALTER SYSTEM refuses placeholders like perfstack.x)
    sql = (f"ALTER SYSTEM SET log_line_prefix = {literal};  -- {formats.comment(value)}\n"
           "ALTER SYSTEM SET cluster_name = E'sentinel';\n")
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM RESET ALL")
        conn.execute(f"SET standard_conforming_strings = {'on' if conforming else 'off'}")
        conn.execute("SET escape_string_warning = off")
        for statement in sql.split("\n")[:-1]:  # one at a time, as psql -f runs the rendered file
            conn.execute(statement.encode())
    assert _auto_conf(postgres) == {"log_line_prefix": value, "cluster_name": "sentinel"}


def test_a_backslash_survives_alter_system_with_standard_conforming_strings_off(
        postgres: localservers.Postgres) -> None:
    """The issue's case: 'db\\101' reads as dbA in postgresql.conf unless escaped, and a quote after a
    backslash ended the literal under standard_conforming_strings = off and ran the next statement."""
    for value in ["db\\101", "x\\'; CREATE TABLE smuggled (id int); --"]:
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET ALL")
            conn.execute("SET standard_conforming_strings = off")
            conn.execute(f"ALTER SYSTEM SET application_name = {formats.pg_sql_literal(value)}".encode())
            assert conn.execute("SELECT to_regclass('smuggled')").fetchone() == (None,)
        assert _auto_conf(postgres) == {"application_name": value}
        assert _postgres_c(postgres, f"perfstack.probe = {formats.pg_conf_value(value)}\n", "perfstack.probe") == [value]
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM RESET ALL")


def test_list_parameters_are_separate_literals(postgres: localservers.Postgres) -> None:
    """search_path given as postgresql.conf writes it: ALTER SYSTEM reaches the same schemas (one literal
    'a, b' would be the single schema "a, b")."""
    value = '"$user", Public, "Bar Baz", "q""t"'
    sql = formats.pg_sql_value("search_path", value)
    assert sql == "E'$user', E'public', E'Bar Baz', E'q\"t'"
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute('CREATE SCHEMA IF NOT EXISTS "Bar Baz"; CREATE SCHEMA IF NOT EXISTS "q""t"')
        conn.execute(f"ALTER SYSTEM SET search_path = {sql}")
        stored = _auto_conf(postgres)["search_path"]
        conn.execute("ALTER SYSTEM RESET ALL")
        schemas = []
        for raw in (value, stored):
            conn.execute("SELECT set_config('search_path', %s, false)", (raw,))
            schemas.append(conn.execute("SELECT current_schemas(false)").fetchone())
    assert schemas[0] == schemas[1] == (["public", "Bar Baz", 'q"t'],)


# ---------------------------------------------------------------- PgBouncer
@pytest.fixture(scope="module")
def pgbouncer(postgres: localservers.Postgres) -> Iterator[localservers.PgBouncer]:
    server = localservers.start_pgbouncer("[databases]\napp = host=127.0.0.1\n\n[pgbouncer]\n", postgres)
    try:
        yield server
    finally:
        server.cleanup()


def _show_config(server: localservers.PgBouncer) -> dict[str, str]:
    with psycopg.connect(server.admin_dsn(), autocommit=True, prepare_threshold=None) as conn:
        cur = conn.execute("SHOW CONFIG")
        columns = [c.name for c in cur.description or []]
        return {row[columns.index("key")]: row[columns.index("value")] for row in cur.fetchall()}


@REAL
@given(value=text)
def test_pgbouncer_ini_value_reads_back(pgbouncer: localservers.PgBouncer, value: str) -> None:
    try:
        line = formats.ini_line("server_reset_query", value)
    except formats.FormatError:
        return
    base = pgbouncer.ini_path.read_text().split(";; probe\n")[0]
    before = _show_config(pgbouncer)
    localservers._write(pgbouncer.ini_path, f"{base};; probe\n;; {formats.comment(value)}\n{line}\n")
    with psycopg.connect(pgbouncer.admin_dsn(), autocommit=True, prepare_threshold=None) as conn:
        conn.execute("RELOAD")
    after = _show_config(pgbouncer)
    assert after["server_reset_query"] == value
    assert {k: v for k, v in after.items() if k != "server_reset_query"} == \
        {k: v for k, v in before.items() if k != "server_reset_query"}


def test_pgbouncer_refuses_what_its_reader_cannot_carry() -> None:
    for value in ["a\nauth_type = trust", " a", "a ", "a\x00b", "a\rb"]:
        with pytest.raises(formats.FormatError):
            formats.ini_value(value)


# ---------------------------------------------------------------- Redis
def _redis_config(conf: str) -> dict[str, str]:
    import redis as redis_client

    server = localservers.start_redis(conf)
    try:
        client = redis_client.Redis(port=server.port, socket_timeout=10)
        client.response_callbacks.pop("CONFIG GET", None)  # the raw bytes, not redis-py's decoding
        flat = client.execute_command("CONFIG", "GET", "*")
        pairs = flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2], strict=True)
        return {k.decode(errors="surrogateescape"): v.decode(errors="surrogateescape") for k, v in pairs}
    finally:
        server.cleanup()


@functools.cache
def _redis_baseline() -> dict[str, str]:
    return _redis_config("")


@settings(max_examples=12, deadline=None)
@given(values=st.lists(text, min_size=1, max_size=3))
def test_redis_arguments_and_comments_read_back(values: list[str]) -> None:
    """masteruser and replica-announce-ip are free strings: sdssplitargs reads each back byte for byte, and
    a comment line holding the same text adds no directive."""
    baseline = dict(_redis_baseline())
    value = "".join(values)
    if "\x00" in value:
        with pytest.raises(formats.FormatError):
            formats.redis_arg(value)
        return
    conf = (f"# {formats.comment(value)}\n{formats.redis_line('masteruser', value)}\n"
            f"# {formats.comment(values[0])}\n{formats.redis_line('replica-announce-ip', values[0])}\n")
    config = _redis_config(conf)
    assert config.pop("masteruser") == value
    assert config.pop("replica-announce-ip") == values[0]
    for key in ("masteruser", "replica-announce-ip", "slave-announce-ip", "port", "dir", "logfile", "pidfile"):
        baseline.pop(key, None)
        config.pop(key, None)
    assert config == baseline


# ---------------------------------------------------------------- vllm.args: the launcher's argv
@settings(max_examples=30, deadline=None)
@given(args=st.lists(text, min_size=1, max_size=5))
def test_vllm_args_launcher_passes_one_argument_per_line(tmp_path_factory: pytest.TempPathFactory,
                                                         args: list[str]) -> None:
    try:
        lines = [formats.argv_line(a) for a in args]
    except formats.FormatError:
        assert any("\n" in a or "\x00" in a or not a or a.startswith("#") for a in args)
        return
    folder = tmp_path_factory.mktemp("argv")
    (folder / "vllm.args").write_bytes(("# header\n# " + formats.comment("\n".join(args)) + "\n" + "\n".join(lines)
                                        + "\n").encode())
    launcher = formats.ARGV_LAUNCHER.replace("vllm serve", "python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))'")
    result = subprocess.run(["bash", "-c", launcher], cwd=folder, capture_output=True, timeout=30, check=True)
    assert json.loads(result.stdout) == args


# ---------------------------------------------------------------- env files
@settings(max_examples=40, deadline=None)
@given(value=text)
def test_env_line_is_read_the_same_by_a_shell_and_literally(tmp_path_factory: pytest.TempPathFactory,
                                                            value: str) -> None:
    try:
        line = formats.env_line("PERFSTACK_PROBE", value)
    except formats.FormatError:
        return
    folder = tmp_path_factory.mktemp("env")
    (folder / "app.env").write_text(f"# {formats.comment(value)}\n{line}\n")
    # docker --env-file: the rest of the line, literally
    assert line.split("=", 1)[1] == value
    # systemd EnvironmentFile= and `set -a; . file` unquote and expand: the value has nothing to unquote
    result = subprocess.run(["env", "-i", "bash", "-c", "set -a; . ./app.env; env"], cwd=folder,
                            capture_output=True, text=True, timeout=30, check=True)
    env = dict(item.split("=", 1) for item in result.stdout.splitlines() if "=" in item)
    assert env["PERFSTACK_PROBE"] == value
    assert set(env) <= {"PERFSTACK_PROBE", "PWD", "SHLVL", "_", "OLDPWD"}


def test_env_refuses_shell_and_quote_characters() -> None:
    for value in ["a b", "$(id)", "a'b", 'a"b', "a\\b", "a\nLD_PRELOAD=/x", "a#b", "`id`"]:
        with pytest.raises(formats.FormatError):
            formats.env_line("LLM_MODEL", value)


# ---------------------------------------------------------------- YAML
@settings(max_examples=300, deadline=None)
@given(value=text, key=text)
def test_yaml_emitter_reads_back(value: str, key: str) -> None:
    data = {"a": value, key: [value, {"b": value + "\n" + value}]}
    assert yaml.safe_load(dump_yaml(data)) == data


def test_no_config_template_builds_yaml() -> None:
    templates = Path(__file__).parents[1] / "generators" / "templates"
    assert sorted(p.name for p in templates.iterdir()) == ["alter_system.sql.j2", "pgbouncer.ini.j2",
                                                           "postgresql.conf.j2", "redis.conf.j2", "roles.sql.j2"]


# ---------------------------------------------------------------- PromQL through promtool
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
@settings(max_examples=8, deadline=None)
@given(values=st.lists(text.filter(lambda v: v and "\x00" not in v), min_size=1, max_size=6, unique=True))
def test_promql_matchers_select_exactly_their_value(tmp_path_factory: pytest.TempPathFactory,
                                                    values: list[str]) -> None:
    """Each value as a series label (promtool's series notation) and as a matcher (=, and =~ over all of
    them): each alert fires for its own series only, and the regex matches exactly the values given."""
    folder = tmp_path_factory.mktemp("promql")
    decoys = [v + "x" for v in values if v + "x" not in values] + ["x" + v for v in values if "x" + v not in values]
    rules = [{"alert": f"A{i}", "expr": formats.selector("probe", [formats.matcher("v", v)]) + " > 0"}
             for i, v in enumerate(values)]
    rules.append({"alert": "All", "expr": "count(" + formats.selector(
        "probe", [formats.matcher("v", formats.regex_alternatives(values), "=~")]) + ") > 0", "labels": {}})
    (folder / "rules.yaml").write_text(dump_yaml({"groups": [{"name": "g", "rules": rules}]}))
    series = [{"series": formats.selector("probe", [formats.matcher("v", v)]), "values": "1x5"}
              for v in values + decoys]
    expected = [{"eval_time": "1m", "alertname": f"A{i}", "exp_alerts": [{"exp_labels": {"v": v}}]}
                for i, v in enumerate(values)]
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
             "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": expected,
                        "promql_expr_test": [{"expr": "count(" + formats.selector(
                            "probe", [formats.matcher("v", formats.regex_alternatives(values), "=~")]) + ")",
                            "eval_time": "1m", "exp_samples": [{"labels": "{}", "value": len(values)}]}]}]}
    (folder / "tests.yaml").write_text(dump_yaml(tests, sort_keys=False))
    result = subprocess.run(["promtool", "test", "rules", "tests.yaml"], cwd=folder, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- comments
@settings(max_examples=300, deadline=None)
@given(value=text)
def test_a_comment_stays_on_its_line(value: str) -> None:
    escaped = formats.comment(value)
    assert len(escaped.splitlines()) <= 1 and "\n" not in escaped and "\x00" not in escaped
    assert types.unprintable(escaped) is None


def test_every_template_value_goes_through_formats() -> None:
    """A template interpolates nothing raw: each {{ }} calls a formats.py function (passed in by its target),
    except the environment, a DNS-1123 label."""
    import re

    allowed = ("comment(", "text_comment(", "line(", "pg_name(", "pg_identifier(", "conf_value(", "sql_literal(")
    templates = Path(__file__).parents[1] / "generators" / "templates"
    raw = [(p.name, expr) for p in templates.iterdir() for expr in re.findall(r"{{\s*(.*?)\s*}}", p.read_text())
           if not expr.startswith(allowed) and expr != "profile.environment"]
    assert raw == []

"""Property-based acceptance: every valid profile renders files the real servers and tools accept.

For each profile drawn by tests/strategies.py (written as YAML and loaded like a user's file):

- it loads, passes the cross-component checks and renders; the prod lint refuses it with file:line or
  not at all; every JSON file parses;
- `postgres -C` (PostgreSQL 15, one initdb per test session) reads the rendered postgresql.conf
  settings as an included file and accepts every one: one run parses them all and fails on any unknown
  name or bad value. Only PostgreSQL 15's binaries are installed, so a setting that PostgreSQL 15 does
  not have (io_method, io_workers: 18) is checked against the version it appeared in instead
  (PARAMETER_SINCE), as are settings newer than the drawn version and values newer than it (lz4);
- PgBouncer starts from the rendered pgbouncer.ini (only where it listens, its log and pid files and
  the auth_file path are changed) and logs no ERROR/FATAL/WARNING;
- redis-server starts from the rendered redis.conf and reports the rendered maxmemory and policy;
- `promtool check rules` and `promtool test rules` pass when the bundle has prometheus/alerts.yaml;
- every Kubernetes object validates (kubernetes-validate; CRDs against tests/k8s_schemas).

The default suite runs a bounded number of examples; `scripts/soak` runs the same check over
1,000+ examples (pytest -m soak) and reports how many the real tools rejected (the goal is 0).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from ruamel.yaml import YAML

from generators import localservers, serverversions
from generators.bundle import Bundle
from generators.errors import ProfileError
from generators.pgversions import PARAMETER_SINCE, PARAMETER_UNTIL, VALUE_SINCE
from generators.render import render
from generators.validation import load_profile

from .strategies import profile_documents
from .test_kubernetes_objects import validate as validate_object

NOT_IN_15 = {name for name, since in PARAMETER_SINCE.items() if since > 15}
PROBLEM_LOG = re.compile(r"\b(ERROR|FATAL|WARNING)\b")

yaml = YAML(typ="safe", pure=True)
yaml.default_flow_style = False


# ---------------------------------------------------------------- the real tools, set up once per session
@dataclass
class Tools:
    workdir: Path  # owned by the postgres user
    pg_data: Path
    pg_bin: Path
    checked: int = 0
    notes: list[str] = field(default_factory=list)


def _chown_tree(path: Path) -> None:
    localservers._chown(path)
    for child in path.rglob("*"):
        localservers._chown(child)


@pytest.fixture(scope="session")
def tools() -> Iterator[Tools]:
    workdir = localservers.make_workdir("perfstack-props-")
    pg_bin = localservers.pg_bin_dir()
    data = workdir / "pg" / "data"
    (workdir / "pg").mkdir()
    localservers._chown(workdir / "pg")
    subprocess.run([*localservers._prefix(), str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust"], capture_output=True, text=True, check=True, timeout=180)
    main = data / "postgresql.conf"
    localservers._write(main, main.read_text() + "\ninclude 'perfstack.conf'\n")
    try:
        yield Tools(workdir=workdir, pg_data=data, pg_bin=pg_bin)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def check_postgres(tools: Tools, bundle: Bundle) -> list[str]:
    version = bundle.profile.postgres.version
    problems = []
    lines = []
    for line in bundle.files["postgres/postgresql.conf"].splitlines():
        match = re.match(r"^([a-z_.0-9]+) = (.*?)(\s+#.*)?$", line)
        if not match:
            continue
        name, value = match.group(1), match.group(2)
        since = PARAMETER_SINCE.get(name, 10)
        if since > version:
            problems.append(f"postgresql.conf: {name} does not exist before PostgreSQL {since} (profile: {version})")
        until = PARAMETER_UNTIL.get(name, 18)
        if until < version:
            problems.append(f"postgresql.conf: {name} was removed after PostgreSQL {until} (profile: {version})")
        value_since = VALUE_SINCE.get((name, value.strip("'")), 10)
        if value_since > version:
            problems.append(f"postgresql.conf: {name} = {value} needs PostgreSQL {value_since} (profile: {version})")
        if name not in NOT_IN_15:
            lines.append(f"{name} = {value}")
    localservers._write(tools.pg_data / "perfstack.conf", "\n".join(lines) + "\n")
    result = subprocess.run([*localservers._prefix(), str(tools.pg_bin / "postgres"), "-D", str(tools.pg_data),
                             "-C", "shared_buffers"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        problems.append(f"postgres -C refused postgresql.conf: {result.stderr.strip()}")
    return problems


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            deadline = time.monotonic() + wait  # the group outlives runuser by a moment
            while time.monotonic() < deadline:
                os.killpg(proc.pid, 0)
                time.sleep(0.01)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def check_pgbouncer(tools: Tools, bundle: Bundle) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="pgb-", dir=tools.workdir))
    try:
        localservers._chown(work)
        port = localservers.free_port()
        userlist, log = work / "userlist.txt", work / "pgbouncer.log"
        localservers._write(userlist, '"pgbouncer_auth" "SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2VydmVy"\n')
        # No TCP listener (listen_addr empty): only a Unix socket in a private folder, so no port can clash.
        # Settings of a later PgBouncer than the one installed here (max_prepared_statements: 1.21) are judged by
        # the version table instead, as PostgreSQL 18's are; server TLS needs the CA Secret, not mounted here.
        local = localservers.pgbouncer_version()
        newer = {s.key: None for s in bundle.settings if s.target == "pgbouncer"
                 and s.key in serverversions.PGBOUNCER_SETTINGS and not serverversions.pgbouncer_has(s.key, local)}
        ini = localservers.rewrite_ini(bundle.files["pgbouncer/pgbouncer.ini"], {
            "listen_addr": "", "listen_port": str(port), "unix_socket_dir": str(work),
            "auth_file": str(userlist), "logfile": str(log), "pidfile": str(work / "pgbouncer.pid"),
            "server_tls_sslmode": None, "server_tls_ca_file": None, **newer})
        ini_path = work / "pgbouncer.ini"
        localservers._write(ini_path, ini)
        stderr = work / "stderr.log"
        with open(stderr, "wb") as handle:
            # As the postgres user without runuser (which holds a stopped child for 2 s); its own process group.
            as_user: dict[str, Any] = ({"user": localservers.RUN_AS, "group": localservers.RUN_AS, "extra_groups": []}
                                       if os.geteuid() == 0 else {})
            proc = subprocess.Popen(["pgbouncer", str(ini_path)], stdout=handle, stderr=subprocess.STDOUT,
                                    start_new_session=True, **as_user)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None and not (work / f".s.PGSQL.{port}").exists():
                time.sleep(0.02)
            running = proc.poll() is None
            listening = (work / f".s.PGSQL.{port}").exists()
        finally:
            _stop_group(proc)
        text = (log.read_text(errors="replace") if log.exists() else "") + stderr.read_text(errors="replace")
        problems = [f"pgbouncer: {line.strip()}" for line in text.splitlines() if PROBLEM_LOG.search(line)]
        if not running:
            problems.append(f"pgbouncer exited with {proc.returncode} at start")
        elif not listening:
            problems.append("pgbouncer never opened its socket")
        return problems
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_redis(tools: Tools, bundle: Bundle) -> list[str]:
    try:
        server = localservers.start_redis(bundle.files["redis/redis.conf"],
                                          workdir=Path(tempfile.mkdtemp(prefix="redis-", dir=tools.workdir)))
    except localservers.ServerError as exc:
        return [f"redis-server: {exc}"]
    try:
        client = redis_client.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
        settings_ = bundle.target_settings("redis")
        got = {key: client.config_get(key)[key] for key in ("maxmemory", "maxmemory-policy", "appendonly")}
        want = {"maxmemory": str(settings_["maxmemory"].value), "maxmemory-policy": settings_["maxmemory-policy"].text,
                "appendonly": settings_["appendonly"].text}
        client.close()
        return [f"redis-server: {key} is {got[key]}, rendered {want[key]}" for key in want if got[key] != want[key]]
    finally:
        server.cleanup()


def check_promtool(tools: Tools, bundle: Bundle) -> list[str]:
    if "prometheus/alerts.yaml" not in bundle.files:
        return []
    work = Path(tempfile.mkdtemp(prefix="prom-", dir=tools.workdir))
    try:
        problems = []
        for rel in ("prometheus/alerts.yaml", "prometheus/alerts_test.yaml"):
            if rel in bundle.files:
                (work / Path(rel).name).write_text(bundle.files[rel])
        result = subprocess.run(["promtool", "check", "rules", "alerts.yaml"], cwd=work, capture_output=True,
                                text=True, timeout=60)
        if result.returncode != 0:
            problems.append(f"promtool check rules: {result.stdout}{result.stderr}")
        if (work / "alerts_test.yaml").exists():
            result = subprocess.run(["promtool", "test", "rules", "alerts_test.yaml"], cwd=work, capture_output=True,
                                    text=True, timeout=600)  # the proofs' shape-built cases: minutes when loaded
            if result.returncode != 0:
                problems.append(f"promtool test rules: {result.stdout[-3000:]}{result.stderr[-2000:]}")
        return problems
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_kubernetes(bundle: Bundle) -> list[str]:
    problems = []
    for obj in bundle.objects:
        try:
            validate_object(obj)
        except Exception as exc:  # jsonschema.ValidationError, kubernetes_validate's errors
            problems.append(f"kubernetes {obj['kind']}/{obj['metadata']['name']}: {str(exc)[:500]}")
    return problems


def check_document(tools: Tools, document: dict[str, Any]) -> list[str]:
    """Everything one drawn profile must satisfy; the problems found (empty when all is well)."""
    folder = Path(tempfile.mkdtemp(prefix="profile-", dir=tools.workdir))
    try:
        path = folder / f"{document['environment']}.yaml"
        with open(path, "w") as handle:
            yaml.dump(document, handle)
        try:
            profile, source = load_profile(str(path))
            bundle = render(profile, source)
        except ProfileError as exc:
            # The production lint is part of render's gate: a refusal of an unsafe prod profile is fine
            # when it names file:line; anything else means a valid profile was refused.
            # The strategies draw PostgreSQL memory settings freely, so the memory budget may refuse them too.
            if all("prod lint:" in p.message or "postgres_fits_memory:" in p.message for p in exc.problems):
                return [f"refusal without file:line: {p}" for p in exc.problems if not p.line]
            return [f"a valid profile was refused:\n{exc}"]
        problems: list[str] = []
        for rel, text in bundle.files.items():
            if rel.endswith(".json"):
                json.loads(text)
        problems += check_postgres(tools, bundle)
        problems += check_pgbouncer(tools, bundle)
        problems += check_redis(tools, bundle)
        problems += check_promtool(tools, bundle)
        problems += check_kubernetes(bundle)
        tools.checked += 1
        return problems
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def as_yaml(document: dict[str, Any]) -> str:
    import io

    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


# ---------------------------------------------------------------- explicit examples (failures once found)
# The default SLOs (api 2s, workflow 2m, db query 200ms) as bucket bounds: the libraries' default buckets
# cannot show them (checks.latency_slos_within_buckets).
BUCKETS = {"latency_buckets": {"http": ["100ms", "1s", "2s", "5s"], "workflow": ["10s", "2m", "5m"],
                               "db_query": ["10ms", "200ms", "1s"]}}
SMALLEST = {"environment": "dev", "namespace": "a", "hardware": {"postgres": {"memory": "1GiB", "cpus": 1},
                                                                  "redis": {"memory": "1GiB", "cpus": 1}},
            "postgres": {"version": 10, "workload": "desktop"},
            "pgbouncer": {"replicas": 1, "default_pool_size": 5, "min_pool_size": 1, "reserve_pool_size": 2,
                          "server_host": "db.example.internal"},
            "autoscaling": {"api": {"min_replicas": 1, "max_replicas": 2}}, "app": BUCKETS}
LARGEST = {"environment": "prod", "namespace": "big", "hardware": {
    "postgres": {"memory": "1TiB", "cpus": 128, "storage": "nvme", "data_size": "5TiB"},
    "redis": {"memory": "1TiB", "cpus": 128}, "gpu": {"model": "B200", "memory": "192GiB", "count": 8}},
    "postgres": {"version": 18, "workload": "dw", "max_connections": 1000},
    "pgbouncer": {"server_host": "db.example.internal", "server_tls_sslmode": "verify-full"},
    "llm": {"server": "vllm", "model": {"name": "meta-llama/Llama-3.1-70B-Instruct", "dtype": "bf16"},
            "max_model_len": 131072, "max_num_seqs": 256},
    "autoscaling": {"llm": {"scale_down_stabilization": "1h"}},
    "secrets": {"hf_token": {"secret": "hf-token", "key": "HF_TOKEN"}, "postgres_ca": {"secret": "pg-ca"}}, "app": BUCKETS}

# Found by the soak: a long LLM scale-down window can pass the HorizontalPodAutoscaler's 3600 s limit (now a
# cross-component check); exactly the limit must render.
HPA_LIMIT = {"environment": "staging", "namespace": "llm", "hardware": {
    "postgres": {"memory": "16GiB", "cpus": 4}, "redis": {"memory": "4GiB", "cpus": 2},
    "gpu": {"model": "L4", "memory": "24GiB", "count": 2}},
    "pgbouncer": {"server_host": "db.example.internal"},
    "llm": {"server": "vllm", "model": {"name": "meta-llama/Llama-3.2-3B-Instruct", "dtype": "bf16"},
            "max_model_len": 4096, "max_num_seqs": 8},
    "secrets": {"hf_token": {"secret": "hf-token", "key": "HF_TOKEN"}},
    "autoscaling": {"llm": {"min_replicas": 1, "max_replicas": 3, "scale_down_stabilization": "60min",
                            "scaler": "keda"}}, "app": BUCKETS}


@settings(max_examples=int(os.environ.get("PERFSTACK_PROPERTY_EXAMPLES", "6")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
          derandomize=True)
@given(document=profile_documents())
@example(document=SMALLEST)
@example(document=LARGEST)
@example(document=HPA_LIMIT)
def test_every_valid_profile_renders_what_the_real_tools_accept(tools: Tools, document: dict[str, Any]) -> None:
    problems = check_document(tools, document)
    assert not problems, "\n".join(problems) + "\n--- profile:\n" + as_yaml(document)


# ---------------------------------------------------------------- soak: many examples, counted
SOAK_EXAMPLES = int(os.environ.get("PERFSTACK_SOAK_EXAMPLES", "1000"))
SOAK_SHARDS = int(os.environ.get("PERFSTACK_SOAK_SHARDS", "4"))
SOAK_REPORT = Path(os.environ.get("PERFSTACK_SOAK_REPORT", tempfile.gettempdir()))


@pytest.mark.soak
@pytest.mark.parametrize("shard", range(SOAK_SHARDS))
def test_soak(tools: Tools, shard: int) -> None:
    """SOAK_EXAMPLES / SOAK_SHARDS examples per shard, every failure counted (not stopped at the first)."""
    rejected: list[str] = []
    examples = [0]
    progress = SOAK_REPORT / f"perfstack-soak-{shard}.log"
    progress.unlink(missing_ok=True)
    count = -(-SOAK_EXAMPLES // SOAK_SHARDS)

    @seed(20_000 + shard)
    @settings(max_examples=count, deadline=None, phases=[Phase.generate], database=None,
              suppress_health_check=list(HealthCheck))
    @given(document=profile_documents())
    def run(document: dict[str, Any]) -> None:
        examples[0] += 1
        problems = check_document(tools, document)
        if problems:
            rejected.append("\n".join(problems) + "\n--- profile:\n" + as_yaml(document))
        with open(progress, "a") as handle:  # follow a long soak: tail -f REPORT/perfstack-soak-*.log
            handle.write(f"{examples[0]} {'REJECTED ' + problems[0].splitlines()[0] if problems else 'ok'}\n")

    run()
    checked = examples[0]
    report = SOAK_REPORT / f"perfstack-soak-{shard}.json"
    report.write_text(json.dumps({"shard": shard, "examples": checked, "rejected": len(rejected),
                                  "failures": rejected}, indent=2))
    print(f"soak shard {shard}: {checked} examples, {len(rejected)} rejected")
    assert not rejected, f"{len(rejected)} of {checked} profiles rejected; first:\n{rejected[0]}"

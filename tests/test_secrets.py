"""Secrets and production safety.

- A credential written in a profile (a password/token key anywhere, a URL with user:password@, a
  libpq `password=`, in any key including postgres.settings) is refused, saying how to reference a
  Kubernetes Secret instead, without repeating the value.
- Known secret values planted where a careless program would pick them up (environment variables,
  a secret file beside the profiles, Pulumi secret config) appear in no rendered file, no ConfigMap,
  no explain/diff/validate output, no log; they do reach the Kubernetes Secrets (so the planting worked).
- The production lint run by `validate` refuses trust auth, an exposed PgBouncer without client TLS or
  with an admin console, Redis without protected-mode or a password, and unbounded timeouts, each with
  exit 2, file:line and key; outside production it stays silent.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest

from generators.bundle import Finding, Parts
from generators.errors import CheckError
from generators.lint import findings, is_production
from generators.loader import Source
from generators.render import config_parts, gate, render
from generators.validation import literal_secrets, load_profile

from .conftest import PROFILES, variant, worktree_env
from .test_pulumi import MAIN, Recorder, stack_config

PLANTED = {
    "env": "env-Pl4nted-7c1d",
    "file": "file-Pl4nted-2b9e",
    "pulumi_pg": "pulumi-pg-Pl4nted-5a0f",
    "pulumi_redis": "pulumi-redis-Pl4nted-8e3c",
}
SECRET_ENV = {name: PLANTED["env"] for name in (
    "POSTGRES_PASSWORD", "PGPASSWORD", "REDIS_PASSWORD", "REDISCLI_AUTH", "PERFSTACK_POSTGRES_PASSWORD",
    "PULUMI_CONFIG_PASSPHRASE", "HF_TOKEN")}
CLI = "from generators.cli import main; main()"


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=cwd, capture_output=True, text=True,
                          env=worktree_env(env), timeout=120)


def assert_clean(text: str, where: str) -> None:
    for name, value in PLANTED.items():
        assert value not in text, f"planted {name} secret found in {where}"


# ---------------------------------------------------------------- literal secrets are refused
def source_of(data: dict[str, Any]) -> Source:
    return Source(data=data, files=["p.yaml"])


@pytest.mark.parametrize("data, key", [
    ({"postgres": {"password": "x1"}}, "postgres.password"),
    ({"redis": {"requirepass": "x1"}}, "redis.requirepass"),
    ({"llm": {"hf_token": "hf_x1"}}, "llm.hf_token"),
    ({"llm": {"token": "hf_x1"}}, "llm.token"),
    ({"app": {"openai-api-key": "sk-x1"}}, "app.openai-api-key"),
    ({"app": {"api_key": "sk-x1"}}, "app.api_key"),
    ({"app": {"llm_client": {"secret_key": "x1"}}}, "app.llm_client.secret_key"),
    ({"postgres": {"settings": {"primary_conninfo": "host=a user=r password=x1"}}},
     "postgres.settings.primary_conninfo"),
    ({"postgres": {"settings": {"ssl_passphrase_command": "echo x1"}}}, "postgres.settings.ssl_passphrase_command"),
    ({"pgbouncer": {"server_host": "postgresql://app:x1@db:5432/app"}}, "pgbouncer.server_host"),
    ({"autoscaling": {"llm": {"prometheus_url": "http://admin:x1@prometheus:9090"}}},
     "autoscaling.llm.prometheus_url"),
    ({"pgbouncer": {"databases": ["app", "redis://:x1@cache:6379/0"]}}, "pgbouncer.databases.1"),
])
def test_literal_credential_is_refused_with_how_to_reference_it(data: dict[str, Any], key: str) -> None:
    problems = literal_secrets(source_of(data))
    assert [p.key for p in problems] == [key]
    assert "reference a Kubernetes Secret" in problems[0].message and "pulumi config set --secret" in problems[0].message
    assert "x1" not in problems[0].message


@pytest.mark.parametrize("data", [
    {"secrets": {"postgres_password": {"secret": "pg-creds", "key": "password"}}},  # a reference, not a value
    {"llm": {"max_num_batched_tokens": 8192}},  # "tokens" is not "token"
    {"autoscaling": {"llm": {"prometheus_url": "http://prometheus:9090"}}},
    {"pgbouncer": {"server_host": "postgres.db.svc", "auth_user": "pgbouncer_auth"}},
    {"postgres": {"settings": {"password_encryption": "scram-sha-256"}}},  # named after passwords, holds none
    {"postgres": {"settings": {"ssl_passphrase_command_supports_reload": True}}},
    {"slo": {"llm_time_to_first_token_p95": "1s"}},  # a latency, not a token
])
def test_references_and_lookalikes_are_not_secrets(data: dict[str, Any]) -> None:
    assert literal_secrets(source_of(data)) == []


def test_the_example_profiles_hold_no_credentials() -> None:
    for env in ("dev", "prod"):
        profile, source = load_profile(env, PROFILES)
        assert literal_secrets(source) == []


def test_literal_secret_refused_by_every_command(profile_folder: Path) -> None:
    (profile_folder / "leaky.yaml").write_text(
        f"extends: prod\nenvironment: prod\npostgres:\n  settings:\n    primary_conninfo: 'host=p password={PLANTED['file']}'\n"
        "namespace: ai-platform\nenvironment_matches_file_name: false\n")
    for args in (["validate", "leaky"], ["render", "leaky", "--out", "out"], ["explain", "leaky"],
                 ["diff", "prod", "leaky"]):
        result = cli(profile_folder.parent, "--profiles-dir", str(profile_folder), *args)
        assert result.returncode == 2, args
        assert "leaky.yaml:5:5: postgres.settings.primary_conninfo:" in result.stderr
        assert "reference a Kubernetes Secret" in result.stderr
        assert_clean(result.stdout + result.stderr, " ".join(args))
    assert not (profile_folder.parent / "out").exists()


# ---------------------------------------------------------------- planted secrets never leak
def test_planted_secrets_reach_no_output(profile_folder: Path) -> None:
    work = profile_folder.parent
    (profile_folder / "postgres-password.txt").write_text(PLANTED["file"] + "\n")
    (profile_folder / ".env").write_text(f"POSTGRES_PASSWORD={PLANTED['file']}\n")
    outputs = []
    for args in (["render", "dev", "--out", "out/dev"], ["render", "prod", "--out", "out/prod"],
                 ["render", "prod", "--out", "out/prod", "--check"], ["validate", "dev", "prod"],
                 ["explain", "prod"], ["explain", "prod", "--format", "json"], ["explain", "dev", "pgbouncer"],
                 ["diff", "dev", "prod"], ["diff", "dev", "prod", "--format", "markdown"],
                 ["diff", "dev", "prod", "--format", "json"], ["schema"]):
        result = cli(work, "--profiles-dir", str(profile_folder), *args, env=SECRET_ENV)
        assert result.returncode == 0, f"{args}: {result.stderr}"
        outputs.append((" ".join(args), result.stdout + result.stderr))
    files = [p for p in (work / "out").rglob("*") if p.is_file()]
    assert len(files) > 20
    for path in files:
        assert_clean(path.read_text(), str(path.relative_to(work)))
    for where, text in outputs:
        assert_clean(text, f"`perfstack {where}`")


def test_pulumi_secret_config_reaches_only_the_secrets(caplog: pytest.LogCaptureFixture,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    asyncio.set_event_loop(asyncio.new_event_loop())
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="perfstack", stack="prod", preview=False)
    config = {**stack_config("prod"), "perfstack:postgresPassword": PLANTED["pulumi_pg"],
              "perfstack:redisPassword": PLANTED["pulumi_redis"]}
    pulumi.runtime.set_all_config(config, secret_keys=["perfstack:postgresPassword", "perfstack:redisPassword"])

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(MAIN), run_name="__main__")

    program()
    secrets = [r for r in recorder.resources if r.typ == "kubernetes:core/v1:Secret"]
    others = [r for r in recorder.resources if r.typ != "kubernetes:core/v1:Secret"]
    assert PLANTED["pulumi_pg"] in repr([s.inputs for s in secrets]), "the planted password never reached a Secret"
    assert others
    for resource in others:
        assert_clean(repr(resource.inputs), f"{resource.typ} {resource.name}")
    captured = capsys.readouterr()
    assert_clean(captured.out + captured.err + caplog.text, "the program's output and logs")


# ---------------------------------------------------------------- the production lint
IDENTITY = "\nnamespace: ai-platform\nenvironment_matches_file_name: false\n"  # a child states its own


def validate(folder: Path, text: str, name: str = "p") -> subprocess.CompletedProcess[str]:
    (folder / f"{name}.yaml").write_text(text + IDENTITY)
    return cli(folder.parent, "--profiles-dir", str(folder), "validate", name)


PROD = "extends: prod\nenvironment: prod\n"


def test_example_profiles_pass_the_lint(profile_folder: Path) -> None:
    result = cli(profile_folder.parent, "--profiles-dir", str(profile_folder), "validate", "dev", "prod")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("text, where, key, message", [
    ("pgbouncer:\n  auth_type: trust\n", "p.yaml:4:3", "pgbouncer.auth_type", "`trust` auth"),
    ("exposed: true\npgbouncer:\n  admin_users: []\n", "p.yaml:3:1", "pgbouncer.client_tls", "client TLS"),
    ("exposed: true\npgbouncer:\n  client_tls: true\n", "p.yaml:3:1", "pgbouncer.admin_users", "admin console"),
    ("exposed: true\npgbouncer:\n  client_tls: true\n  admin_users: [ops]\n", "p.yaml:6:3", "pgbouncer.admin_users",
     "admin console"),
    ("postgres:\n  idle_in_transaction_session_timeout: 0\n", "p.yaml:4:3",
     "postgres.idle_in_transaction_session_timeout", "never times out"),
    ("postgres:\n  settings:\n    idle_in_transaction_session_timeout: '0'\n", "p.yaml:5:5",
     "postgres.settings.idle_in_transaction_session_timeout", "never times out"),
    # statement_timeout 0 through an override no longer slips past the checks (PgBouncer's query_timeout).
    ("postgres:\n  settings:\n    statement_timeout: '0'\n", "p.yaml:5:5", "postgres.settings.statement_timeout",
     "query_timeout_covers_statement_timeout"),
])
def test_prod_lint_refuses(profile_folder: Path, text: str, where: str, key: str, message: str) -> None:
    result = validate(profile_folder, PROD + text)
    assert result.returncode == 2, result.stderr
    line = next(line for line in result.stderr.splitlines() if f": {key}:" in line)
    assert where in line and ("prod lint" in line or "_covers_" in line) and message in line, result.stderr


def test_unbounded_statement_and_query_timeouts_are_each_refused(profile_folder: Path) -> None:
    # Timeouts that nest (all unbounded) pass the cross-component checks; the lint refuses them in prod.
    text = "postgres:\n  statement_timeout: 0\npgbouncer:\n  query_timeout: 0\napp:\n  http: {timeout: 0}\n"
    result = validate(profile_folder, PROD + text)
    assert result.returncode == 2
    assert "p.yaml:4:3: postgres.statement_timeout: prod lint:" in result.stderr
    assert "p.yaml:6:3: pgbouncer.query_timeout: prod lint:" in result.stderr
    assert validate(profile_folder, "extends: prod\nenvironment: staging\n" + text, "s").returncode == 0


def test_lint_applies_to_production_only(profile_folder: Path) -> None:
    unsafe = "pgbouncer:\n  auth_type: trust\n"
    assert validate(profile_folder, "extends: prod\nenvironment: staging\n" + unsafe).returncode == 0
    marked = validate(profile_folder, "extends: prod\nenvironment: staging\nproduction: true\n" + unsafe)
    assert marked.returncode == 2 and "pgbouncer.auth_type: prod lint" in marked.stderr
    assert validate(profile_folder, "extends: prod\nenvironment: prod-eu\n" + unsafe).returncode == 2


def _with_redis(parts: Parts, **redis: str) -> Parts:
    settings = [dataclasses.replace(s, text=redis[s.key]) if s.key in redis else s for s in parts.redis.settings]
    return dataclasses.replace(parts, redis=dataclasses.replace(parts.redis, settings=settings))


def _messages(found: list[Finding]) -> list[str]:
    return [f.message for f in found]


def test_lint_refuses_unprotected_redis_and_trust_in_pg_hba() -> None:
    # The generators never render these; the lint reads the rendered parts and objects, so it would catch a regression.
    profile, source = load_profile("prod", PROFILES)
    parts = config_parts(profile)
    bundle = render(profile, source)
    assert findings(profile, parts, bundle.objects) == []
    assert any("protected-mode" in m for m in _messages(findings(profile, _with_redis(parts, **{"protected-mode": "no"}),
                                                                 bundle.objects)))
    no_password = []
    for obj in bundle.objects:
        if obj["kind"] in ("Deployment", "StatefulSet") and obj["metadata"]["name"] == "redis":
            obj = copy.deepcopy(obj)
            for container in obj["spec"]["template"]["spec"]["containers"]:
                container["command"] = [c for c in container["command"] if c not in ("--requirepass", "$(REDIS_PASSWORD)")]
        no_password.append(obj)
    assert any("without a password" in m for m in _messages(findings(profile, parts, no_password)))
    cluster = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "postgres"},
               "spec": {"postgresql": {"pg_hba": ["host all all 10.0.0.0/8 trust"]}}}
    assert any("pg_hba `trust`" in m for m in _messages(findings(profile, parts, [*bundle.objects, cluster])))
    with pytest.raises(CheckError, match="protected-mode"):
        gate(profile, _with_redis(parts, **{"protected-mode": "no"}), source, bundle.objects)


def test_is_production() -> None:
    assert is_production(variant("prod", {}))
    assert not is_production(variant("dev", {}))
    assert is_production(variant("dev", {"production": True}))

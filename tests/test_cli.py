"""The perfstack command line: render/validate/explain/diff/schema, exit codes 0/1/2, deterministic and
atomic rendering, and bad profiles refused with file:line and key while nothing is written."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from generators import output
from generators.cli import main
from generators.loader import display_path

from .conftest import PERFSTACK, PROFILES, REPO, as_written, rendered_bundle, run_cli, snapshot, worktree_env


def render_to(out: Path, env: str = "dev", profiles: Path = PROFILES) -> None:
    result = run_cli("--profiles-dir", profiles, "render", env, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"rendered {env} -> {out}" in result.stdout


# ---------------------------------------------------------------- render
def test_render_writes_the_bundle(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    render_to(out)
    bundle = rendered_bundle("dev")
    assert snapshot(out) == as_written(bundle)
    for expected in ("postgres/postgresql.conf", "postgres/alter_system.sql", "pgbouncer/pgbouncer.ini",
                     "redis/redis.conf", "explain.json"):
        assert expected in bundle.files
    explain = json.loads((out / "explain.json").read_text())
    entry = next(s for s in explain["settings"] if (s["target"], s["key"]) == ("postgres", "shared_buffers"))
    assert set(entry) == {"target", "key", "value", "rule", "inputs"}
    assert entry["value"] == "1GB"  # dev: 4GiB / 4


def test_render_is_deterministic(tmp_path: Path) -> None:
    render_to(tmp_path / "one")
    render_to(tmp_path / "two")
    # and in a fresh process with another hash seed: no set or dict ordering leaks into the files
    env = worktree_env({"PYTHONHASHSEED": "12345"})
    subprocess.run([*PERFSTACK, "--profiles-dir", str(PROFILES), "render", "dev", "--out", str(tmp_path / "three")],
                   check=True, capture_output=True, env=env)
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two") == snapshot(tmp_path / "three")


def test_render_replaces_files_no_longer_rendered(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    render_to(out)
    (out / "stale.conf").write_text("old\n")
    render_to(out)
    assert not (out / "stale.conf").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".dev.")) in ([], [".dev.lock"])


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_committed_rendered_folders_are_fresh(env: str) -> None:
    result = run_cli("--profiles-dir", PROFILES, "render", env, "--check", "--out", REPO / "rendered" / env)
    assert result.exit_code == 0, result.stdout
    assert "is up to date" in result.stdout


def test_render_check_detects_changed_missing_and_extra(tmp_path: Path) -> None:
    out = tmp_path / "dev"
    render_to(out)
    assert run_cli("--profiles-dir", PROFILES, "render", "dev", "--check", "--out", out).exit_code == 0
    (out / "redis" / "redis.conf").write_text("maxmemory 1gb\n")
    (out / "pgbouncer" / "pgbouncer.ini").unlink()
    (out / "postgres" / "extra.conf").write_text("x = 1\n")
    before = snapshot(out)
    result = run_cli("--profiles-dir", PROFILES, "render", "dev", "--check", "--out", out)
    assert result.exit_code == 1
    assert "changed: redis/redis.conf" in result.stdout
    assert "missing: pgbouncer/pgbouncer.ini" in result.stdout
    assert "extra:   postgres/extra.conf" in result.stdout
    assert snapshot(out) == before  # --check writes nothing


def test_render_check_of_a_missing_folder(tmp_path: Path) -> None:
    result = run_cli("--profiles-dir", PROFILES, "render", "dev", "--check", "--out", tmp_path / "none")
    assert result.exit_code == 1
    assert "missing: postgres/postgresql.conf" in result.stdout
    assert not (tmp_path / "none").exists()


def test_a_failing_generator_leaves_the_folder_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "dev"
    render_to(out)
    before = snapshot(out)

    def broken(profile: object) -> None:
        raise RuntimeError("generator failed")

    monkeypatch.setattr("generators.redis.render", broken)
    result = run_cli("--profiles-dir", PROFILES, "render", "dev", "--out", out, catch_exceptions=True)
    assert result.exit_code == 3  # perfstack's own bug: an internal error, not a traceback
    assert "perfstack: internal error: RuntimeError: generator failed" in result.stderr
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("dev", ".dev.lock")] == []


def test_a_failing_write_leaves_the_folder_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "dev"
    render_to(out)
    (out / "postgres" / "postgresql.conf").write_text("# an older render\n")
    before = snapshot(out)
    real_write = Path.write_text
    calls = {"n": 0}

    def write_then_fail(self: Path, *args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", write_then_fail)
    with pytest.raises(output.OutputError, match="No space left on device"):
        output.write_bundle(rendered_bundle("dev"), out)
    monkeypatch.undo()
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("dev", ".dev.lock")] == []


# ---------------------------------------------------------------- validate, explain, diff, schema
def test_validate_examples() -> None:
    result = run_cli("--profiles-dir", PROFILES, "validate", "dev", "prod")
    assert result.exit_code == 0, result.output
    assert "dev: ok" in result.stdout and "prod: ok" in result.stdout
    # warnings are data too: the generators' (pgtune's) as well as the checks'
    assert "dev: warning: pgtune.lz4: wal_compression = lz4 needs" in result.stderr


def test_explain_shows_rule_and_inputs() -> None:
    result = run_cli("--profiles-dir", PROFILES, "explain", "prod", "postgres.shared_buffers")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "postgres.shared_buffers = 16GB",
        "  rule:   pgtune: RAM / 4",
        f"  inputs: memory_kb={64 * 1024 * 1024}",
        f"  set by: hardware.postgres.memory ({display_path(PROFILES / 'prod.yaml')}:8)",
        "  feeds:  postgres_fits_memory: PostgreSQL memory: 42.81GiB of 64GiB (67 % used, headroom 33 %)",
    ]


def test_explain_json_and_target() -> None:
    result = run_cli("--profiles-dir", PROFILES, "explain", "prod", "redis", "--format", "json")
    assert result.exit_code == 0
    entries = json.loads(result.stdout)
    assert {e["target"] for e in entries} == {"redis"}
    maxmemory = next(e for e in entries if e["key"] == "maxmemory")
    assert maxmemory["value"] == "6gb"  # 75% of 8GiB
    assert maxmemory["inputs"] == {"share": 0.75, "memory": "8GiB"}


def test_explain_everything() -> None:
    result = run_cli("--profiles-dir", PROFILES, "explain", "dev")
    assert result.exit_code == 0
    for name in ("postgres.work_mem", "pgbouncer.pool_mode", "redis.maxmemory-policy"):
        assert f"\n{name} = " in "\n" + result.stdout


def test_explain_unknown_setting_is_exit_2_with_suggestion() -> None:
    result = run_cli("--profiles-dir", PROFILES, "explain", "prod", "postgres.shared_bufers")
    assert result.exit_code == 2
    assert "did you mean 'postgres.shared_buffers'?" in result.stderr


def test_diff_text() -> None:
    result = run_cli("--profiles-dir", PROFILES, "diff", "dev", "prod")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "[postgres]" in lines and "[pgbouncer]" in lines and "[redis]" in lines
    assert re.search(r"^  shared_buffers +1GB -> 16GB$", result.stdout, re.M)
    assert re.search(r"^  maxmemory +768mb -> 6gb$", result.stdout, re.M)
    # unchanged settings are not listed
    assert not re.search(r"^  pool_mode ", result.stdout, re.M)


def test_diff_markdown() -> None:
    result = run_cli("--profiles-dir", PROFILES, "diff", "dev", "prod", "--format", "markdown")
    assert result.exit_code == 0
    assert result.stdout.startswith("## perfstack diff: dev → prod\n")
    assert "### postgres\n\n| setting | dev | prod |\n| --- | --- | --- |\n" in result.stdout
    assert "| `shared_buffers` | `1GB` | `16GB` |" in result.stdout


def test_diff_json() -> None:
    result = run_cli("--profiles-dir", PROFILES, "diff", "dev", "prod", "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["a"], data["b"]) == ("dev", "prod")
    assert {"key": "shared_buffers", "a": "1GB", "b": "16GB"} in data["targets"]["postgres"]
    # settings only one side has (parallel workers need >= 4 CPUs) show null on the other
    assert {"key": "max_worker_processes", "a": None, "b": "16"} in data["targets"]["postgres"]


def test_diff_same_environment() -> None:
    result = run_cli("--profiles-dir", PROFILES, "diff", "dev", "dev")
    assert result.exit_code == 0
    assert result.stdout == "no setting differs between dev and dev\n"


def test_schema_prints_the_committed_schema() -> None:
    result = run_cli("schema")
    assert result.exit_code == 0
    assert result.stdout == (PROFILES / "profile.schema.json").read_text()
    assert json.loads(result.stdout)["title"] == "perfstack profile"


# ---------------------------------------------------------------- exit code 2 for usage
@pytest.mark.parametrize("args", [
    ["render"],                                      # missing ENV
    ["render", "dev", "--bogus"],                    # unknown option
    ["diff", "dev", "prod", "--format", "yaml"],     # bad choice
    ["nonsense"],                                    # unknown command
])
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert run_cli("--profiles-dir", PROFILES, *args).exit_code == 2


def test_unknown_environment_exit_2(tmp_path: Path) -> None:
    # not "staging": that is the obvious name of a real profile someone adds (every profile is rendered)
    result = run_cli("--profiles-dir", PROFILES, "render", "no-such-env", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "no-such-env.yaml: profile not found" in result.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- bad profiles: exit 2, file:line and key, nothing written
BAD_PROFILES = {
    # name: (text, line, key or None where the problem has no key)
    "yaml-syntax": ("extends: base\nhardware:\n  postgres: {memory: 4GiB\n", 4, None),
    "wrong-type": ("extends: base\npostgres:\n  version: sixteen\n", 3, "postgres.version"),
    "typo-key": ("extends: base\npostgres:\n  max_conections: 100\n", 3, "postgres.max_conections"),
    "out-of-range": ("extends: base\npostgres:\n  version: 9\n", 3, "postgres.version"),
    "bad-unit": ("extends: base\nredis:\n  timeout: 5 parsecs\n", 3, "redis.timeout"),
    "bad-size": ("extends: base\nhardware:\n  redis: {memory: 8 GiBs}\n", 3, "hardware.redis.memory"),
    "missing-parent": ("environment: x\nextends: bsae\n", 2, "extends"),
    "cycle-a": ("extends: cycle-b\n", 2, "extends"),  # reported where the cycle closes: cycle-b.yaml line 2
    "unknown-pg-parameter": ("extends: base\npostgres:\n  settings:\n    shared_bufers: 2GB\n", 4,
                             "postgres.settings.shared_bufers"),
    "negative-pool": ("extends: base\npgbouncer:\n  default_pool_size: -5\n", 3, "pgbouncer.default_pool_size"),
    "empty": ("", 1, None),
    "duplicate-key": ("extends: base\npostgres:\n  version: 15\n  version: 16\n", 4, None),
    "not-a-mapping": ("- a\n- b\n", 1, None),
    "ratio-over-100": ("extends: base\nredis:\n  maxmemory: 150%\n", 3, "redis.maxmemory"),
    "bad-enum": ("extends: base\npostgres:\n  workload: webb\n", 3, "postgres.workload"),
    "min-over-default": ("extends: base\npgbouncer:\n  min_pool_size: 50\n", 3, "pgbouncer.min_pool_size"),
    "missing-required": ("environment: x\nnamespace: x\n", 1, "hardware"),
    "newline-injection": ('extends: base\npostgres:\n  settings: {application_name: "a\\nfsync = off"}\n', 3,
                          "postgres.settings.application_name"),
    "pool-over-max-connections": ("extends: base\npgbouncer:\n  default_pool_size: 200\n"
                                  "environment: pool-over-max-connections\nnamespace: x\n", 3,
                                  "pgbouncer.default_pool_size"),
    "file_name_not_an_environment": ("extends: base\n", 1, "environment"),
    "tab-indent": ("extends: base\npostgres:\n\tversion: 16\n", 3, None),
}


@pytest.fixture
def bad_folder(profile_folder: Path) -> Path:
    for name, (text, _, _) in BAD_PROFILES.items():
        (profile_folder / f"{name}.yaml").write_text(text)
    (profile_folder / "cycle-b.yaml").write_text("# the other half of the cycle\nextends: cycle-a\n")
    (profile_folder / "not-utf8.yaml").write_bytes(b"extends: base\nnamespace: caf\xe9\n")
    return profile_folder


@pytest.mark.parametrize("name", [*BAD_PROFILES, "not-utf8"])
def test_bad_profile_exit_2_located_nothing_written(bad_folder: Path, tmp_path: Path, name: str) -> None:
    text, line, key = BAD_PROFILES.get(name, ("", 2, None))
    out = tmp_path / "out"
    render_to(out, "dev")  # a previous render that must survive
    before = snapshot(out)
    file = "cycle-b" if name == "cycle-a" else name
    for command in (["render", name, "--out", str(out)], ["validate", name]):
        result = run_cli("--profiles-dir", bad_folder, *command)
        assert result.exit_code == 2, (command, result.output)
        where = rf"{file}\.yaml:{line}\b" if line is not None else rf"{file}\.yaml\b"
        pattern = where + (rf"(:\d+)?: {re.escape(key)}:" if key else "")
        assert re.search(pattern, result.stderr), (pattern, result.stderr)
        assert "Traceback" not in result.output
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "profiles") in (["out"], [".out.lock", "out"])


def test_bad_profile_through_the_installed_command(bad_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "fresh"
    result = subprocess.run([*PERFSTACK, "--profiles-dir", str(bad_folder), "render", "typo-key", "--out", str(out)],
                            capture_output=True, text=True, env=worktree_env())
    assert result.returncode == 2
    assert re.search(r"typo-key\.yaml:3:3: postgres\.max_conections: unknown key; did you mean 'max_connections'\?",
                     result.stderr)
    assert result.stdout == ""
    assert not out.exists()


def test_render_through_the_installed_command(tmp_path: Path) -> None:
    result = subprocess.run([*PERFSTACK, "--profiles-dir", str(PROFILES), "render",
                             "prod", "--out", str(tmp_path / "prod")], capture_output=True, text=True, env=worktree_env())
    assert result.returncode == 0, result.stderr
    assert snapshot(tmp_path / "prod") == as_written(rendered_bundle("prod"))
    check = subprocess.run([*PERFSTACK, "--profiles-dir", str(PROFILES), "render", "prod", "--check", "--out",
                            str(tmp_path / "prod")], capture_output=True, text=True, env=worktree_env())
    assert check.returncode == 0, check.stderr + check.stdout


def test_validate_reports_every_environment(bad_folder: Path) -> None:
    result = run_cli("--profiles-dir", bad_folder, "validate", "dev", "typo-key", "wrong-type")
    assert result.exit_code == 2
    assert "dev: ok" in result.stdout
    assert "typo-key.yaml:3:3: postgres.max_conections" in result.stderr
    assert "wrong-type.yaml:3:3: postgres.version" in result.stderr


# ---------------------------------------------------------------- every command is documented (sqlite-utils test_docs)
README = (REPO / "README.md").read_text()


@pytest.mark.parametrize("command", sorted(main.commands))
def test_command_is_documented(command: str) -> None:
    assert f"`perfstack {command}" in README, f"README.md does not document `perfstack {command}`"
    group = main.commands[command]
    subcommands = list(getattr(group, "commands", {}).values())  # `bench` is a group: bench ENV, bench vector ENV
    for param in [p for c in [group, *subcommands] for p in c.params]:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt != "--help":
                assert opt in README, f"README.md does not document {command} {opt}"


def test_global_options_are_documented() -> None:
    assert "--profiles-dir" in README

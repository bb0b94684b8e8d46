"""The profile: extends overlays, located errors with did-you-mean, the JSON Schema, the example numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from generators.errors import ProfileError
from generators.loader import deep_merge, load_source
from generators.profile import json_schema
from generators.units import GIB
from generators.validation import load_profile

from .conftest import PROFILES, load, run_cli

HARDWARE = "hardware:\n  postgres: {memory: 4GiB, cpus: 2}\n  redis: {memory: 1GiB}\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[tuple[str, int | None, int | None, str, str]]:
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    return [(Path(p.file).name, p.line, p.column, p.key, p.message) for p in info.value.problems]


# ---------------------------------------------------------------- deep merge
def test_deep_merge_mappings_merge_scalars_and_lists_replace() -> None:
    base = {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "s": "x", "only_base": True}
    overlay = {"a": {"c": [3], "d": {"f": 2}}, "s": "y", "only_overlay": 1}
    assert deep_merge(base, overlay) == {"a": {"b": 1, "c": [3], "d": {"e": 1, "f": 2}}, "s": "y",
                                         "only_base": True, "only_overlay": 1}
    assert base == {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "s": "x", "only_base": True}  # not mutated


def test_deep_merge_mapping_replaces_scalar_and_back() -> None:
    assert deep_merge({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert deep_merge({"a": {"b": 2}}, {"a": 1}) == {"a": 1}


def test_extends_overlays_parent(tmp_path: Path) -> None:
    write(tmp_path, "parent", "abstract: true\nredis: {port: 6380}\n" + HARDWARE +
          "pgbouncer:\n  databases: [app, reports]\n  default_pool_size: 30\n  pool_mode: session\n")
    child = write(tmp_path, "child", "extends: parent\nenvironment: child\nnamespace: ns\nhardware:\n"
                  "  postgres: {memory: 8GiB}\npgbouncer:\n  databases: [app]\n  pool_mode: transaction\n")
    profile, source = load_profile(str(child))
    assert profile.environment == "child"
    assert profile.redis.port == 6380                           # inherited scalar
    assert profile.hardware.postgres.memory == 8 * GIB          # child's scalar replaces
    assert profile.hardware.postgres.cpus == 2                  # sibling key of a merged mapping is kept
    assert profile.pgbouncer.databases == ["app"]               # lists replace, not append
    assert profile.pgbouncer.default_pool_size == 30
    assert profile.pgbouncer.pool_mode == "transaction"
    assert [Path(f).name for f in source.files] == ["parent.yaml", "child.yaml"]


def test_extends_chain_of_three(tmp_path: Path) -> None:
    write(tmp_path, "grand", HARDWARE + "redis: {timeout: 10s, tcp_keepalive: 20s}\n")
    write(tmp_path, "middle", "extends: grand\nredis: {timeout: 30s}\n")
    child = write(tmp_path, "leaf", "extends: middle.yaml\nenvironment: leaf-env\nnamespace: leaf\n"
                  "environment_matches_file_name: false\n")
    profile = load(str(child))
    assert (profile.redis.timeout, profile.redis.tcp_keepalive) == (30_000, 20_000)
    assert profile.environment == "leaf-env"


def test_locations_follow_the_file_that_wrote_the_key(tmp_path: Path) -> None:
    write(tmp_path, "parent", HARDWARE + "postgres:\n  version: 16\n  workload: web\n")
    child = write(tmp_path, "child", "extends: parent\npostgres:\n  workload: oltp\n")
    source = load_source(child)
    assert (Path(source.locate(("postgres", "version")).file).name, source.locate(("postgres", "version")).line) \
        == ("parent.yaml", 5)
    assert (Path(source.locate(("postgres", "workload")).file).name, source.locate(("postgres", "workload")).line) \
        == ("child.yaml", 3)


# ---------------------------------------------------------------- extends errors
def test_extends_cycle(tmp_path: Path) -> None:
    write(tmp_path, "a", "extends: b\n" + HARDWARE)
    b = write(tmp_path, "b", "# b\nnamespace: x\nextends: a\n")
    found = problems(b)
    assert found == [("a.yaml", 1, 1, "extends", "extends cycle: b -> a -> b")]


def test_extends_itself(tmp_path: Path) -> None:
    path = write(tmp_path, "self", "namespace: x\n  # comment\nextends: self\n")
    assert problems(path) == [("self.yaml", 3, 1, "extends", "extends cycle: self -> self")]


def test_extends_missing_parent_suggests(tmp_path: Path) -> None:
    write(tmp_path, "base", HARDWARE)
    path = write(tmp_path, "child", "namespace: x\nextends: bsae\n")
    [(file, line, column, key, message)] = problems(path)
    assert (file, line, column, key) == ("child.yaml", 2, 1, "extends")
    assert "unknown profile 'bsae'" in message and "did you mean 'base'?" in message


def test_extends_missing_parent_lists_profiles(tmp_path: Path) -> None:
    write(tmp_path, "base", HARDWARE)
    path = write(tmp_path, "child", "extends: zzz\n")
    [(_, _, _, _, message)] = problems(path)
    assert "profiles here: base, child" in message


def test_extends_must_be_a_name(tmp_path: Path) -> None:
    path = write(tmp_path, "child", "extends: [a, b]\n")
    assert problems(path)[0][:4] == ("child.yaml", 1, 1, "extends")


# ---------------------------------------------------------------- located validation errors
def test_error_in_parent_is_located_in_parent(tmp_path: Path) -> None:
    write(tmp_path, "parent", HARDWARE + "redis:\n  maxmemory_polcy: allkeys-lru\n")
    child = write(tmp_path, "child", "extends: parent\npostgres:\n  max_conections: 10\n")
    found = problems(child)
    assert found[0][:4] == ("parent.yaml", 5, 3, "redis.maxmemory_polcy")     # parent first
    assert "did you mean 'maxmemory_policy'?" in found[0][4]
    assert found[1][:4] == ("child.yaml", 3, 3, "postgres.max_conections")
    assert "did you mean 'max_connections'?" in found[1][4]


def test_every_problem_is_reported_in_reading_order(tmp_path: Path) -> None:
    path = write(tmp_path, "many", HARDWARE + "postgres:\n  version: 9\n  statement_timeout: 30\n"
                 "  settings: {shared_bufers: 1GB}\npgbouncer:\n  default_pool_size: -5\n"
                 "redis:\n  maxmemory: 150%\n  timeout: 5 parsecs\nslo:\n  cpu_max: 2\n")
    found = problems(path)
    assert [(line, key) for _, line, _, key, _ in found] == [
        (5, "postgres.version"), (6, "postgres.statement_timeout"), (7, "postgres.settings.shared_bufers"),
        (9, "pgbouncer.default_pool_size"), (11, "redis.maxmemory"), (12, "redis.timeout"), (14, "slo.cpu_max")]
    messages = {key: message for _, _, _, key, message in found}
    assert "greater than or equal to 10" in messages["postgres.version"]
    assert "write 30s or 30ms" in messages["postgres.statement_timeout"]
    assert "did you mean 'shared_buffers'?" in messages["postgres.settings.shared_bufers"]
    assert "between 0 and 1" in messages["redis.maxmemory"]


@pytest.mark.parametrize(("text", "key", "expected"), [
    ("hardwares: {}\n", "hardwares", "did you mean 'hardware'?"),
    ("hardware:\n  postgres: {memory: 4GiB, cpu: 2}\n", "hardware.postgres.cpu", "did you mean 'cpus'?"),
    ("pgbouncer: {pool_mod: session}\n", "pgbouncer.pool_mod", "did you mean 'pool_mode'?"),
    ("app: {db_pool: {max_overflw: 3}}\n", "app.db_pool.max_overflw", "did you mean 'max_overflow'?"),
    ("postgres: {settings: {effective_cache: 1GB}}\n", "postgres.settings.effective_cache",
     "did you mean 'effective_cache_size'?"),
    ("slo: {api_latency: 2s}\n", "slo.api_latency", "did you mean 'api_latency_p95'?"),
])
def test_did_you_mean(tmp_path: Path, text: str, key: str, expected: str) -> None:
    path = write(tmp_path, "typo", "extends: base\n" + text)
    write(tmp_path, "base", HARDWARE)
    found = [p for p in problems(path) if p[3] == key]
    assert found and expected in found[0][4], problems(path)


def test_unknown_key_without_near_match_lists_the_keys(tmp_path: Path) -> None:
    write(tmp_path, "base", HARDWARE)
    path = write(tmp_path, "typo", "extends: base\nredis: {zzzzzz: 1}\n")
    [(_, _, _, key, message)] = problems(path)
    assert key == "redis.zzzzzz" and "expected one of:" in message and "maxmemory_policy" in message


def test_union_alternatives_are_one_message(tmp_path: Path) -> None:
    write(tmp_path, "base", HARDWARE)
    path = write(tmp_path, "bad", "extends: base\npostgres: {settings: {work_mem: [1, 2]}}\n")
    [(_, line, _, key, message)] = problems(path)
    assert (line, key) == (2, "postgres.settings.work_mem")
    assert message == ("Input should be a valid string or a valid integer or a valid number or a valid boolean "
                       "(got [1, 2])")


@pytest.mark.parametrize(("text", "key"), [
    ('postgres: {settings: {application_name: "a\\nlisten_addresses = \'*\'"}}\n', "postgres.settings.application_name"),
    ('postgres: {settings: {"x.y = 1\\nfsync": "off"}}\n', "postgres.settings.x.y = 1\nfsync"),
    ('pgbouncer: {admin_users: ["admin\\nauth_type = trust"]}\n', "pgbouncer.admin_users.0"),
    ('pgbouncer: {server_host: "db port=1"}\n', "pgbouncer.server_host"),
])
def test_values_cannot_inject_config_lines(tmp_path: Path, text: str, key: str) -> None:
    write(tmp_path, "base", HARDWARE)
    path = write(tmp_path, "inject", "extends: base\n" + text)
    assert [p[3] for p in problems(path)] == [key]


def test_bounds_are_located_on_their_key(tmp_path: Path) -> None:
    write(tmp_path, "base", HARDWARE)
    path = write(tmp_path, "bounds", "extends: base\npgbouncer:\n  default_pool_size: 10\n  min_pool_size: 20\n"
                 "autoscaling:\n  api: {min_replicas: 9, max_replicas: 3}\n")
    assert [(line, key) for _, line, _, key, _ in problems(path)] == [
        (4, "pgbouncer.min_pool_size"), (6, "autoscaling.api.max_replicas")]


# ---------------------------------------------------------------- JSON Schema
def test_schema_command_matches_committed_copy() -> None:
    assert json_schema() == (PROFILES / "profile.schema.json").read_text()


def test_example_profiles_point_editors_at_the_schema() -> None:
    for name in ("base", "dev", "prod"):
        first = (PROFILES / f"{name}.yaml").read_text().splitlines()[0]
        match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
        assert match, f"{name}.yaml: {first}"
        assert (PROFILES / match.group(1)).resolve() == (PROFILES / "profile.schema.json").resolve()


def test_example_profiles_are_valid_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(json_schema()))
    for name in ("base", "dev", "prod"):
        data = YAML(typ="safe").load((PROFILES / f"{name}.yaml").read_text())
        assert [e.message for e in validator.iter_errors(data)] == [], name


def test_schema_rejects_unknown_keys_and_bad_units() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(json_schema()))
    assert not validator.is_valid({"hardware": {"postgres": {"memory": "4GiB", "cpuz": 2}}})
    assert not validator.is_valid({"hardware": {"postgres": {"memory": "4 parsecs"}}})
    assert not validator.is_valid({"postgres": {"statement_timeout": "30"}})
    assert validator.is_valid({"postgres": {"statement_timeout": "30s"}, "extends": "base"})


# ---------------------------------------------------------------- the example profiles carry the numbers
def test_dev_numbers() -> None:
    dev = load("dev")
    assert dev.environment == "dev"
    assert dev.slo.api_latency_p95 == 5_000
    assert dev.slo.db_query_p95 == 500
    assert dev.slo.llm_latency_p95 == 10_000
    assert dev.slo.memory_max == 2 * GIB
    assert dev.slo.cpu_max == pytest.approx(0.50)


def test_prod_numbers() -> None:
    prod = load("prod")
    assert prod.environment == "prod"
    assert prod.slo.api_latency_p95 == 2_000
    assert prod.slo.db_query_p95 == 200
    assert prod.slo.llm_latency_p95 == 5_000
    assert prod.slo.workflow_p95 == 120_000
    assert prod.slo.memory_max == 4 * GIB
    assert prod.slo.cpu_max == pytest.approx(0.80)
    assert (prod.app.db_pool.size, prod.app.db_pool.max_overflow) == (20, 40)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_shared_numbers(env: str) -> None:
    p = load(env)
    assert p.app.db_pool.pre_ping is True
    assert p.app.db_pool.recycle == 3_600_000                      # 1 h
    assert p.postgres.statement_timeout == 30_000
    assert p.postgres.lock_timeout == 10_000
    assert p.postgres.idle_in_transaction_session_timeout == 60_000
    assert (p.app.query_cache.size, p.app.query_cache.ttl) == (2000, 300_000)     # 2,000 / 5 min
    assert (p.app.llm_cache.size, p.app.llm_cache.ttl) == (3000, 1_800_000)      # 3,000 / 30 min
    assert p.llm is not None
    assert p.llm.gpu_memory_utilization == pytest.approx(0.80)
    assert p.llm.request_timeout == 180_000                                       # model timeout 180 s
    assert p.llm.warmup is True
    assert p.slo.cache_hit_ratio.query == pytest.approx(0.70)
    assert p.slo.cache_hit_ratio.llm == pytest.approx(0.60)
    assert p.slo.pool_utilization_max == pytest.approx(0.80)


# Values whose reason is not obvious from the key: the line that sets each one carries a comment.
COMMENTED = {
    "base": ["workload", "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
             "log_min_duration_statement", "pool_mode", "query_timeout", "maxmemory", "maxmemory_policy",
             "persistence", "gpu_memory_utilization", "warmup", "request_timeout",
             "llm_cache", "http", "pool_utilization_max", "scale_down_stabilization"],
    "dev": ["server", "max_num_seqs"],
    "prod": ["max_connections", "max_num_seqs"],
}


@pytest.mark.parametrize("name", sorted(COMMENTED))
def test_non_obvious_values_carry_a_comment(name: str) -> None:
    lines = (PROFILES / f"{name}.yaml").read_text().splitlines()
    for key in COMMENTED[name]:
        setting = [line for line in lines if re.search(rf"\b{key}:", line)]
        assert setting, f"{name}.yaml sets no {key}"
        # the comment sits on the line itself or, for flow mappings spread over lines, on the mapping's last line
        assert any("#" in line for line in setting) or any(
            "#" in lines[i + 1] for i, line in enumerate(lines) if re.search(rf"\b{key}:", line) and i + 1 < len(lines)
            and lines[i + 1].startswith(" ")), f"{name}.yaml: {key} has no comment"


def test_environment_defaults_to_the_file_name_only_without_a_parent(tmp_path: Path) -> None:
    assert load(str(write(tmp_path, "staging-2", "namespace: s\n" + HARDWARE))).environment == "staging-2"
    [(file, line, _, key, message)] = problems(write(tmp_path, "my_env", "namespace: s\n" + HARDWARE))
    assert (file, line, key) == ("my_env.yaml", 1, "environment")
    assert "defaults to the file name 'my_env'" in message and "set `environment:`" in message


def test_a_profile_without_a_namespace_is_refused(tmp_path: Path) -> None:
    [(file, line, _, key, message)] = problems(write(tmp_path, "solo", HARDWARE))
    assert (file, line, key) == ("solo.yaml", 1, "namespace") and "sets its own namespace" in message


def test_a_child_cannot_inherit_another_environments_identity(tmp_path: Path) -> None:
    write(tmp_path, "prod", "environment: prod\nnamespace: ai-platform\n" + HARDWARE)
    found = problems(write(tmp_path, "staging", "extends: prod\n"))
    assert [(f, key) for f, _, _, key, _ in found] == [("staging.yaml", "environment"), ("staging.yaml", "namespace")]
    assert "sets its own namespace instead of inheriting 'ai-platform' from" in found[1][4]
    assert "instead of inheriting 'prod'" in found[0][4]
    # the environment follows the file name unless the profile says otherwise
    [(file, line, _, key, message)] = problems(write(tmp_path, "staging", "extends: prod\nenvironment: qa\n"
                                                                          "namespace: qa\n"))
    assert (file, line, key) == ("staging.yaml", 2, "environment") and "differs from the file name" in message
    write(tmp_path, "staging", "extends: prod\nenvironment: qa\nnamespace: qa\nenvironment_matches_file_name: false\n")
    assert load(str(tmp_path / "staging.yaml")).environment == "qa"
    # the statement is about that one file: a child of staging does not inherit it
    found = problems(write(tmp_path, "qa2", "extends: staging\nenvironment: qa\nnamespace: qa2\n"))
    assert [key for _, _, _, key, _ in found] == ["environment"]


def test_an_abstract_profile_is_not_rendered_and_not_inherited(tmp_path: Path) -> None:
    write(tmp_path, "shared", "abstract: true\nnamespace: x\n" + HARDWARE)
    [(file, line, _, key, message)] = problems(tmp_path / "shared.yaml")
    assert (file, line, key) == ("shared.yaml", 1, "abstract") and "abstract" in message
    child = load(str(write(tmp_path, "team", "extends: shared\nenvironment: team\nnamespace: team\n")))
    assert child.namespace == "team"
    result = run_cli("render", "shared", "--profiles-dir", tmp_path)  # a bad option place is fine for click groups
    assert result.exit_code == 2


def test_a_new_model_replaces_the_whole_model_block(tmp_path: Path) -> None:
    write(tmp_path, "shared", "abstract: true\nhardware:\n  postgres: {memory: 4GiB}\n"
          "  redis: {memory: 1GiB}\n  gpu: {memory: 80GiB}\n"
          "llm:\n  model: {name: meta-llama/Llama-3.1-70B-Instruct, dtype: fp8, gated: false}\n")
    child, _ = load_profile(str(write(tmp_path, "small", "extends: shared\nenvironment: small\nnamespace: s\n"
                                                         "llm:\n  model: {name: Qwen/Qwen2.5-7B-Instruct}\n")))
    # the parent's dtype and gated flag are not kept under another model's name; the shape is the new model's
    assert child.llm is not None and child.llm.model.dtype == "bf16" and child.llm.model.gated is None
    from generators import llm
    assert llm.architecture(child).num_hidden_layers == 28 and llm.architecture(child).parameters == 7_615_616_512


def test_missing_required_key_is_located_at_the_file(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "bare", "namespace: x\n")) == [
        ("bare.yaml", 1, None, "hardware", "required key is missing")]


def test_enum_typo_suggests(tmp_path: Path) -> None:
    write(tmp_path, "base", HARDWARE)
    [(_, line, _, key, message)] = problems(write(tmp_path, "enum", "extends: base\nredis: {persistence: aff}\n"))
    assert (line, key) == (2, "redis.persistence")
    assert message.endswith("got 'aff'; did you mean 'aof'?")

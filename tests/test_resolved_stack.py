"""One resolved stack (ARCHITECTURE.md): every check and alert reads what is really rendered, whatever set it,
the production lint and the checks are one gate on every command, and the stage graph stays explicit.

Overrides go through `postgres.settings`, the escape hatch that used to bypass every check.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from generators import checks, units
from generators.errors import CheckError
from generators.render import config_parts, render

from .conftest import PERFSTACK, PROFILES, REPO, rules_of, variant, worktree_env


def errors(overrides: dict[str, Any], name: str, base: str = "prod") -> list[str]:
    profile = variant(base, overrides)
    return [f.message for f in checks.run(profile, config_parts(profile)) if f.check == name and f.severity == "error"]


def pg(settings: dict[str, Any], **rest: Any) -> dict[str, Any]:
    return {"postgres": {"settings": settings, **rest}}


# ---------------------------------------------------------------- overrides are read in PostgreSQL's units
@pytest.mark.parametrize("name, value, internal", [
    ("shared_buffers", "60GB", 60 * 1024 * 1024), ("shared_buffers", 1024, 8192),  # bare: 8kB blocks
    ("max_wal_size", 2048, 2048 * 1024), ("work_mem", "64MB", 65536), ("work_mem", 4096, 4096),  # MB, kB
    ("statement_timeout", "90s", 90_000), ("statement_timeout", 5000, 5000), ("statement_timeout", "2min", 120_000),
    ("max_connections", 40, 40), ("wal_buffers", -1, -1),
])
def test_override_values_are_resolved_in_internal_units(name: str, value: Any, internal: int) -> None:
    profile = variant("prod", pg({name: value}))
    assert config_parts(profile).postgres.value(name) == internal


def test_an_override_the_server_cannot_read_is_refused_at_load(profile_folder: Path) -> None:
    (profile_folder / "p.yaml").write_text("extends: prod\nenvironment: prod\nnamespace: ai-prod\nenvironment_matches_file_name: false\npostgres:\n  settings:\n"
                                           "    statement_timeout: soon\n")
    result = subprocess.run([*PERFSTACK, "--profiles-dir", str(profile_folder), "render", "p", "--out",
                             str(profile_folder.parent / "out")], capture_output=True, text=True, env=worktree_env())
    assert result.returncode == 2
    assert "p.yaml:7:5: postgres.settings.statement_timeout: PostgreSQL 16 reads statement_timeout as a whole number" in result.stderr
    assert not (profile_folder.parent / "out").exists()


# ---------------------------------------------------------------- each check: at the line passes, one over fails
def test_max_connections_override_against_pgbouncer() -> None:
    # prod: 2 PgBouncer replicas x (20 + 5) = 50 server connections + 25 for PgBouncer's surge pod while it rolls;
    # 78 - 3 reserved = 75 is exactly enough.
    assert errors(pg({"max_connections": 78}), "pgbouncer_fits_postgres") == []
    [message] = errors(pg({"max_connections": 77}), "pgbouncer_fits_postgres")
    assert "= 75, but postgres.settings.max_connections 77 - 3 reserved leaves 74" in message
    [message] = errors(pg({"max_connections": 78, "superuser_reserved_connections": 4}), "pgbouncer_fits_postgres")
    assert "78 - 4 reserved leaves 74" in message


def test_statement_timeout_override_against_pgbouncer_and_the_slo() -> None:
    # prod: pgbouncer.query_timeout 35s must cover statement_timeout; slo.db_query_p95 200ms must fit under it.
    assert errors(pg({"statement_timeout": "35s"}), "query_timeout_covers_statement_timeout") == []
    [message] = errors(pg({"statement_timeout": 35001}), "query_timeout_covers_statement_timeout")  # bare: ms
    assert "pgbouncer.query_timeout 35s (35000 ms) is below postgres.settings.statement_timeout 35001ms (35001 ms)" \
        in message
    slo = variant("prod", {}).slo.db_query_p95
    assert errors(pg({"statement_timeout": f"{slo}ms"}), "db_query_slo_within_statement_timeout") == []
    [message] = errors(pg({"statement_timeout": f"{slo - 1}ms"}), "db_query_slo_within_statement_timeout")
    assert f"postgres.settings.statement_timeout {slo - 1}ms ({slo - 1} ms) is below slo.db_query_p95" in message


def test_memory_budget_counts_the_rendered_values() -> None:
    profile = variant("prod", {})
    part = config_parts(profile).postgres
    memory_kb = profile.hardware.postgres.memory // 1024
    others = (part.value("work_mem") * part.value("max_connections") + part.value("maintenance_work_mem")
              + part.value("autovacuum_max_workers") * part.value("autovacuum_work_mem"))
    fits = (memory_kb - others) // 8 * 8  # shared_buffers is in 8kB blocks: a value between is refused at load
    assert errors(pg({"shared_buffers": f"{fits}kB"}), "postgres_fits_memory") == []
    [message] = errors(pg({"shared_buffers": f"{fits + 8}kB"}), "postgres_fits_memory")
    assert f"({others + fits + 8} kB) exceeds hardware.postgres.memory 64GiB ({memory_kb} kB)" in message
    [message] = errors(pg({"shared_buffers": "60GB"}), "postgres_fits_memory")  # the case, on a 64 GiB host
    assert "shared_buffers 60GiB" in message


def test_refusal_points_at_the_override(profile_folder: Path) -> None:
    (profile_folder / "p.yaml").write_text("extends: prod\nenvironment: prod\nnamespace: ai-prod\nenvironment_matches_file_name: false\npostgres:\n  settings:\n"
                                           "    max_connections: 40\n")
    result = subprocess.run([*PERFSTACK, "--profiles-dir", str(profile_folder), "validate", "p"],
                            capture_output=True, text=True, env=worktree_env())
    assert result.returncode == 2
    assert re.search(r"p\.yaml:7:5: postgres\.settings\.max_connections: pgbouncer_fits_postgres: .* leaves 37",
                     result.stderr)


# ---------------------------------------------------------------- alert thresholds follow overrides
def _threshold(profile_overrides: dict[str, Any], alert: str) -> float:
    profile = variant("prod", profile_overrides)
    return next(a.threshold for found in rules_of(profile).values() for a in found if a.name == alert)


def test_alert_thresholds_follow_postgres_settings_overrides() -> None:
    util = variant("prod", {}).slo.pool_utilization_max
    assert _threshold(pg({"max_connections": 100}), "PostgresConnectionsHigh") == pytest.approx(util * (100 - 3))
    assert _threshold(pg({"max_connections": 100, "superuser_reserved_connections": 10}),
                      "PostgresConnectionsHigh") == pytest.approx(util * 90)
    assert _threshold(pg({"idle_in_transaction_session_timeout": "2min"}), "PostgresLongTransaction") == 120
    bundle = render(variant("prod", pg({"max_connections": 100})))
    assert f"> {util * 97:g}" in bundle.files["prometheus/alerts.yaml"]
    board = next(text for path, text in bundle.files.items() if path.startswith("grafana/") and "postgres" in path)
    assert f"{util * 97:g}" in board  # the dashboard's threshold line is the alert's


# ---------------------------------------------------------------- one gate for every command
UNSAFE_PROD = "extends: prod\nenvironment: prod\nnamespace: ai-prod\nenvironment_matches_file_name: false\npgbouncer:\n  auth_type: trust\n"
REFUSAL = "p.yaml:6:3: pgbouncer.auth_type: prod lint: PgBouncer `trust` auth"


@pytest.mark.parametrize("command", [
    ["render", "p", "--out", "OUT"], ["render", "p", "--check", "--out", "OUT"], ["validate", "p"],
    ["explain", "p"], ["diff", "prod", "p"], ["drift", "p", "--postgres", "host=127.0.0.1 port=1 dbname=x"],
])
def test_every_command_refuses_an_unsafe_prod_profile(profile_folder: Path, command: list[str]) -> None:
    (profile_folder / "p.yaml").write_text(UNSAFE_PROD)
    out = profile_folder.parent / "out"
    args = [str(out) if a == "OUT" else a for a in command]
    result = subprocess.run([*PERFSTACK, "--profiles-dir", str(profile_folder), *args], capture_output=True,
                            text=True, env=worktree_env(), timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert REFUSAL in result.stderr
    assert not out.exists()


def test_the_pulumi_program_refuses_the_same_profile(tmp_path: Path) -> None:
    from .test_pulumi import Recorder, copy_profiles, run_program

    folder = copy_profiles(tmp_path)
    (folder / "p.yaml").write_text(UNSAFE_PROD)
    recorder = Recorder()
    with pytest.raises(Exception) as caught:
        run_program("prod", recorder, profile=str(folder / "p.yaml"))
    assert recorder.resources == []
    assert "pgbouncer.auth_type: prod lint: PgBouncer `trust` auth" in str(caught.value)


def test_unbounded_timeouts_render_nowhere_in_prod() -> None:
    with pytest.raises(CheckError, match="statement_timeout = 0 never times out"):
        render(variant("prod", {"postgres": {"statement_timeout": 0}, "pgbouncer": {"query_timeout": 0},
                                "app": {"http": {"timeout": 0}}}))


# ---------------------------------------------------------------- the stage graph stays explicit
GENERATORS = REPO / "generators"
TARGET_MODULES = {"postgres", "pgbouncer", "redis", "llm", "app", "autoscaling"}


def _imports(path: Path) -> set[str]:
    """Modules of the generators package that `path` imports at module level (as dotted names)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rsplit(".", 1)[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(node.level - 1, 0)):
                base = base.rsplit(".", 1)[0]
            module = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            if not module.startswith("generators"):
                continue
            if node.module is not None:  # `from . import x` imports the submodule x, not the package's own __init__
                found.add(module)
            for alias in node.names:
                found.add(f"{module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("generators")}
    return found


def _module_files() -> dict[str, Path]:
    out = {}
    for path in GENERATORS.rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        out[name] = path
    return out


def test_no_stage_calls_a_target_rule_function() -> None:
    modules = _module_files()
    readers = [m for m in modules if m.startswith(("generators.alerts", "generators.objects", "generators.checks",
                                                   "generators.lint", "generators.dashboards", "generators.workloads"))]
    for name in readers:
        targets = {i.split(".")[1] for i in _imports(modules[name]) if i.count(".") >= 1
                   and i.split(".")[1] in TARGET_MODULES and i in (f"generators.{i.split('.')[1]}",)}
        own = {name.rsplit(".", 1)[-1]} if name.startswith("generators.objects.") else set()
        assert targets - own == set(), f"{name} imports target module(s) {targets - own}: read the parts instead"


def test_objects_are_built_in_one_package() -> None:
    # No config target builds Kubernetes objects: objects/ does, from the parts.
    profile = variant("prod", {})
    assert all(part.objects == [] for part in config_parts(profile).all())
    bundle = render(profile)
    assert {o["kind"] for o in bundle.objects} >= {"Deployment", "HorizontalPodAutoscaler", "ConfigMap",
                                                    "PrometheusRule", "Service", "PodDisruptionBudget"}


def test_targets_are_registered_by_reference() -> None:
    for path in GENERATORS.rglob("*.py"):
        text = path.read_text()
        assert "import_module" not in text and "globals()" not in text, path


def test_no_import_cycles() -> None:
    modules = _module_files()
    graph = {name: {i for i in _imports(path) if i in modules and i != name} for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_units_are_formatted_in_units_only() -> None:
    assert units.format_size_human(64 * units.GIB) == "64GiB"
    for path in GENERATORS.rglob("*.py"):
        if path.name == "units.py":
            continue
        text = path.read_text()
        # the unit helpers that once had copies outside units.py
        assert not re.search(r"def (quantity|go_duration|format_memory|_seconds|_duration)\(", text), \
            f"{path}: unit formatting lives in units.py"


def test_every_example_profile_renders_through_the_one_gate() -> None:
    for path in PROFILES.glob("*.yaml"):
        if path.stem == "base":
            continue
        assert render(variant(path.stem, {})).files


def test_one_precedence_rule_then_key_then_override() -> None:
    # pgtune's rule (web: 200), the profile key (postgres.max_connections), then postgres.settings, which wins.
    key_only = variant("dev", {"postgres": {"max_connections": 120}})
    both = variant("dev", {"postgres": {"max_connections": 120, "settings": {"max_connections": 90}}})
    assert variant("dev", {}).postgres.max_connections is None  # dev leaves it to pgtune's web default
    assert config_parts(variant("dev", {})).postgres.value("max_connections") == 200
    assert config_parts(key_only).postgres.value("max_connections") == 120
    assert config_parts(both).postgres.value("max_connections") == 90
    conf = render(both).files["postgres/postgresql.conf"]
    assert re.search(r"^max_connections = 90\b", conf, re.M) and not re.search(r"^max_connections = 120\b", conf, re.M)
    setting = config_parts(both).postgres.setting("max_connections")
    assert setting.rule == "override in postgres.settings (rule gave 120)"

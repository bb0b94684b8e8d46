"""perfstack diff ENV --base REF: two revisions of a throwaway git repository, each rendered by its own code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from generators import checks
from generators.cost import HOURS_PER_MONTH, monthly
from generators.loader import display_path
from generators.margins import margins
from generators.render import config_parts
from generators.review import _md
from generators.review_export import export

from .conftest import PROFILES, REPO, load, run_cli, variant


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of generators/ and profiles/, committed once."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(REPO / "generators", root / "generators", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROFILES, root / "profiles")
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", ".")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "base")
    return root


def commit(repo: Path, message: str) -> None:
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", message)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def review(repo: Path, *args: str) -> tuple[int, dict]:
    result = run_cli("--profiles-dir", repo / "profiles", "diff", "prod", "--base", "main", *args, "--format", "json")
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


def changes(data: dict, component: str, kind: str) -> dict[str, dict]:
    return {c["name"]: c for c in data["components"].get(component, []) if c["kind"] == kind}


def fields(change: dict) -> dict[str, tuple]:
    return {f["field"]: (f["base"], f["head"]) for f in change["fields"]}


def test_nothing_changed_is_exit_0(repo: Path) -> None:
    code, data = review(repo)
    assert code == 0, data
    assert data["changed"] is False and data["components"] == {} and data["files"] == []
    text = run_cli("--profiles-dir", repo / "profiles", "diff", "prod", "--base", "main")
    assert text.exit_code == 0 and "nothing changed" in text.stdout


def test_a_pull_request_shows_settings_objects_alerts_and_margins(repo: Path) -> None:
    prod = repo / "profiles" / "prod.yaml"
    edit(prod, "namespace: ai-platform\n", "namespace: ai-platform-prod\n")
    edit(prod, "db_pool: {size: 20, max_overflow: 40}", "db_pool: {size: 30, max_overflow: 40}")
    edit(prod, "  server: vllm\n", "  server: vllm\n  image: vllm/vllm-openai:v0.11.0\n")
    edit(prod, "\npgbouncer:\n", "\npgbouncer:\n  replicas: 3\n")
    code, data = review(repo)
    assert code == 1
    assert data["base"].startswith("main (") and data["head"] == "working tree"
    assert changes(data, "app", "setting")["DB_POOL_SIZE"]["base"] == "20"
    assert changes(data, "app", "setting")["DB_POOL_SIZE"]["head"] == "30"
    deployment = fields(changes(data, "pgbouncer", "object")["Deployment/pgbouncer"])
    assert deployment["spec.replicas"] == ("2", "3")
    assert deployment["metadata.namespace"] == ("ai-platform", "ai-platform-prod")
    llm = fields(changes(data, "llm", "object")["Deployment/llm"])
    assert llm["spec.template.spec.containers[llm].image"] == ("vllm/vllm-openai:v0.10.2", "vllm/vllm-openai:v0.11.0")
    assert not any("checksum" in f for f in llm), "checksum annotations are left out"
    # The Namespace is not rendered unless kubernetes.manage_namespace: the move shows on every object instead.
    assert not any(key.startswith("Namespace/") for key in changes(data, "namespace", "object"))
    # the threshold moved with the pool: 80 % of 3 x 25 server connections
    server = fields(changes(data, "pgbouncer", "alert")["perfstack-pgbouncer/PgBouncerServerConnectionsHigh"])
    assert server["expr"][0].endswith("> 40") and server["expr"][1].endswith("> 60")
    # an alert whose only change is the namespace says so instead of repeating the expression
    down = fields(changes(data, "pgbouncer", "alert")["perfstack-pgbouncer/PgBouncerDown"])
    assert down == {"expr namespace selector": ("ai-platform", "ai-platform-prod")}
    margin = {m["id"]: m for m in data["margins"]}["app_fits_pgbouncer:PgBouncer client connections"]
    # (20 + 5 surge) pods x (20 + 40), then x (30 + 40)
    assert (margin["base"]["used"], margin["base"]["limit"]) == (1500, 4000)
    assert (margin["head"]["used"], margin["head"]["limit"]) == (1750, 6000)
    assert margin["changed"] and margin["flagged"] is None
    assert len(data["files"]) > 25 and {"path": "app/performance.env", "status": "changed"} in data["files"]


def test_a_margin_below_the_profiles_threshold_is_flagged(repo: Path) -> None:
    prod = repo / "profiles" / "prod.yaml"
    # (20 + 5 surge) replicas x (108 + 40) = 3700 of 2 x 2000 client connections: 7.5 % headroom, under the default
    # 10 % (the worker pools' 208 connections still fit beside them: workers_fit_pgbouncer passes)
    edit(prod, "db_pool: {size: 20, max_overflow: 40}", "db_pool: {size: 108, max_overflow: 40}")
    code, data = review(repo)
    assert code == 1
    margin = {m["check"]: m for m in data["margins"]}["app_fits_pgbouncer"]
    assert margin["head"]["headroom"] == pytest.approx(0.075)
    assert "below review.min_headroom 10 %" in margin["flagged"]
    markdown = run_cli("--profiles-dir", repo / "profiles", "diff", "prod", "--base", "main", "--format", "markdown")
    assert "⚠️" in markdown.stdout and "1 margin(s) to check" in markdown.stdout
    # the profile sets the threshold: at 4 % the same margin passes
    prod.write_text(prod.read_text() + "\nreview:\n  min_headroom: 4%\n")
    _code, data = review(repo)
    assert {m["check"]: m for m in data["margins"]}["app_fits_pgbouncer"]["flagged"] is None


def test_the_base_is_rendered_by_the_base_revisions_own_code(repo: Path) -> None:
    # The base commit's generator pins another vLLM image; the profiles are the same on both sides.
    llm = repo / "generators" / "llm.py"
    assert "vllm/vllm-openai:v0.10.2" in llm.read_text()
    edit(llm, "vllm/vllm-openai:v0.10.2", "vllm/vllm-openai:v0.9.0")
    commit(repo, "older image")
    code, data = review(repo)
    assert code == 1
    image = fields(changes(data, "llm", "object")["Deployment/llm"])["spec.template.spec.containers[llm].image"]
    assert image == ("vllm/vllm-openai:v0.9.0", "vllm/vllm-openai:v0.10.2")


def test_head_revision_and_a_base_that_predates_margins(repo: Path) -> None:
    checks_py = repo / "generators" / "checks.py"
    checks_py.write_text(checks_py.read_text().split("\n\ndef margins(")[0] + "\n")
    commit(repo, "a revision without checks.margins")
    git(repo, "branch", "old")
    edit(repo / "profiles" / "prod.yaml", "replicas", "replicas")  # no-op edit keeps the tree clean
    edit(repo / "profiles" / "base.yaml", "max_client_conn: 2000", "max_client_conn: 1500")
    commit(repo, "head")
    result = run_cli("--profiles-dir", repo / "profiles", "diff", "prod", "--base", "old", "--head", "main",
                     "--format", "json")
    assert result.exit_code == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["head"].startswith("main (")
    assert any("predates margins" in note for note in data["notes"])
    margin = {m["check"]: m for m in data["margins"]}["app_fits_pgbouncer"]
    assert (margin["base"]["limit"], margin["head"]["limit"]) == (4000, 3000)


@pytest.mark.parametrize("args, message", [
    (["--base", "no-such-branch"], "no-such-branch: no such git revision"),
    (["--base", "--upload-pack=x"], "not a git revision"),
    (["dev", "--base", "main"], "compares one environment between revisions"),
    (["--head", "main"], "compares one environment between revisions"),
])
def test_bad_revisions_are_exit_2(repo: Path, args: list[str], message: str) -> None:
    result = run_cli("--profiles-dir", repo / "profiles", "diff", "prod", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_bad_head_profile_is_exit_2_with_its_location(repo: Path) -> None:
    edit(repo / "profiles" / "prod.yaml", "max_connections: 200", "max_conections: 200")
    result = run_cli("--profiles-dir", repo / "profiles", "diff", "prod", "--base", "main")
    assert result.exit_code == 2
    assert re.search(r"prod\.yaml:\d+:\d+: postgres\.max_conections: unknown key", result.stderr)


def test_a_new_environment_is_all_added(repo: Path) -> None:
    shutil.copy(repo / "profiles" / "prod.yaml", repo / "profiles" / "perf.yaml")
    edit(repo / "profiles" / "perf.yaml", "environment: prod", "environment: perf")
    edit(repo / "profiles" / "perf.yaml", "namespace: ai-platform\n", "namespace: ai-platform-perf\n")
    result = run_cli("--profiles-dir", repo / "profiles", "diff", "perf", "--base", "main", "--format", "json")
    assert result.exit_code == 1, result.stderr
    data = json.loads(result.stdout)
    statuses = {c["status"] for items in data["components"].values() for c in items}
    assert statuses == {"added"}
    assert data["cost"]["base"] is None and data["cost"]["head"]["max"] > 0


def test_markdown_is_a_pr_comment(repo: Path) -> None:
    edit(repo / "profiles" / "prod.yaml", "db_pool: {size: 20, max_overflow: 40}", "db_pool: {size: 30, max_overflow: 40}")
    result = run_cli("--profiles-dir", repo / "profiles", "diff", "prod", "--base", "main", "--format", "markdown")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "<!-- perfstack-diff:prod -->"  # the marker the CI workflow finds its sticky comment by
    assert lines[1].startswith("## perfstack diff `prod`: <code>main (")
    assert lines[3].startswith("**") and "changed in" in lines[3]
    assert "### app" in lines and "| <code>DB_POOL_SIZE</code> | <code>20</code> | <code>30</code> |" in lines
    assert any(line.startswith("<details><summary>") for line in lines)
    assert "Monthly cost (USD, example prices" in result.stdout


def test_markdown_cells_escape_profile_text() -> None:
    assert _md("a|b <script>`x`\nc") == "<code>a&#124;b &lt;script&gt;&#96;x&#96; ⏎ c</code>"


# ---------------------------------------------------------------- margins agree with their checks
@pytest.mark.parametrize("overrides", [
    {},
    {"app": {"db_pool": {"size": 200}}},
    {"pgbouncer": {"default_pool_size": 100, "replicas": 2}},
    {"pgbouncer": {"query_timeout": "20s"}},
    {"app": {"http": {"timeout": "35s"}}},
    {"postgres": {"statement_timeout": 0}},
    {"pgbouncer": {"query_timeout": 0}},
    {"autoscaling": {"llm": {"scale_down_stabilization": "5m"}}},  # below the 331 s cold start
    {"llm": {"load_time": "10m", "startup_timeout": "5m"}},
    {"llm": {"request_timeout": "2s"}},
    {"redis": {"maxmemory": "7GiB"}},
    {"slo": {"db_query_p95": "40s"}},
    {"autoscaling": {"api": {"scale_down_stabilization": "2h"}}},
])
def test_a_check_fails_exactly_when_its_margin_is_exceeded(overrides: dict) -> None:
    profile = variant("prod", overrides)
    parts = config_parts(profile)
    failed = {f.check for f in checks.run(profile, parts)}
    found = margins(profile, parts)
    assert {m.check for m in found} <= {c.__name__ for c in checks.CHECKS} | {o.check for o in checks.TIMEOUT_ORDER}
    for check in {m.check for m in found}:  # a check with several margins (one per HPA) fails when any is exceeded
        exceeded = [m.summary() for m in found if m.check == check and m.exceeded]
        assert bool(exceeded) == (check in failed), (check, exceeded, failed)


def test_margins_carry_both_sides() -> None:
    profile = load("prod")
    m = {x.check: x for x in checks.margins(profile, config_parts(profile))}["app_fits_pgbouncer"]
    # (20 + 5 surge) pods x (20 + 40) of 2 x 2000
    assert (m.used, m.limit, m.headroom) == (1500, 4000, 0.625)
    assert m.summary() == "PgBouncer client connections: 1500 of 4000 connections (38 % used, headroom 62 %)"


# ---------------------------------------------------------------- cost
def test_cost_prices_what_the_objects_request() -> None:
    snapshot = export("prod", PROFILES)
    cost = monthly(snapshot["profile"], snapshot["objects"])
    assert cost is not None and cost["currency"] == "USD" and "example" in cost["note"]
    gpu = next(line for line in cost["lines"] if line["item"] == "gpu H100")
    assert (gpu["replicas_min"], gpu["replicas_max"]) == (1, 4)  # the LLM HPA's range
    assert gpu["max"] == pytest.approx(4 * 12.29 * HOURS_PER_MONTH)
    db = next(line for line in cost["lines"] if line["item"].startswith("managed postgres"))
    assert db["item"] == "managed postgres db.m6g.4xlarge"  # the cheapest size with 64 GiB and 16 CPUs
    api = next(line for line in cost["lines"] if line["component"] == "api" and line["item"] == "cpu (cores)")
    assert (api["replicas_min"], api["replicas_max"], api["quantity"]) == (3, 20, 0.5)
    assert cost["min"] < cost["max"]


def test_cost_delta_in_diff(repo: Path) -> None:
    edit(repo / "profiles" / "base.yaml", "llm: {min_replicas: 1, max_replicas: 4,", "llm: {min_replicas: 1, max_replicas: 6,")
    _code, data = review(repo)
    assert data["cost"]["delta"]["min"] == 0
    # two more LLM pods: their GPU and the CPU (6 cores) and memory (24 GiB) each requests
    assert data["cost"]["delta"]["max"] == pytest.approx(2 * (12.29 + 6 * 0.0405 + 24 * 0.0045) * HOURS_PER_MONTH,
                                                         abs=0.02)


def test_explain_shows_the_cost() -> None:
    result = run_cli("--profiles-dir", PROFILES, "explain", "prod", "cost")
    assert result.exit_code == 0
    assert re.search(r"^monthly cost: [\d,.]+ USD at min replicas, [\d,.]+ USD at max replicas", result.stdout, re.M)
    assert "gpu H100 1 x 1..4 replicas at 12.29 USD/hour" in result.stdout


# ---------------------------------------------------------------- environment vs environment
def test_env_vs_env_columns_are_labelled_by_what_was_typed(tmp_path: Path) -> None:
    other = tmp_path / "prod.yaml"
    shutil.copy(PROFILES / "prod.yaml", other)
    shutil.copy(PROFILES / "base.yaml", tmp_path / "base.yaml")
    edit(other, "max_connections: 200", "max_connections: 300")
    result = run_cli("--profiles-dir", PROFILES, "diff", str(PROFILES / "prod.yaml"), str(other), "--format", "markdown")
    assert result.exit_code == 0
    assert f"| setting | {PROFILES / 'prod.yaml'} | {other} |" in result.stdout


# ---------------------------------------------------------------- explain: where and why
def test_explain_names_the_line_that_set_a_value_and_the_margins_it_feeds() -> None:
    result = run_cli("--profiles-dir", PROFILES, "explain", "prod", "app.DB_POOL_SIZE", "--format", "json")
    assert result.exit_code == 0
    [item] = json.loads(result.stdout)
    line = next(n for n, text in enumerate((PROFILES / "prod.yaml").read_text().splitlines(), 1) if "db_pool:" in text)
    assert item["set_by"] == [{"key": "app.db_pool.size", "where": f"{display_path(PROFILES / 'prod.yaml')}:{line}"}]
    [feed] = item["feeds"]
    assert feed["check"] == "app_fits_pgbouncer" and "1500 of 4000" in feed["margin"]


def test_explain_says_rule_default_for_a_key_no_file_writes() -> None:
    result = run_cli("--profiles-dir", PROFILES, "explain", "dev", "postgres.max_connections")
    assert result.exit_code == 0
    assert "set by: postgres.max_connections (rule default), postgres.workload (" in result.stdout
    assert "feeds:  pgbouncer_fits_postgres: PostgreSQL server connections: 50 of 197" in result.stdout


def test_the_hpa_cpu_target_states_the_request_it_is_relative_to() -> None:
    result = run_cli("--profiles-dir", PROFILES, "explain", "prod", "autoscaling.api.target_cpu")
    assert "a share of the CPU request of each app pod, app.requests.cpu" in result.stdout
    assert "inputs: cpu_request=0.5, scales_above_cores=0.35" in result.stdout


def test_no_secret_reaches_the_review(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = "pl4nted-Secret-9f2e"
    monkeypatch.setenv("PERFSTACK_DRIFT_REDIS", f"redis://:{planted}@redis:6379/0")
    monkeypatch.setenv("PGPASSWORD", planted)
    edit(repo / "profiles" / "prod.yaml", "db_pool: {size: 20, max_overflow: 40}", "db_pool: {size: 30, max_overflow: 40}")
    for fmt in ("text", "markdown", "json"):
        result = run_cli("--profiles-dir", repo / "profiles", "diff", "prod", "--base", "main", "--format", fmt)
        assert result.exit_code == 1
        assert planted not in result.stdout + result.stderr
        assert "Secret/" not in result.stdout  # Secrets are never rendered, so never compared


def test_the_apps_objects_sit_with_its_settings(repo: Path) -> None:
    edit(repo / "profiles" / "prod.yaml", "db_pool: {size: 20, max_overflow: 40}", "db_pool: {size: 30, max_overflow: 40}")
    _code, data = review(repo)
    assert "ConfigMap/api-performance" in changes(data, "app", "object")
    assert "api" not in data["components"]

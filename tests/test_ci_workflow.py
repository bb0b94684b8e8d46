"""The shipped CI workflow and pre-commit hook, run against a throwaway git repository.

Every `run:` step of examples/github/perfstack.yml (but the install, which the test environment has
done) runs with bash as GitHub Actions runs it, with `perfstack` on PATH being this checkout's code.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

WORKFLOW = REPO / "examples" / "github" / "perfstack.yml"
HOOKS = REPO / ".pre-commit-hooks.yaml"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("generators", "profiles", "rendered"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-qm", "base")
    git(root, "checkout", "-q", "-b", "pr")
    return root


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """PATH with a `perfstack` that runs this checkout's generators; the variables Actions would set."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "perfstack"
    shim.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO))} exec {shlex.quote(sys.executable)} -c "
                    "\"import sys; from generators.cli import main; sys.argv[0] = 'perfstack'; main()\" \"$@\"\n")
    shim.chmod(0o755)
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PERFSTACK_BASE": "main", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}


def steps() -> list[dict]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return workflow["jobs"]["review"]["steps"]


def run_steps(repo: Path, env: dict[str, str]) -> dict[str, subprocess.CompletedProcess[str]]:
    results = {}
    for step in steps():
        if "run" not in step or step["name"] == "Install perfstack":
            continue
        results[step["name"]] = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                                               cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    return results


def edit_prod(repo: Path) -> None:
    prod = repo / "profiles" / "prod.yaml"
    prod.write_text(prod.read_text().replace("db_pool: {size: 20, max_overflow: 40}",
                                             "db_pool: {size: 30, max_overflow: 40}"))


def test_the_workflow_is_what_it_says() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    by_name = {s.get("name", s.get("uses")): s for s in steps()}
    assert by_name["actions/checkout@v4"]["with"]["fetch-depth"] == 0  # the base revision must be in history
    sticky = next(s for s in steps() if s.get("uses", "").startswith("marocchino/sticky-pull-request-comment@"))
    assert sticky["with"] == {"header": "perfstack", "path": "perfstack-diff.md"}
    assert "github.base_ref" in workflow["jobs"]["review"]["env"]["PERFSTACK_BASE"]


def test_a_pull_request_gets_a_fresh_check_and_one_comment(repo: Path, env: dict[str, str]) -> None:
    edit_prod(repo)
    render = subprocess.run(["perfstack", "render", "--all"], cwd=repo, env=env, capture_output=True, text=True)
    assert render.returncode == 0, render.stderr
    git(repo, "commit", "-qam", "bigger pool")
    results = run_steps(repo, env)
    assert set(results) == {"Rendered files are fresh", "Diff against the base"}
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stdout, result.stderr)
    comment = (repo / "perfstack-diff.md").read_text()
    assert comment.startswith("<!-- perfstack-diff -->\n")
    deployed = len([p for p in (repo / "profiles").glob("*.yaml") if "abstract: true" not in p.read_text()])
    assert re.search(rf"^\d of {deployed} environment\(s\) change: (.*, )?prod(,|$)", comment, re.M)
    assert "dev" not in re.search(r"environment\(s\) change: (.*)", comment).group(1)
    assert "| <code>DB_POOL_SIZE</code> | <code>20</code> | <code>30</code> |" in comment
    # (20 + 5 surge) pods x (20 + 40), then x (30 + 40)
    assert re.search(r"PgBouncer client connections .*1500 / 4000 .*1750 / 4000", comment)
    assert Path(env["GITHUB_STEP_SUMMARY"]).read_text() == comment


def test_a_stale_render_fails_the_check(repo: Path, env: dict[str, str]) -> None:
    edit_prod(repo)  # edited, not re-rendered
    git(repo, "commit", "-qam", "forgot to render")
    results = run_steps(repo, env)
    fresh = results["Rendered files are fresh"]
    assert fresh.returncode == 1
    assert "rendered/prod is stale" in fresh.stdout and "rendered/dev is up to date" in fresh.stdout
    assert results["Diff against the base"].returncode == 0  # the review is still posted


def test_a_bad_profile_fails_the_diff_step(repo: Path, env: dict[str, str]) -> None:
    prod = repo / "profiles" / "prod.yaml"
    prod.write_text(prod.read_text().replace("max_connections: 200", "max_connections: lots"))
    result = run_steps(repo, env)["Diff against the base"]
    assert result.returncode == 2
    assert "prod.yaml:" in result.stderr and "postgres.max_connections" in result.stderr


def test_the_pre_commit_hook(repo: Path, env: dict[str, str]) -> None:
    [hook] = yaml.safe_load(HOOKS.read_text())
    assert hook["id"] == "perfstack-render-check" and hook["pass_filenames"] is False
    files = re.compile(hook["files"])
    assert files.search("profiles/prod.yaml") and files.search("rendered/dev/explain.json")
    assert not files.search("README.md")
    entry = shlex.split(hook["entry"])
    assert subprocess.run(entry, cwd=repo, env=env, capture_output=True).returncode == 0
    edit_prod(repo)
    stale = subprocess.run(entry, cwd=repo, env=env, capture_output=True, text=True)
    assert stale.returncode == 1 and "rendered/prod is stale" in stale.stdout


def test_an_extra_profile_is_rendered_and_checked_whatever_its_name(repo: Path, env: dict[str, str]) -> None:
    extra = repo / "profiles" / "qa-eu.yaml"
    extra.write_text("extends: prod\nenvironment: qa-eu\nnamespace: ai-platform-qa-eu\n")
    check = subprocess.run(["perfstack", "render", "--all", "--check"], cwd=repo, env=env, capture_output=True,
                           text=True)
    assert check.returncode == 1 and "rendered/qa-eu is stale" in check.stdout
    assert subprocess.run(["perfstack", "render", "--all"], cwd=repo, env=env, capture_output=True).returncode == 0
    labels = (repo / "rendered" / "qa-eu" / "kubernetes" / "deployment-llm.yaml").read_text()
    assert "perfstack.io/environment: qa-eu" in labels and "namespace: ai-platform-qa-eu" in labels
    assert subprocess.run(["perfstack", "render", "--all", "--check"], cwd=repo, env=env).returncode == 0
    # a rendered folder whose profile is gone is stale too
    extra.unlink()
    orphan = subprocess.run(["perfstack", "render", "--all", "--check"], cwd=repo, env=env, capture_output=True,
                            text=True)
    assert orphan.returncode == 1 and "rendered/qa-eu has no profile" in orphan.stdout

"""Shared helpers for the test suite: the repository's profiles, rendered bundles, and the CLI.

Keep this file small: fixtures that more than one test module needs, nothing else.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from generators import alerts, checks
from generators.bundle import Bundle, Finding, Parts
from generators.cli import main
from generators.loader import Source, deep_merge, load_source
from generators.profile import Profile
from generators.render import config_parts, render
from generators.validation import load_profile, profile_from_source

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "profiles"
# `perfstack` as a subprocess, from this working tree (never whatever `perfstack` is installed).
PERFSTACK = [sys.executable, "-m", "generators"]


def worktree_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a subprocess that imports perfstack: this working tree first on the path."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **(extra or {}), "PYTHONPATH": path}

_bundles: dict[str, Bundle] = {}


def load(env: str, profiles_dir: Path = PROFILES) -> Profile:
    """A validated example profile (dev, prod) or any profile path."""
    return load_profile(env, profiles_dir)[0]


def variant(base: str, overrides: dict[str, Any]) -> Profile:
    """An example profile with `overrides` merged over it (mappings deeply, as `extends:` does, except that
    a test may change one key of llm.model, which `extends:` replaces whole), validated."""
    source = load_source(PROFILES / f"{base}.yaml")
    merged = Source(data=deep_merge(source.data, overrides, whole=frozenset()), locations=source.locations,
                    files=source.files)
    return profile_from_source(merged, base)


def parts_of(profile: Profile) -> Parts:
    """The config stage of render (what checks, lint, alerts and objects read)."""
    return config_parts(profile)


def rules_of(profile: Profile) -> alerts.Rules:
    """The alert rules render builds for `profile`."""
    return alerts.build(profile, config_parts(profile))


def run_checks(profile: Profile) -> list[Finding]:
    """Every cross-component check's findings on the rendered parts (no raise)."""
    return checks.run(profile, config_parts(profile))


def local_pgbouncer_profile(env: str, overrides: dict[str, Any] | None = None) -> Profile:
    """An example profile rendered for the PgBouncer installed here (pgbouncer.version = its version, 1.18),
    so the real server reads only settings it knows. Its config part is rendered without the gate: the
    production lint rightly refuses 1.18's CVEs for a deployment, not for a local test server."""
    from generators import localservers

    return variant(env, deep_merge({"pgbouncer": {"version": localservers.pgbouncer_version()}}, overrides or {}))


def rendered_bundle(env: str) -> Bundle:
    """The Bundle of an example profile, rendered once per test process."""
    if env not in _bundles:
        profile, source = load_profile(env, PROFILES)
        _bundles[env] = render(profile, source)
    return _bundles[env]


@pytest.fixture(scope="session")
def rendered() -> Callable[[str], Bundle]:
    """rendered("prod") -> the Bundle of profiles/prod.yaml."""
    return rendered_bundle


def run_cli(*args: str | Path, catch_exceptions: bool = False) -> Result:
    """Run `perfstack ARGS` in-process; stdout and stderr stay apart (result.stdout, result.stderr)."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=catch_exceptions)


@pytest.fixture
def profile_folder(tmp_path: Path) -> Path:
    """A fresh folder holding copies of the example profiles, for tests that write bad ones beside them."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    for path in PROFILES.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    return folder


def as_written(bundle: Bundle) -> dict[str, bytes]:
    """What write_bundle leaves in a folder: the bundle's files and perfstack's ownership marker."""
    from generators.output import MARKER, MARKER_TEXT

    return {**{rel: text.encode("utf-8") for rel, text in bundle.files.items()}, MARKER: MARKER_TEXT.encode()}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder, by relative path, with its bytes (to prove a folder was left untouched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

"""postgres.settings overrides are refused when the profile's PostgreSQL version lacks the parameter."""

from __future__ import annotations

from pathlib import Path

import pytest

from generators.errors import ProfileError
from generators.pgversions import version_problem
from generators.validation import load_profile

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("name", "version", "expected"), [
    ("old_snapshot_threshold", 16, None),
    ("old_snapshot_threshold", 17, "removed after PostgreSQL 16"),
    ("transaction_timeout", 16, "appeared in PostgreSQL 17"),
    ("transaction_timeout", 17, None),
    ("io_method", 17, "appeared in PostgreSQL 18"),
    ("wal_keep_segments", 13, "removed after PostgreSQL 12"),
    ("work_mem", 10, None),
])
def test_version_problem(name: str, version: int, expected: str | None) -> None:
    found = version_problem(name, version)
    assert (found is None) if expected is None else (expected in (found or ""))


def write(folder: Path, version: int, name: str) -> Path:
    (folder / "base.yaml").write_text((ROOT / "profiles" / "base.yaml").read_text())
    path = folder / "p.yaml"
    path.write_text(f"extends: base\npostgres:\n  version: {version}\n  settings:\n    {name}: 1min\n"
                    "environment: p\nnamespace: p\n")
    return path


def test_override_refused_for_the_profiles_version(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile(str(write(tmp_path, 17, "old_snapshot_threshold")))
    problem = caught.value.problems[0]
    assert (problem.line, problem.key) == (5, "postgres.settings.old_snapshot_threshold")
    assert "PostgreSQL 17 has no old_snapshot_threshold" in problem.message


def test_override_accepted_where_the_version_has_it(tmp_path: Path) -> None:
    profile, _ = load_profile(str(write(tmp_path, 17, "transaction_timeout")))
    assert profile.postgres.settings == {"transaction_timeout": "1min"}

"""perfstack writes only into output folders it owns (the .perfstack-output marker, or an empty folder), follows
a symlinked --out, and turns a read-only or full disk into exit 2 naming the path.

The disks are real: a read-only tmpfs and a 64 KiB tmpfs mounted for the test (as root), or a chmod'ed folder
when the suite runs as another user (root ignores permission bits, so chmod proves nothing there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from generators.output import MARKER

from .conftest import PROFILES, as_written, rendered_bundle, snapshot, worktree_env


def perfstack(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generators", "--profiles-dir", str(PROFILES), *map(str, args)],
                          capture_output=True, text=True, env=worktree_env(), cwd=cwd, timeout=120)


def test_a_folder_of_someone_elses_files_is_refused_and_left_alone(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / "notes.txt").write_text("mine\n")
    before = snapshot(repo)
    result = perfstack("render", "dev", "--out", repo)
    assert result.returncode == 2, result.stderr
    assert f"--out {repo}: the folder is not empty" in result.stderr
    assert MARKER in result.stderr and ".git" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(repo) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"], "nothing may be written beside it either"


def test_a_file_as_out_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("a file\n")
    result = perfstack("render", "dev", "--out", target)
    assert result.returncode == 2
    assert "is a file" in result.stderr  # click's own check of --out (file_okay=False)
    assert target.read_text() == "a file\n"


def test_an_empty_folder_is_taken_and_marked(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert perfstack("render", "dev", "--out", out).returncode == 0
    assert snapshot(out) == as_written(rendered_bundle("dev"))
    (out / "stray.txt").write_text("left by hand\n")  # a folder perfstack owns is replaced whole
    assert perfstack("render", "dev", "--out", out).returncode == 0
    assert not (out / "stray.txt").exists()


def test_the_marker_is_required_after_a_render(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert perfstack("render", "dev", "--out", out).returncode == 0
    (out / MARKER).unlink()
    result = perfstack("render", "dev", "--out", out)
    assert result.returncode == 2 and "was not created by perfstack" in result.stderr
    check = perfstack("render", "dev", "--check", "--out", out)
    assert check.returncode == 1 and f"missing: {MARKER}" in check.stdout


def test_a_symlinked_out_is_followed_not_replaced(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere" / "dev"
    real.parent.mkdir()
    link = tmp_path / "out"
    link.symlink_to(real)
    assert perfstack("render", "dev", "--out", link).returncode == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert snapshot(real) == as_written(rendered_bundle("dev"))
    assert perfstack("render", "dev", "--out", link).returncode == 0  # again: still followed
    assert link.is_symlink() and snapshot(real) == as_written(rendered_bundle("dev"))
    assert perfstack("render", "dev", "--check", "--out", link).returncode == 0


def test_render_all_refuses_before_writing_any(tmp_path: Path) -> None:
    root = tmp_path / "rendered"
    (root / "prod").mkdir(parents=True)
    (root / "prod" / "mine.txt").write_text("not perfstack's\n")
    result = perfstack("render", "--all", "--out", root)
    assert result.returncode == 2 and f"{root / 'prod'}: the folder is not empty" in result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["prod"], "dev was written before prod was refused"


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "mnt"
    point.mkdir()
    yield point
    subprocess.run(["umount", str(point)], capture_output=True)


def _mount(point: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def test_a_read_only_disk_is_exit_2_with_the_path(mounted: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        _mount(mounted, "ro,size=1m")
        out = mounted / "dev"
    else:
        mounted.chmod(0o555)
        out = mounted / "dev"
    result = perfstack("render", "dev", "--out", out)
    assert result.returncode == 2, result.stderr
    assert f"perfstack: error: --out {out}: cannot write {mounted}" in result.stderr
    assert "Read-only file system" in result.stderr or "Permission denied" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_full_disk_is_exit_2_with_the_path_and_leaves_the_previous_render(mounted: Path) -> None:
    # Room for dev and half of prod, in the 4 kB pages tmpfs counts (each file and folder at least one): the
    # previous render fits, the next one cannot be staged beside it, whatever the rendered sizes grow to.
    pages = {env: sum(-(-len(content) // 4096) or 1 for content in rendered_bundle(env).files.values())
             + 2 * len({str(Path(name).parent) for name in rendered_bundle(env).files}) + 4 for env in ("dev", "prod")}
    _mount(mounted, f"size={4 * (pages['dev'] + pages['prod'] // 2)}k")
    out = mounted / "env"
    assert perfstack("render", "dev", "--out", out).returncode == 0
    before = snapshot(out)
    result = perfstack("render", "prod", "--out", out)
    assert result.returncode == 2, result.stderr
    assert f"perfstack: error: --out {out}: cannot write {mounted}" in result.stderr
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(out) == before
    assert sorted(p.name for p in mounted.iterdir()) == [".env.lock", "env"], "the staging folder was left"

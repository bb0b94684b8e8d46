"""Atomic output: a render that fails or is killed at any point leaves the output folder as it was (or,
past the final swap, entirely new: never a mix), and concurrent renders into one folder do not interleave.

generators/output.py writes into a staging folder beside the output, swaps it in with one
renameat2(RENAME_EXCHANGE), all under a flock on .NAME.lock; the next render clears what a killed one left.
"""

from __future__ import annotations

import errno
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from generators import output
from generators.bundle import Bundle
from generators.output import OutputError, write_bundle

from .conftest import PROFILES, as_written, rendered_bundle, run_cli, snapshot, worktree_env

# A render whose every file write sleeps first and is logged (pid, start, end): slow enough to be killed
# mid-write, and a record of whose writes happened when.
SLOW_RENDER = """
import os, pathlib, sys, time
_write = pathlib.Path.write_text
delay, log = float(sys.argv[1]), sys.argv[2]
def slow(self, *args, **kwargs):
    start = time.monotonic()
    time.sleep(delay)
    result = _write(self, *args, **kwargs)
    with open(log, "a") as handle:
        handle.write(f"{os.getpid()} {start} {time.monotonic()}\\n")
    return result
pathlib.Path.write_text = slow
sys.argv = ["perfstack"] + sys.argv[3:]
from generators.cli import main
main()
"""


def expected(bundle: Bundle) -> dict[str, bytes]:
    return as_written(bundle)


def siblings(out: Path) -> list[str]:
    """The output folder and whatever a render put beside it (.NAME.lock, staging, parked folders)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name in (out.name, f".{out.name}")
                  or p.name.startswith((f"{out.name}.", f".{out.name}.")))


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="perfstack-atomic-"))
    for profile in PROFILES.glob("*.yaml"):
        shutil.copy(profile, path / profile.name)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def slow_render(folder: Path, env: str, out: Path, delay: float, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", SLOW_RENDER, str(delay), str(log), "render", f"{env}.yaml",
                             "--out", str(out)], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=worktree_env())


# ---------------------------------------------------------------- failures in-process
def test_generator_error_leaves_the_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = folder / "out"
    assert run_cli("--profiles-dir", folder, "render", "prod", "--out", out).exit_code == 0
    before = snapshot(out)

    def broken(profile: object) -> None:
        raise RuntimeError("injected generator failure")

    monkeypatch.setattr("generators.redis.render", broken)
    result = run_cli("--profiles-dir", folder, "render", "prod", "--out", out)
    assert result.exit_code == 3  # an unexpected exception is perfstack's bug: exit 3, one line, no traceback
    assert "perfstack: internal error: RuntimeError: injected generator failure" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(out) == before
    assert siblings(out) == [".out.lock", "out"]


def test_write_error_half_way_leaves_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    write_bundle(rendered_bundle("prod"), out)
    before = snapshot(out)
    real_write = pathlib.Path.write_text
    calls = []

    def disk_full(self: Path, *args: object, **kwargs: object) -> int:
        calls.append(self)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return real_write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pathlib.Path, "write_text", disk_full)
    with pytest.raises(OutputError, match="injected"):  # the disk's error, named with the path (exit 2)
        write_bundle(rendered_bundle("dev"), out)
    assert len(calls) == 5 and snapshot(out) == before
    assert siblings(out) == [".out.lock", "out"], "the staging folder was left behind"


# ---------------------------------------------------------------- killed at every step
STEPS = [(pathlib.Path, "write_text"), (pathlib.Path, "mkdir"), (pathlib.Path, "rename"), (pathlib.Path, "chmod"),
         (shutil, "rmtree"), (os, "fsync"), (tempfile, "mkdtemp"), (output, "_exchange")]


def _killed_at(step: int, bundle: Bundle, out: Path) -> bool:
    """Fork a writer that SIGKILLs itself just before its step-th filesystem operation; True if it died."""
    pid = os.fork()
    if pid == 0:  # child: count operations, die at the chosen one
        try:
            count = [0]
            for owner, name in STEPS:
                def wrapper(*args: object, _real: object = getattr(owner, name), **kwargs: object) -> object:
                    count[0] += 1
                    if count[0] == step:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return _real(*args, **kwargs)  # type: ignore[operator]

                setattr(owner, name, wrapper)
            write_bundle(bundle, out)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.waitstatus_to_exitcode(status) == 0
    return False


def test_killed_at_any_step_leaves_old_or_new_never_a_mix(tmp_path: Path) -> None:
    old, new = rendered_bundle("prod"), rendered_bundle("dev")
    out = tmp_path / "out"
    outcomes = []
    for step in range(1, 500):
        write_bundle(old, out)  # also the recovery from the previous kill
        assert snapshot(out) == expected(old) and siblings(out) == [".out.lock", "out"]
        died = _killed_at(step, new, out)
        state = snapshot(out) if out.exists() else None
        assert state in (expected(old), expected(new)), f"killed at step {step}: the folder is a mix or missing"
        outcomes.append("old" if state == expected(old) else "new")
        if not died:
            assert state == expected(new)
            break
    else:
        pytest.fail("the writer never finished")
    # Killed while staging: the previous render stays; killed after the swap: the new one is complete.
    assert outcomes.count("old") >= len(new.files) and "new" in outcomes[:-1]


# ---------------------------------------------------------------- killed from outside, mid-write
def test_sigkill_mid_write_leaves_the_previous_render(folder: Path, tmp_path: Path) -> None:
    out = folder / "out"
    assert run_cli("--profiles-dir", folder, "render", "prod", "--out", out).exit_code == 0
    before = snapshot(out)
    proc = slow_render(folder, "dev", out, 0.05, tmp_path / "writes.log")
    deadline = time.monotonic() + 30
    staged: list[Path] = []
    while time.monotonic() < deadline:
        staged = [f for d in folder.glob(".out.new-*") for f in d.rglob("*") if f.is_file()]
        if len(staged) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert len(staged) >= 3, "the render never got to writing"
    assert snapshot(out) == before
    assert list(folder.glob(".out.new-*")), "expected the killed render's staging folder"
    # The next render cleans up after the killed one.
    assert run_cli("--profiles-dir", folder, "render", "dev", "--out", out).exit_code == 0
    assert snapshot(out) == expected(rendered_bundle("dev"))
    assert not list(folder.glob(".out.*.*")) and not list(folder.glob(".out.new-*"))


# ---------------------------------------------------------------- concurrent renders
def test_concurrent_renders_do_not_interleave(folder: Path, tmp_path: Path) -> None:
    (folder / "prod-small.yaml").write_text("extends: prod\nenvironment: prod-small\nnamespace: small\n"
                                            "pgbouncer: {default_pool_size: 10}\n")
    envs = ["prod", "dev", "prod-small", "dev"]
    wanted = {}
    for env in set(envs):
        alone = tmp_path / f"alone-{env}"
        assert run_cli("--profiles-dir", folder, "render", env, "--out", alone).exit_code == 0
        wanted[env] = snapshot(alone)
    out, log = folder / "out", tmp_path / "writes.log"
    procs = [slow_render(folder, env, out, 0.01, log) for env in envs]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    assert snapshot(out) in wanted.values(), "the folder mixes files from different renders"
    assert siblings(out) == [".out.lock", "out"]
    # Each render's writes form one block in time: no other render wrote in between.
    writes = sorted((float(start), float(end), int(pid)) for pid, start, end in
                    (line.split() for line in log.read_text().splitlines()))
    assert len({pid for _, _, pid in writes}) == len(envs)
    blocks = [pid for index, (_, _, pid) in enumerate(writes) if index == 0 or writes[index - 1][2] != pid]
    assert len(blocks) == len(envs), f"writes interleaved: {blocks}"
    for (_, end, pid), (start, _, next_pid) in zip(writes, writes[1:], strict=False):
        if pid != next_pid:
            assert end <= start

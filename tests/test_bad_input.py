"""Bad input is refused cleanly: every profile in tests/bad_profiles/ (and a few made here: a 50 MB file,
non-UTF-8 bytes, nesting too deep for the parser) makes `perfstack render` exit 2 with a message naming
file:line and the key, within 2 s of CPU time and bounded memory, leaving the output folder byte-identical.

Each corpus file starts with `# expect: KEY | MESSAGE`: KEY is the dotted key the message must name (alternatives a/b; `-`
where the problem is the file itself: syntax, size, encoding), MESSAGE a fragment the message must carry.
Files run in a folder beside copies of profiles/*.yaml, so `extends: prod` finds its parent.
Each render runs in its own process under an address-space limit; its time and peak memory are measured
from that process (os.wait4), not from the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from generators import loader

from .conftest import PROFILES, snapshot, worktree_env

CORPUS = Path(__file__).parent / "bad_profiles"
TIME_LIMIT_S = 2.0  # CPU seconds (user + system) of the render process, start-up included
WALL_LIMIT_S = 10.0  # wall clock, loose: parallel test workers share the cores; it catches hangs
MEMORY_LIMIT_BYTES = 2 * 1024**3  # RLIMIT_AS of the render process: a blow-up dies instead of swapping
PEAK_RSS_LIMIT_KB = 256 * 1024  # what a refused render may use at its peak (Python + pydantic is ~45 MB)
RENDER = "from generators.cli import main; main()"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # wall clock
    cpu_seconds: float
    peak_rss_kb: int


def perfstack(cwd: Path, *args: str) -> Run:
    """Run the CLI in a fresh process and measure that process alone (wall time, peak RSS)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        # prlimit sets the limit and execs Python in the same process (wait4 measures it alone). Not a preexec_fn:
        # that makes subprocess fork() the test runner, whose gRPC (loaded by the Pulumi tests in the same
        # worker) aborts the child in its fork handler before the exec.
        proc = subprocess.Popen(["prlimit", f"--as={MEMORY_LIMIT_BYTES}", sys.executable, "-c", RENDER, *args],
                                cwd=cwd, stdout=out, stderr=err, env=worktree_env())
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            proc.returncode = 0  # reaped by wait4: keep Popen from waiting again
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return Run(os.waitstatus_to_exitcode(status), out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"), seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def expectation(path: Path) -> tuple[str, str]:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    match = re.fullmatch(r"# expect: (\S+) \| ?(.*)", first)
    assert match, f"{path.name}: first line must be '# expect: KEY | MESSAGE'"
    return match.group(1), match.group(2)


CASES = sorted(CORPUS.glob("*.yaml"))


@pytest.fixture(scope="module")
def workspace() -> Iterator[Path]:
    """The example profiles, the corpus, and a previously rendered folder that must never change."""
    folder = Path(tempfile.mkdtemp(prefix="perfstack-bad-"))
    try:
        for path in [*PROFILES.glob("*.yaml"), *CASES]:
            shutil.copy(path, folder / path.name)
        result = perfstack(folder, "render", "prod.yaml", "--out", "out")
        assert result.returncode == 0, result.stderr
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def assert_refused(folder: Path, name: str, key: str, message: str) -> Run:
    before = snapshot(folder / "out")
    entries = sorted(p.name for p in folder.iterdir())
    result = perfstack(folder, "render", name, "--out", "out")
    assert result.returncode == 2, f"{name}: exit {result.returncode}\n{result.stderr}"
    assert result.stderr.startswith("perfstack: error:"), result.stderr
    assert "Traceback" not in result.stderr
    located = re.search(r"([\w.-]+\.yaml):(\d+)(:\d+)?:", result.stderr)
    assert located, f"{name}: no file:line in {result.stderr!r}"
    assert os.path.lexists(folder / located.group(1)) and int(located.group(2)) >= 1  # lexists: a symlink loop
    if key != "-":  # KEY may list alternatives (a/b) where a check names two keys and locates the written one
        named = any(re.search(rf": {re.escape(k)}[.:]", result.stderr) for k in key.split("/"))
        assert named, f"{name}: {key} not named in {result.stderr!r}"
    assert message in result.stderr, f"{name}: {message!r} not in {result.stderr!r}"
    assert result.cpu_seconds < TIME_LIMIT_S, f"{name}: took {result.cpu_seconds:.2f} CPU seconds"
    assert result.seconds < WALL_LIMIT_S, f"{name}: took {result.seconds:.2f}s"
    assert result.peak_rss_kb < PEAK_RSS_LIMIT_KB, f"{name}: peak RSS {result.peak_rss_kb} kB"
    assert snapshot(folder / "out") == before, f"{name}: the output folder changed"
    assert sorted(p.name for p in folder.iterdir()) == entries, f"{name}: left files beside the output folder"
    assert not result.stdout
    return result


def test_the_corpus_covers_every_kind_of_bad_input() -> None:
    kinds = {path.name.split("_")[0] for path in CASES}
    assert len(CASES) >= 110
    assert {"syntax", "type", "unit", "range", "unknown", "extends", "check", "secret", "hostile", "pgsetting",
            "rounding"} <= kinds


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_bad_profile_is_refused(workspace: Path, path: Path) -> None:
    key, message = expectation(path)
    assert_refused(workspace, path.name, key, message)
    assert not list(workspace.glob("perfstack-pwned*")), "a YAML tag ran code"


def test_secret_value_is_not_echoed(workspace: Path) -> None:
    for path in CORPUS.glob("secret_*.yaml"):
        result = perfstack(workspace, "render", path.name, "--out", "out")
        assert result.returncode == 2
        assert "hunter2" not in result.stderr, f"{path.name} echoed the secret"


def test_fifty_megabyte_profile(workspace: Path) -> None:
    path = workspace / "huge.yaml"
    line = "# " + "x" * 1021 + "\n"
    with open(path, "w") as handle:
        handle.write("extends: prod\n")
        for _ in range(50 * 1024):
            handle.write(line)
    assert path.stat().st_size >= 50 * 1024 * 1024
    try:
        assert_refused(workspace, "huge.yaml", "-", "profiles are limited to")
    finally:
        path.unlink()


def test_non_utf8_bytes(workspace: Path) -> None:
    path = workspace / "latin1.yaml"
    path.write_bytes(b"extends: prod\nnamespace: caf\xe9\n")
    try:
        result = assert_refused(workspace, "latin1.yaml", "-", "not UTF-8")
        assert "latin1.yaml:2:" in result.stderr or "latin1.yaml:2 " in result.stderr
    finally:
        path.unlink()


def test_block_nesting_too_deep_for_the_parser(workspace: Path) -> None:
    path = workspace / "deep.yaml"
    lines = ["extends: prod", "app:"] + [" " * depth + "a:" for depth in range(1, 700)] + [" " * 700 + "b: 1"]
    path.write_text("\n".join(lines) + "\n")
    try:
        assert_refused(workspace, "deep.yaml", "-", "nested deeper than")
    finally:
        path.unlink()


def test_too_many_lines(workspace: Path) -> None:
    """The parser reads ~10,000 lines a second: a long file is refused before it is parsed."""
    path = workspace / "long.yaml"
    path.write_text("extends: prod\napp:\n" + "".join(f"  k{i}: {i}\n" for i in range(loader.MAX_LINES + 100)))
    assert path.stat().st_size < loader.MAX_FILE_BYTES
    try:
        assert_refused(workspace, "long.yaml", "-", "lines")
    finally:
        path.unlink()


def test_many_aliases_just_under_the_limits(workspace: Path) -> None:
    """Aliases are references, not copies: a file full of them is still bounded by the node limit."""
    path = workspace / "aliases.yaml"
    lines = ["extends: prod", "app:", "  base: &b {x: 1, y: 2, z: 3, w: [1, 2, 3, 4, 5, 6, 7, 8]}"]
    lines += [f"  k{i}: *b" for i in range(loader.MAX_LINES - 10)]
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < loader.MAX_FILE_BYTES
    try:
        assert_refused(workspace, "aliases.yaml", "app", "more than")
    finally:
        path.unlink()


# ---------------------------------------------------------------- hostile files git cannot hold: made here
PROFILE_HEAD = (b"extends: prod\nenvironment: prod\nnamespace: ai-platform\nenvironment_matches_file_name: false\n")


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # nobody ever writes: reading it would block forever


def _symlink_loop(path: Path) -> None:
    other = path.with_name(path.stem + "-other.yaml")
    os.symlink(other.name, path)
    os.symlink(path.name, other)


def _to(target: str) -> Callable[[Path], None]:
    return lambda path: os.symlink(target, path)


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _sparse(path: Path) -> None:
    with open(path, "wb") as handle:  # claims 8 GiB, holds nothing: the size is refused before any read
        handle.write(PROFILE_HEAD)
        handle.truncate(8 * 1024**3)


def _extends(parent_maker: Callable[[Path], None], parent: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        parent_maker(path.with_name(f"{parent}.yaml"))
        path.write_bytes(f"extends: {parent}\nenvironment: prod\nnamespace: ai-platform\n".encode())
    return make


def _unknown_settings(count: int) -> Callable[[Path], None]:
    names = ", ".join(f"not_a_parameter_{i}: 1" for i in range(count))
    return _bytes(PROFILE_HEAD + f"postgres:\n  settings: {{{names}}}\n".encode())


HOSTILE_FILES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (how to make it, the file the message names, what the message says)
    "directory": (_directory, "directory.yaml", "not a directory"),
    "fifo": (_fifo, "fifo.yaml", "not a FIFO"),
    "symlink_loop": (_symlink_loop, "symlink_loop.yaml", "symlink loop"),
    "symlink_to_dev_zero": (_to("/dev/zero"), "symlink_to_dev_zero.yaml", "not a device file"),
    "symlink_to_dev_null": (_to("/dev/null"), "symlink_to_dev_null.yaml", "not a device file"),
    "symlink_to_a_directory": (_to("/tmp"), "symlink_to_a_directory.yaml", "not a directory"),
    "sparse_8_gib": (_sparse, "sparse_8_gib.yaml", "profiles are limited to"),
    "nul_byte": (_bytes(PROFILE_HEAD + b"app:\n  deployment: api\x00x\n"), "nul_byte.yaml", "a NUL byte"),
    "utf8_bom": (_bytes(b"\xef\xbb\xbf" + PROFILE_HEAD), "utf8_bom.yaml", "byte-order mark"),
    "utf16_bom": (_bytes("extends: prod\n".encode("utf-16")), "utf16_bom.yaml", "byte-order mark"),
    "parent_is_a_fifo": (_extends(_fifo, "pipe"), "pipe.yaml", "not a FIFO"),
    "parent_is_a_directory": (_extends(_directory, "folder"), "folder.yaml", "not a directory"),
    "parent_is_a_symlink_loop": (_extends(_symlink_loop, "looped"), "looped.yaml", "symlink loop"),
    "parent_is_dev_zero": (_extends(_to("/dev/zero"), "zeros"), "zeros.yaml", "not a device file"),
    "nine_thousand_unknown_settings": (_unknown_settings(9000), "nine_thousand_unknown_settings.yaml",
                                       "unknown PostgreSQL parameter"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_hostile_file_is_refused_within_bounds(workspace: Path, name: str) -> None:
    make, named, message = HOSTILE_FILES[name]
    path = workspace / f"{name}.yaml"
    before = set(workspace.iterdir())
    make(path)
    made = set(workspace.iterdir()) - before
    try:
        result = assert_refused_made(workspace, path.name, message, made)
        assert f"{named}:" in result.stderr, result.stderr
    finally:
        for item in made:
            if item.is_dir() and not item.is_symlink():
                item.rmdir()
            else:
                item.unlink()


def assert_refused_made(folder: Path, name: str, message: str, made: set[Path]) -> Run:
    """assert_refused for a case that left its own files in the folder (they are the input, not output)."""
    result = assert_refused(folder, name, "-", message)
    assert set(folder.iterdir()) >= made
    return result


def test_an_unexpected_exception_is_an_internal_error_not_a_traceback(workspace: Path) -> None:
    """A bug (here: a generator made to raise) is exit 3 with one line and a hint, in a real process."""
    code = ("import generators.render as r\n"
            "def boom(*a, **k):\n    raise KeyError('injected')\n"
            "r.render = boom\n"
            "from generators.cli import main\nmain()\n")
    result = subprocess.run([sys.executable, "-c", code, "render", "prod.yaml", "--out", "out-internal"],
                            cwd=workspace, capture_output=True, text=True, env=worktree_env(), timeout=60)
    assert result.returncode == 3
    assert result.stderr.startswith("perfstack: internal error: KeyError: 'injected'")
    assert "please report it" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workspace / "out-internal").exists()

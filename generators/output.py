"""Write a Bundle to a folder atomically, and compare a folder with a Bundle (render --check).

perfstack owns the folders it writes: it replaces a folder whole only when it holds the marker file
MARKER (which every render leaves) or is empty; anything else, a file, or a folder of someone else's
files (`--out ..` of a repository), is refused before anything is written. An `--out` that is a symlink
is followed: the folder it points at is the one replaced, and the symlink stays. A read-only or full
disk is an OutputError naming the path (exit 2), never a traceback."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .bundle import Bundle
from .errors import PerfstackError

MARKER = ".perfstack-output"
MARKER_TEXT = ("This folder is written by perfstack (`perfstack render`), which replaces it whole on each render.\n"
               "Do not keep other files here: perfstack refuses to write into a folder without this file.\n")


class OutputError(PerfstackError):
    """An output folder perfstack may not or cannot write (exit 2)."""


def target_folder(out_dir: Path) -> Path:
    """The folder a render replaces: `out_dir`, or where it points when it is a symlink (followed, kept)."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        try:
            return out_dir.resolve(strict=False)
        except (RuntimeError, OSError) as exc:
            raise OutputError(f"--out {out_dir}: cannot follow the symlink: {exc}") from None
    return out_dir


def check_owned(out_dir: Path) -> None:
    """Refuse a folder perfstack did not create (no MARKER) unless it is empty."""
    if not os.path.lexists(out_dir):
        return
    if not out_dir.is_dir():
        raise OutputError(f"--out {out_dir}: exists and is not a folder; perfstack writes only into a folder it "
                          "created or an empty one")
    if (out_dir / MARKER).is_file():
        return
    try:
        entries = sorted(p.name for p in out_dir.iterdir())
    except OSError as exc:
        raise OutputError(f"--out {out_dir}: cannot read the folder: {exc.strerror}") from None
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise OutputError(f"--out {out_dir}: the folder is not empty ({shown}) and was not created by perfstack "
                          f"(no {MARKER} in it): perfstack replaces its output folder whole, so it writes only into a "
                          "folder it created or an empty one; choose another --out or empty this folder")


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """One render at a time per output folder: concurrent renders do not interleave."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out_dir.parent / f".{out_dir.name}.lock"
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _recover(out_dir: Path) -> None:
    """Undo what a killed render left (called under the lock, so no other render owns these):
    a previous folder parked as .NAME.old goes back, and stale .NAME.new-* staging folders go."""
    old = out_dir.parent / f".{out_dir.name}.old"
    if old.exists() and not out_dir.exists():
        old.rename(out_dir)
    elif old.exists():
        shutil.rmtree(old)
    for stale in out_dir.parent.glob(f".{out_dir.name}.new-*"):
        shutil.rmtree(stale, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def write_bundle(bundle: Bundle, out_dir: Path) -> None:
    """Write every file to a fresh folder beside out_dir, then swap it in: all or nothing.

    Only into a folder perfstack owns (check_owned); OSError (read-only, full disk) becomes OutputError."""
    shown = Path(out_dir)
    out_dir = target_folder(shown)
    check_owned(out_dir)
    try:
        _write_owned(bundle, out_dir)
    except OSError as exc:
        where = exc.filename or out_dir
        raise OutputError(f"--out {shown}: cannot write {where}: {exc.strerror or exc}") from None


def _write_owned(bundle: Bundle, out_dir: Path) -> None:
    with _locked(out_dir):
        check_owned(out_dir)  # again under the lock: another process may have filled it meanwhile
        _recover(out_dir)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
        try:
            for rel, text in bundle.files.items():
                path = staging / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            (staging / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
            staging.chmod(0o755)
            old = out_dir.parent / f".{out_dir.name}.old"
            if out_dir.exists() and _exchange(staging, out_dir):
                pass  # one atomic swap: out_dir is the new render, staging holds the previous one (removed below)
            else:
                if out_dir.exists():
                    out_dir.rename(old)
                staging.rename(out_dir)
            if old.exists():
                shutil.rmtree(old)
            fd = os.open(out_dir.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


@dataclass
class FolderDiff:
    missing: list[str] = field(default_factory=list)  # rendered but not in the folder
    extra: list[str] = field(default_factory=list)  # in the folder but no longer rendered
    changed: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def lines(self) -> list[str]:
        return ([f"missing: {p}" for p in self.missing] + [f"extra:   {p}" for p in self.extra]
                + [f"changed: {p}" for p in self.changed])


def compare_folder(bundle: Bundle, out_dir: Path) -> FolderDiff:
    diff = FolderDiff()
    present = {str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file()} if out_dir.exists() else set()
    for rel, text in bundle.files.items():
        if rel not in present:
            diff.missing.append(rel)
        elif (out_dir / rel).read_text(encoding="utf-8") != text:
            diff.changed.append(rel)
    diff.extra = sorted(present - set(bundle.files) - {MARKER})
    if out_dir.is_dir() and MARKER not in present:  # a folder perfstack wrote carries its marker
        diff.missing.append(MARKER)
    return diff

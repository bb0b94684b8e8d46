"""Write a Bundle to a folder atomically, and compare a folder with a Bundle (render --check)."""

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
    """Write every file to a fresh folder beside out_dir, then swap it in: all or nothing."""
    out_dir = Path(out_dir)
    with _locked(out_dir):
        _recover(out_dir)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
        try:
            for rel, text in bundle.files.items():
                path = staging / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
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
    diff.extra = sorted(present - set(bundle.files))
    return diff

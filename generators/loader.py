"""Read profile YAML into plain data plus the source location of every key.

The loader only reads and returns data; `validation.load_profile` validates it. Overlays follow one
explicit order: a profile's `extends:` parent first, then the profile itself on top (mappings
merge deeply, scalars and lists replace).
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import Problem, ProfileError

# Hostile-input bounds: a profile is a few hundred lines written by people.
# ruamel's round-trip parser reads ~10,000 lines a second: the line bound keeps a refusal under a second.
MAX_FILE_BYTES = 256 * 1024
MAX_LINES = 5_000
MAX_NODES = 20_000
MAX_DEPTH = 32

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Location:
    file: str
    line: int
    column: int


@dataclass
class Source:
    """Plain data of a merged profile and where each key was written."""

    data: dict[str, Any]
    locations: dict[Path_, Location] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def locate(self, path: Path_) -> Location | None:
        """The location of a key, or of its nearest written ancestor."""
        path = tuple(path)
        while True:
            if path in self.locations:
                return self.locations[path]
            if not path:
                return None
            path = path[:-1]

    def problem(self, keys: list[str] | tuple[str, ...], message: str,
                context: list[str] | tuple[str, ...] = ()) -> Problem:
        """The one locator: (keys, message) -> a `file:line:col: key: message` problem.

        Names and points at the first of `keys` the profile itself wrote (the last file of the extends
        chain), else the first written anywhere. When none is written, it names the first key and points
        at the first `context` key written (e.g. `exposed` for "exposed needs client_tls"), else at the
        nearest written parent of the first key, else at the file.
        """
        chosen = self._written([split_key(k) for k in keys])
        if chosen is not None:
            return self.problem_at(chosen, message)
        first = split_key(keys[0]) if keys else ()
        where = self.locations.get(near) if (near := self._written([split_key(k) for k in context])) else None
        return self.problem_at(first, message, where)

    def _written(self, paths: list[Path_]) -> Path_ | None:
        own = self.files[-1] if self.files else None
        written = [(path, loc) for path in paths if (loc := self.locations.get(path)) is not None]
        return next((path for path, loc in written if loc.file == own), written[0][0] if written else None)

    def problem_at(self, path: Path_, message: str, where: Location | None = None) -> Problem:
        """A problem at key `path` (or its nearest written parent; a key written nowhere is the file's)."""
        where = where or self.locate(path)
        file = where.file if where else (self.files[-1] if self.files else "<profile>")
        return Problem(message=message, file=file, line=where.line if where else 1,
                       column=where.column if where else None, key=dotted(path))


def split_key(key: str) -> Path_:
    """'postgres.settings.work_mem' -> ('postgres', 'settings', 'work_mem'); list indexes become ints."""
    return tuple(int(p) if p.isdigit() else p for p in key.split(".")) if key else ()


def display_path(path: Path) -> str:
    """A path as users typed it: relative to the working folder when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, RuntimeError, OSError):  # not below the working folder, a symlink loop, a NUL
        return str(path)


def dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def _fail(file: str, message: str, line: int | None = None, column: int | None = None, key: str = "") -> ProfileError:
    return ProfileError([Problem(message=message, file=file, line=line, column=column, key=key)])


def _read_bounded(path: Path, shown: str) -> bytes:
    """The bytes of a regular file, at most MAX_FILE_BYTES: anything else is refused before it is read.

    Opened with O_NONBLOCK (a FIFO never blocks the open) and checked with fstat on the open descriptor
    (no race with a rename): directories, FIFOs, sockets and devices (/dev/zero) are refused, and the read
    stops one byte past the limit whatever the file claims its size is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _fail(shown, "cannot read profile: a symlink loop (too many levels of symbolic links)",
                        line=1) from None
        if exc.errno == errno.EISDIR:
            raise _fail(shown, "a profile must be a regular file, not a directory", line=1) from None
        raise _fail(shown, f"cannot read profile: {exc.strerror}", line=1) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode)
                    else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device file"
                    if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a regular file")
            raise _fail(shown, f"a profile must be a regular file, not {kind}", line=1)
        if info.st_size > MAX_FILE_BYTES:
            raise _fail(shown, f"profile is {info.st_size} bytes; profiles are limited to {MAX_FILE_BYTES} bytes",
                        line=1)
        chunks, total = [], 0
        while total <= MAX_FILE_BYTES:
            try:
                chunk = os.read(fd, MAX_FILE_BYTES + 1 - total)
            except OSError as exc:
                raise _fail(shown, f"cannot read profile: {exc.strerror}", line=1) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_FILE_BYTES:  # it grew while read, or fstat lied (procfs): the bound holds anyway
            raise _fail(shown, f"profile is over {MAX_FILE_BYTES} bytes; profiles are limited to {MAX_FILE_BYTES} "
                        "bytes", line=1)
        return b"".join(chunks)
    finally:
        os.close(fd)


# What the YAML parser would read in a way the author may not mean, refused at the line that has it.
_DIRECTIVE = re.compile(rb"^%", re.MULTILINE)
_DOCUMENT_MARK = re.compile(rb"^(---|\.\.\.)(?=[ \t\r\n]|$)", re.MULTILINE)


def _line_of(raw: bytes, offset: int) -> int:
    return raw[:offset].count(b"\n") + 1


def _refuse_hostile_text(raw: bytes, shown: str) -> None:
    if raw.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        raise _fail(shown, "starts with a byte-order mark (BOM): save the profile as UTF-8 without a BOM", line=1,
                    column=1)
    if (nul := raw.find(b"\x00")) >= 0:
        raise _fail(shown, f"a NUL byte at offset {nul}: profiles are text", line=_line_of(raw, nul))
    if (match := _DIRECTIVE.search(raw)) is not None:
        raise _fail(shown, "YAML directives (%YAML, %TAG) are not allowed: they change how values are read "
                    "(%YAML 1.1 reads 0777 as 511 and `on` as true)", line=_line_of(raw, match.start()), column=1)
    marks = list(_DOCUMENT_MARK.finditer(raw))
    if marks:
        first = marks[0]
        # one leading `---` is harmless; a second document, or `...` and more, is not
        if len(marks) > 1 or raw[: first.start()].strip(b" \t\r\n") and not _only_comments(raw[: first.start()]):
            where = marks[1] if len(marks) > 1 else first
            raise _fail(shown, "a profile is one YAML document: remove the `---`/`...` document markers",
                        line=_line_of(raw, where.start()), column=1)


def _only_comments(head: bytes) -> bool:
    return all(not line.strip() or line.lstrip().startswith(b"#") for line in head.splitlines())


def _read_yaml(path: Path, shown: str) -> Any:
    raw = _read_bounded(path, shown)
    _refuse_hostile_text(raw, shown)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise _fail(shown, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                    line=bad_line) from None
    deep = _flow_too_deep(text)
    if deep is not None:  # checked before parsing: the parser slows down quadratically with flow depth
        raise _fail(shown, f"YAML nested deeper than {MAX_DEPTH} levels", line=deep)
    line_count = text.count("\n") + 1
    if line_count > MAX_LINES:
        raise _fail(shown, f"profile has {line_count} lines; profiles are limited to {MAX_LINES} lines",
                    line=MAX_LINES + 1)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise _fail(shown, f"YAML syntax error: {problem}", line=line, column=column) from None
    except YAMLError as exc:
        raise _fail(shown, f"YAML error: {exc}") from None
    except RecursionError:
        lines = text.splitlines() or [""]
        deepest = max(range(len(lines)), key=lambda i: len(lines[i]) - len(lines[i].lstrip(" ")))
        raise _fail(shown, f"YAML nested deeper than {MAX_DEPTH} levels", line=deepest + 1) from None


def _flow_too_deep(text: str) -> int | None:
    """The line where [ and { nest deeper than MAX_DEPTH outside quotes and comments, if any."""
    depth, line, quote, previous = 0, 1, "", " "
    for char in text:
        if char == "\n":
            line += 1
            if quote == "#":
                quote = ""
        elif quote:
            if char == quote and quote != "#":
                quote = ""
        elif char in "'\"" and previous in " \t[{,:":
            quote = char
        elif char == "#" and previous in " \t\n":
            quote = "#"
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line
        elif char in "]}":
            depth = max(0, depth - 1)
        previous = char
    return None


class _Plainer:
    """Turn ruamel's round-trip nodes into plain Python data, recording locations, with bounds."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.nodes = 0
        self.locations: dict[Path_, Location] = {}

    def convert(self, node: Any, path: Path_, depth: int, line: int, column: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _fail(self.shown, f"profile expands to more than {MAX_NODES} values (aliases or anchors repeated?)",
                        line=line, column=column, key=dotted(path))
        if depth > MAX_DEPTH:
            raise _fail(self.shown, f"nested deeper than {MAX_DEPTH} levels", line=line, column=column, key=dotted(path))
        tag = getattr(getattr(node, "tag", None), "value", None)
        if tag and isinstance(node, (CommentedMap, CommentedSeq)):
            # ruamel's round-trip loader never constructs tagged objects; refuse them rather than drop the tag.
            raise _fail(self.shown, f"YAML tag {tag} is not allowed: profiles hold only plain mappings, lists, "
                        "text, numbers and booleans", line=line, column=column, key=dotted(path))
        if isinstance(node, CommentedMap):
            if getattr(node, "merge", None):
                raise _fail(self.shown, "YAML merge keys (<<:) are not allowed: write the keys out, or use "
                            "`extends:` for shared values", line=line, column=column, key=dotted(path))
            out: dict[str, Any] = {}
            for key in node:
                kline, kcol = node.lc.key(key)
                if not isinstance(key, str):
                    raise _fail(self.shown, f"keys must be text, got {key!r}", line=kline + 1, column=kcol + 1,
                                key=dotted(path))
                sub = path + (key,)
                self.locations[sub] = Location(self.shown, kline + 1, kcol + 1)
                out[key] = self.convert(node[key], sub, depth + 1, kline + 1, kcol + 1)
            return out
        if isinstance(node, CommentedSeq):
            items = []
            for index, item in enumerate(node):
                try:
                    iline, icol = node.lc.item(index)
                except (KeyError, TypeError, IndexError):
                    iline, icol = line - 1, column - 1
                sub = path + (index,)
                self.locations[sub] = Location(self.shown, iline + 1, icol + 1)
                items.append(self.convert(item, sub, depth + 1, iline + 1, icol + 1))
            return items
        if node is None or isinstance(node, (bool, int, float, str)):
            if isinstance(node, str):
                return str(node)
            if isinstance(node, bool):
                return bool(node)
            if isinstance(node, int):
                return int(node)
            if isinstance(node, float):
                return float(node)
            return node
        tag = getattr(getattr(node, "tag", None), "value", None) or type(node).__name__
        raise _fail(self.shown, f"unsupported YAML value of type {tag}: profiles hold only mappings, lists, "
                    "text, numbers and booleans", line=line, column=column, key=dotted(path))


def resolve_profile_path(name: str, profiles_dir: Path) -> Path:
    """ENV is a profile name under profiles_dir or a path to a YAML file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or "/" in name:
        return candidate
    for suffix in (".yaml", ".yml"):
        path = profiles_dir / f"{name}{suffix}"
        if path.exists():
            return path
    return profiles_dir / f"{name}.yaml"


# Mappings an overlay replaces whole instead of merging into: a model is one thing (a child naming
# another model must not keep the parent's layers or dtype).
REPLACED_WHOLE: frozenset[Path_] = frozenset({("llm", "model")})
# Keys about the file itself, never inherited through extends.
NOT_INHERITED = ("abstract", "environment_matches_file_name")


def deep_merge(base: dict[str, Any], overlay: dict[str, Any], _path: Path_ = (),
               whole: frozenset[Path_] = REPLACED_WHOLE) -> dict[str, Any]:
    """Mappings merge deeply (except those at `whole`); scalars and lists replace."""
    merged = dict(base)
    for key, value in overlay.items():
        path = _path + (key,)
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and path not in whole:
            merged[key] = deep_merge(merged[key], value, path, whole)
        else:
            merged[key] = value
    return merged


def _drop_locations_under(locations: dict[Path_, Location], prefix: Path_) -> None:
    for path in [p for p in locations if p[: len(prefix)] == prefix and len(p) > len(prefix)]:
        del locations[path]


def _known_profiles(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.y*ml"))


def _resolved(path: Path) -> Path | None:
    """The real path, or None where it cannot be resolved (a symlink loop: reading it says so)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return None


_PROFILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def load_source(path: Path, _chain: tuple[Path, ...] = ()) -> Source:
    """Load one profile file and its `extends:` parents into merged plain data."""
    shown = display_path(path)
    if not os.path.lexists(path):
        raise _fail(shown, "profile not found")
    document = _read_yaml(path, shown)  # refuses symlink loops, directories, FIFOs and devices first
    resolved = path.resolve()  # it opened, so it resolves
    if document is None:
        raise _fail(shown, "profile is empty: expected a mapping with at least `environment` or `extends`", line=1)
    if not isinstance(document, CommentedMap):
        kind = "a list" if isinstance(document, CommentedSeq) else f"the single value {document!r}"
        raise _fail(shown, f"a profile must be a mapping of keys (key: value), got {kind}", line=1, column=1)
    plainer = _Plainer(shown)
    data = plainer.convert(document, (), 0, 1, 1)
    locations = plainer.locations
    files = [shown]

    parent_name = data.pop("extends", None)
    if parent_name is None:
        return Source(data=data, locations=locations, files=files)
    where = locations.get(("extends",))
    line, column = (where.line, where.column) if where else (None, None)
    if not isinstance(parent_name, str) or not _PROFILE_NAME.fullmatch(parent_name):
        raise _fail(shown, f"extends must name another profile in the same folder (letters, digits, '_', '-', "
                    f"'.'), got {parent_name!r}", line=line, column=column, key="extends")
    parent_path = path.parent / f"{parent_name.removesuffix('.yaml')}.yaml"
    chain = _chain + (resolved,)
    if _resolved(parent_path) in chain:
        cycle = " -> ".join(p.stem for p in chain + (parent_path,))
        raise _fail(shown, f"extends cycle: {cycle}", line=line, column=column, key="extends")
    if not os.path.lexists(parent_path):
        known = _known_profiles(path.parent)
        hint = difflib.get_close_matches(parent_name, known, n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else f" (profiles here: {', '.join(known) or 'none'})"
        raise _fail(shown, f"extends unknown profile '{parent_name}': no {display_path(parent_path)}{suggestion}",
                    line=line, column=column, key="extends")
    parent = load_source(parent_path, chain)
    for key in NOT_INHERITED:
        parent.data.pop(key, None)
        parent.locations.pop((key,), None)
    merged_locations = dict(parent.locations)
    for key_path, _value in _walk_replaced(data):
        _drop_locations_under(merged_locations, key_path)
    merged_locations.update(locations)
    merged_locations.pop(("extends",), None)
    return Source(data=deep_merge(parent.data, data), locations=merged_locations, files=parent.files + files)


def _walk_replaced(data: dict[str, Any], prefix: Path_ = ()) -> list[tuple[Path_, Any]]:
    """Paths whose overlay value replaces the parent's entirely (scalars and lists)."""
    out: list[tuple[Path_, Any]] = []
    for key, value in data.items():
        path = prefix + (key,)
        if isinstance(value, dict) and path not in REPLACED_WHOLE:
            out.extend(_walk_replaced(value, path))
        else:
            out.append((path, value))
    return out

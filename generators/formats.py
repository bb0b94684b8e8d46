"""Every file format perfstack writes, escaped or refused in one place: each target's text goes through here.

A profile's types (types.py) refuse what no file can hold; these functions are the second line: each
writes a value so that the real reader of its file reads back exactly that value (and nothing else), or
raises FormatError when the format cannot carry it. tests/test_formats.py proves each one against the
real reader (postgres -C, ALTER SYSTEM on a server, PgBouncer's SHOW CONFIG, redis CONFIG GET, a YAML
load, the vLLM launcher's argv, promtool).

- postgresql.conf: guc-file.l's lexer. A quoted value is '...' in which \\ escapes (\\b \\f \\n \\r \\t,
  octal \\ooo, any other character stands for itself) and '' is a quote; a newline cannot occur.
- ALTER SYSTEM SQL: E'...' literals (backslash escapes whatever standard_conforming_strings is), with
  \\ and ' doubled; a list-valued parameter is one literal per element. ALTER SYSTEM refuses newlines.
- pgbouncer.ini: libusual's parse_ini_file has no quoting: a value is the rest of its line with the
  space around it trimmed, so a newline, NUL or surrounding space cannot be written (refused).
- redis.conf: sdssplitargs: "..." with \\\\, \\", \\n, \\r, \\t, \\b, \\a and \\xHH escapes.
- vllm.args: one argv element per line, read by `grep -v '^#' vllm.args | xargs -d '\\n' vllm serve`
  (no word splitting): an element cannot hold a newline, be empty or start with '#'.
- env files (KEY=value): docker's --env-file takes the rest of the line literally and systemd's
  EnvironmentFile= unquotes and expands; only values both read the same are written (no quotes,
  backslashes, '$', '#', spaces or control characters).
- PromQL (rules, dashboards, promtool series): label values are double-quoted Go strings.
- YAML: only through the YAML emitter (k8s.dump_yaml); `#` comment lines through `comment`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from . import pgversions
from .types import unprintable


class FormatError(ValueError):
    """A value that this file format cannot carry."""


def _refuse(what: str, value: str, why: str) -> FormatError:
    return FormatError(f"{what} cannot hold {value!r}: {why}")


# ---------------------------------------------------------------- comments (any format)
def comment(text: str) -> str:
    """Text for the rest of a `#` or `;` comment line: every control, format or line-breaking character
    (a newline, NEL, U+2028...) is written as a visible escape, so no reader starts a new line in it."""
    out = []
    for char in text:
        if unprintable(char) is None:
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)


# ---------------------------------------------------------------- PostgreSQL
_PG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
# guc-file.l reads an INTEGER with unit letters, or a REAL (no unit), unquoted
_PG_BARE = re.compile(r"-?[0-9]+[a-zA-Z]{0,3}|-?[0-9]+\.[0-9]+")


def pg_name(name: str) -> str:
    if not _PG_NAME.fullmatch(name):
        raise _refuse("a PostgreSQL parameter name", name, "letters, digits, '_' (and one '.')")
    return name


def _pg_text(value: str, what: str) -> None:
    if "\x00" in value:
        raise _refuse(what, value, "PostgreSQL strings cannot hold NUL")
    if "\n" in value or "\r" in value:
        raise _refuse(what, value, "a newline ends the setting (ALTER SYSTEM refuses it)")


def pg_conf_value(value: str) -> str:
    """A value for `name = value` in postgresql.conf: numbers with units and on/off bare, the rest quoted."""
    if _PG_BARE.fullmatch(value) or value in ("on", "off"):
        return value
    _pg_text(value, "a postgresql.conf value")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def pg_sql_literal(value: str) -> str:
    """An E'' string literal: it reads the same whatever standard_conforming_strings is."""
    _pg_text(value, "an SQL literal")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def pg_sql_literals(values: Iterable[str]) -> str:
    """A list-valued parameter's ALTER SYSTEM value: one literal per element (search_path = 'a', 'b')."""
    items = list(values)
    if not items:
        raise FormatError("a list-valued parameter needs at least one element")
    return ", ".join(pg_sql_literal(item) for item in items)


# The list parameters, by PostgreSQL's own tables (pgversions, per version 10-18): GUC_LIST_INPUT ones take
# one literal per element; GUC_LIST_QUOTE ones quote each argument as an identifier, so one literal 'a, b'
# would become the single element "a, b".
PG_LIST = pgversions.LIST_PARAMETERS
PG_LIST_QUOTED = pgversions.LIST_QUOTE_PARAMETERS


_PG_SPACE = " \t\n\r\f"  # scanner_isspace


def pg_split_list(value: str) -> list[tuple[str, bool]]:
    """The elements of a list value as postgresql.conf gives it (SplitIdentifierString's grammar):
    comma-separated, each bare (trimmed) or double-quoted ("" is a quote); (element, was it quoted)."""
    items: list[tuple[str, bool]] = []
    i, n = 0, len(value)
    while True:
        while i < n and value[i] in _PG_SPACE:
            i += 1
        if i < n and value[i] == '"':
            j, parts = i + 1, []
            while True:
                k = value.find('"', j)
                if k < 0:
                    raise _refuse("a list value", value, "an unterminated double quote")
                parts.append(value[j:k])
                if k + 1 < n and value[k + 1] == '"':
                    parts.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            items.append(("".join(parts), True))
        else:
            j = value.find(",", i)
            j = n if j < 0 else j
            bare = value[i:j].rstrip(_PG_SPACE)
            if not bare:
                if not items and j == n:
                    return []
                raise _refuse("a list value", value, "an empty element")
            if any(c in _PG_SPACE for c in bare):
                raise _refuse("a list value", value, "a space inside an unquoted element (quote it)")
            items.append((bare, False))
            i = j
        while i < n and value[i] in _PG_SPACE:
            i += 1
        if i == n:
            return items
        if value[i] != ",":
            raise _refuse("a list value", value, "elements are separated by commas")
        i += 1


def _pg_list_elements(value: str) -> list[str]:
    """A GUC_LIST_INPUT (not LIST_QUOTE) value's elements: split at commas outside double quotes, blanks
    around them dropped (PostgreSQL joins ALTER SYSTEM's literals back with ', ')."""
    return [part.strip(_PG_SPACE) for part in re.findall(r'(?:[^,"]|"[^"]*")+', value) if part.strip(_PG_SPACE)]


def pg_sql_value(name: str, value: str) -> str:
    """The right side of ALTER SYSTEM SET name = ... (or ALTER ROLE ... SET): E'' literals, one per element
    of a list parameter. A GUC_LIST_QUOTE parameter's elements are read with SplitIdentifierString's grammar
    (double quotes dropped, PostgreSQL quotes each element itself; a bare element of search_path or
    temp_tablespaces down-cased, as PostgreSQL reads it from the file; ALTER SYSTEM would otherwise keep
    the literal's case)."""
    lowered = name.lower()
    if lowered in PG_LIST_QUOTED and not _PG_BARE.fullmatch(value):
        items = pg_split_list(value)
        if not items:
            return "''"
        downcase = lowered in ("search_path", "temp_tablespaces")
        return pg_sql_literals(item.lower() if downcase and not quoted else item for item, quoted in items)
    if lowered in PG_LIST and not _PG_BARE.fullmatch(value):
        _pg_text(value, "an SQL literal")
        elements = _pg_list_elements(value)
        return pg_sql_literals(elements) if elements else "''"
    return pg_sql_literal(value)


def pg_identifier(name: str) -> str:
    """A double-quoted SQL identifier (a role name): quotes doubled; NUL and newlines refused."""
    _pg_text(name, "an SQL identifier")
    if not name:
        raise FormatError("an SQL identifier cannot be empty")
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------- PgBouncer
_INI_KEY = re.compile(r"[A-Za-z0-9_.*-]+")


def ini_key(key: str) -> str:
    if not _INI_KEY.fullmatch(key):
        raise _refuse("a pgbouncer.ini key", key, "letters, digits, '_', '.', '-', '*'")
    return key


def ini_value(value: str) -> str:
    """A pgbouncer.ini value: written as is (the reader has no quoting) when it survives the line reader."""
    if (char := unprintable(value)) is not None:
        raise _refuse("a pgbouncer.ini value", value, f"the line reader cannot carry {char!r}")
    if value != value.strip(" \t\v\f"):
        raise _refuse("a pgbouncer.ini value", value, "space around a value is trimmed")
    return value


def ini_line(key: str, value: str) -> str:
    return f"{ini_key(key)} = {ini_value(value)}"


_CONNSTR_BARE = re.compile(r"[A-Za-z0-9_.:/-]+")


def connstring_value(value: str) -> str:
    """A value in a [databases] connection string (host=... dbname=...): bare, or refused."""
    if not _CONNSTR_BARE.fullmatch(value):
        raise _refuse("a PgBouncer connection string value", value, "letters, digits and _ . : / - only")
    return value


# ---------------------------------------------------------------- Redis
_REDIS_BARE = re.compile(r"[A-Za-z0-9_.:/+@,%=-]+")
_REDIS_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\a": "\\a"}


def redis_arg(value: str) -> str:
    """One argument of a redis.conf line: bare when that is unambiguous, else a double-quoted string
    (sdssplitargs): any byte but NUL can be written, a newline as \\n."""
    if "\x00" in value:
        raise _refuse("a redis.conf argument", value, "Redis keeps string settings as C strings: NUL ends them")
    if _REDIS_BARE.fullmatch(value):
        return value
    out = []
    for byte in value.encode():
        char = chr(byte)
        if char in _REDIS_ESCAPES:
            out.append(_REDIS_ESCAPES[char])
        elif 0x20 <= byte < 0x7f:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


def redis_line(key: str, *args: str) -> str:
    if not re.fullmatch(r"[a-z0-9-]+", key):
        raise _refuse("a redis.conf directive", key, "lower-case letters, digits and '-'")
    return " ".join([key, *(redis_arg(a) for a in args)])


# ---------------------------------------------------------------- argv files (vllm.args)
ARGV_LAUNCHER = "grep -v '^#' vllm.args | xargs -d '\\n' vllm serve"


def argv_line(arg: str) -> str:
    """One argv element as one line of vllm.args."""
    if not arg:
        raise FormatError("an argv element cannot be empty (xargs would pass an empty argument)")
    if "\n" in arg or "\x00" in arg:
        raise _refuse("an argv line", arg, "a newline (or NUL) would split it into two arguments")
    if arg.startswith("#"):
        raise _refuse("an argv line", arg, "a line starting with '#' is a comment")
    return arg


# ---------------------------------------------------------------- env files
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_VALUE = re.compile(r"[A-Za-z0-9_.:/@%+,=-]*")


def env_line(key: str, value: str) -> str:
    """KEY=value that docker --env-file and systemd EnvironmentFile= read as the same value."""
    if not _ENV_KEY.fullmatch(key):
        raise _refuse("an environment variable name", key, "letters, digits and '_'")
    if not _ENV_VALUE.fullmatch(value):
        raise _refuse(f"the value of {key}", value, "docker and systemd read quotes, '\\', '$', '#', spaces and "
                      "control characters differently")
    return f"{key}={value}"


# ---------------------------------------------------------------- PromQL
def promql_string(value: str) -> str:
    """A PromQL double-quoted string (Go escapes): reads back as exactly `value`."""
    out = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif unprintable(char) is not None or char == "\x7f":
            out.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


_PROM_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def matcher(label: str, value: str, op: str = "=") -> str:
    """label="value" (or !=, =~, !~) for a PromQL selector, the value quoted and escaped."""
    if not _PROM_LABEL.fullmatch(label):
        raise _refuse("a Prometheus label name", label, "letters, digits and '_'")
    if op not in ("=", "!=", "=~", "!~"):
        raise FormatError(f"not a PromQL matcher operator: {op!r}")
    return f"{label}{op}{promql_string(value)}"


_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def regex_alternatives(values: Iterable[str]) -> str:
    """An RE2 regex matching exactly these values (for =~), each escaped (RE2 accepts \\ before
    punctuation only, so Python's re.escape is not used)."""
    return "|".join("".join("\\" + c if c in _RE2_SPECIAL else c for c in v) for v in values)


def selector(metric: str, matchers: Iterable[str]) -> str:
    if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", metric):
        raise _refuse("a PromQL metric name", metric, "letters, digits, '_' and ':'")
    return metric + "{" + ", ".join(matchers) + "}"

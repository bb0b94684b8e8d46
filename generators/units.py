"""Units for sizes, durations, ratios and counts.

Inside perfstack every size is an integer number of bytes, every duration an integer number of
milliseconds, every ratio a float in [0, 1]. Units appear only when a file is written.
Sizes follow PostgreSQL's meaning: kB, MB, GB and TB are powers of 1024, like KiB, MiB, GiB, TiB.
"""

from __future__ import annotations

import math
import re

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB

# The units the JSON Schema's size pattern names, no more: a bare "M" or "G" could mean million or
# giga-, and PostgreSQL itself reads only kB, MB, GB and TB.
SIZE_UNITS = {
    "B": 1, "": 1,
    "kB": KIB, "KB": KIB, "KiB": KIB,
    "MB": MIB, "MiB": MIB,
    "GB": GIB, "GiB": GIB,
    "TB": TIB, "TiB": TIB,
}
DURATION_UNITS_MS = {
    "ms": 1, "s": 1000, "min": 60_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
}
COUNT_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}

_NUMBER = r"(?P<num>\d+(?:\.\d+)?)"
_SIZE_RE = re.compile(_NUMBER + r"\s*(?P<unit>[A-Za-z]*)")
_DURATION_RE = re.compile(_NUMBER + r"\s*(?P<unit>[a-z]*)")
_COUNT_RE = re.compile(_NUMBER + r"\s*(?P<unit>[KMBT]?)")


class UnitError(ValueError):
    """A value that does not parse in the unit its key expects."""


def parse_size(value: object) -> int:
    """'64GiB' -> bytes. A bare integer is bytes."""
    if isinstance(value, bool):
        raise UnitError(f"expected a size such as 8GiB or 512MB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"a size cannot be negative, got {value}")
        return value
    if not isinstance(value, str):
        raise UnitError(f"expected a size such as 8GiB or 512MB, got {value!r}")
    match = _SIZE_RE.fullmatch(value.strip())
    if not match or match["unit"] not in SIZE_UNITS:
        raise UnitError(
            f"expected a size such as 8GiB or 512MB (units: kB, MB, GB, TB, KiB, MiB, GiB, TiB), got {value!r}"
        )
    result = float(match["num"]) * SIZE_UNITS[match["unit"]]
    if result != int(result):
        raise UnitError(f"size {value!r} is not a whole number of bytes")
    return int(result)


def parse_duration(value: object) -> int:
    """'30s' -> milliseconds. Only 0 may go without a unit."""
    if isinstance(value, bool):
        raise UnitError(f"expected a duration such as 30s or 5m, got {value!r}")
    if isinstance(value, int) and value == 0:
        return 0
    if isinstance(value, int):
        raise UnitError(f"a duration needs a unit (ms, s, min/m, h, d): write {value}s or {value}ms")
    if not isinstance(value, str):
        raise UnitError(f"expected a duration such as 30s or 5m, got {value!r}")
    text = value.strip()
    if text == "0":
        return 0
    match = _DURATION_RE.fullmatch(text)
    if not match or match["unit"] not in DURATION_UNITS_MS:
        raise UnitError(f"expected a duration such as 30s or 5m (units: ms, s, min/m, h, d), got {value!r}")
    result = float(match["num"]) * DURATION_UNITS_MS[match["unit"]]
    if result != int(result):
        raise UnitError(f"duration {value!r} is not a whole number of milliseconds")
    return int(result)


def parse_ratio(value: object) -> float:
    """'70%' or 0.7 -> 0.7, within [0, 1]."""
    if isinstance(value, bool):
        raise UnitError(f"expected a ratio such as 0.7 or 70%, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            result = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise UnitError(f"expected a ratio such as 0.7 or 70%, got {value!r}") from None
    elif isinstance(value, (int, float)):
        result = float(value)
    else:
        raise UnitError(f"expected a ratio such as 0.7 or 70%, got {value!r}")
    if not (0.0 <= result <= 1.0) or math.isnan(result):
        raise UnitError(f"a ratio must lie between 0 and 1 (0% and 100%), got {value!r}")
    return result


def parse_percent(value: object) -> int:
    """'70%' or 70 -> 70 (an integer percentage, as Kubernetes wants it)."""
    if isinstance(value, bool):
        raise UnitError(f"expected a percentage such as 70 or 70%, got {value!r}")
    if isinstance(value, str):
        text = value.strip().removesuffix("%")
        try:
            value = int(text)
        except ValueError:
            raise UnitError(f"expected a percentage such as 70 or 70%, got {value!r}") from None
    if not isinstance(value, int) or not 1 <= value <= 100:
        raise UnitError(f"expected a whole percentage between 1 and 100, got {value!r}")
    return value


def parse_count(value: object) -> int:
    """'8B' -> 8_000_000_000 (parameter counts), plain integers pass."""
    if isinstance(value, bool):
        raise UnitError(f"expected a count such as 8B or 70B, got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise UnitError(f"a count must be positive, got {value}")
        return value
    if not isinstance(value, str):
        raise UnitError(f"expected a count such as 8B or 70B, got {value!r}")
    match = _COUNT_RE.fullmatch(value.strip())
    if not match:
        raise UnitError(f"expected a count such as 8B, 1.5B or 70B (suffixes K, M, B, T), got {value!r}")
    result = int(round(float(match["num"]) * COUNT_SUFFIXES[match["unit"]]))
    if result <= 0:
        raise UnitError(f"a count must be positive, got {value!r}")
    return result


def format_size_pg(kb: int) -> str:
    """pgtune's printing: NGB when divisible by 1 GiB, else NMB, else NkB (input in kB)."""
    if kb != 0 and kb % (1024 * 1024) == 0:
        return f"{kb // (1024 * 1024)}GB"
    if kb != 0 and kb % 1024 == 0:
        return f"{kb // 1024}MB"
    return f"{kb}kB"


def format_size(num_bytes: int) -> str:
    """Bytes -> the largest binary unit that divides exactly, written as Redis/PostgreSQL read it."""
    for unit, factor in (("gb", GIB), ("mb", MIB), ("kb", KIB)):
        if num_bytes != 0 and num_bytes % factor == 0:
            return f"{num_bytes // factor}{unit}"
    return str(num_bytes)


def format_size_human(num_bytes: int) -> str:
    """Bytes -> '4GiB', '1.5GiB' for messages and explain output."""
    for unit, factor in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if num_bytes >= factor:
            value = num_bytes / factor
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.2f}{unit}"
    return f"{num_bytes}B"


def format_duration_pg(ms: int) -> str:
    """Milliseconds -> the largest unit that divides exactly, as PostgreSQL's SHOW prints it."""
    if ms == 0:
        return "0"
    for unit, factor in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"


def format_duration(ms: int) -> str:
    """Milliseconds -> Go/Prometheus/Kubernetes style ('5m', '30s', '1h', '150ms')."""
    if ms == 0:
        return "0s"
    for unit, factor in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"


def ms_to_seconds(ms: int) -> int | float:
    """Milliseconds -> seconds, an int when whole."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def seconds_up(ms: int) -> int:
    """Milliseconds -> whole seconds, rounded up (a window or probe period must not shrink)."""
    return -(-ms // 1000)


def seconds_text(ms: int) -> str:
    """Milliseconds -> seconds as a config file writes them: 30, 0.5."""
    value = ms_to_seconds(ms)
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_duration_go(ms: int) -> str:
    """Milliseconds -> a Go duration (Ollama's env parser): 5m, 30s, 1h, 150ms; Go has no 'd'."""
    if ms == 0:
        return "0s"
    for unit, factor in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"


def format_quantity(num_bytes: int) -> str:
    """Bytes -> a Kubernetes quantity in the largest binary unit that divides exactly (4Gi, 512Mi)."""
    for unit, factor in (("Ti", TIB), ("Gi", GIB), ("Mi", MIB), ("Ki", KIB)):
        if num_bytes != 0 and num_bytes % factor == 0:
            return f"{num_bytes // factor}{unit}"
    return str(num_bytes)


def format_decimal_quantity(value: float) -> str:
    """A number -> a Kubernetes quantity: whole numbers plain, fractions in milli-units (0.8 -> 800m)."""
    milli = round(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def format_size_redis(num_bytes: int) -> str:
    """Bytes -> Redis's own size notation (1gb, 512mb: 1024-based), as CONFIG GET compares them."""
    for unit, factor in (("gb", GIB), ("mb", MIB), ("kb", KIB)):
        if num_bytes and num_bytes % factor == 0:
            return f"{num_bytes // factor}{unit}"
    return str(num_bytes)


def format_duration_or_unbounded(ms: int) -> str:
    """A timeout as a message shows it: 0 means no limit."""
    return "0 (no limit)" if ms == 0 else format_duration(ms)


# PostgreSQL's own unit table (guc.c memory_unit_conversion_table / time_unit_conversion_table): unit names
# are case-sensitive, memory units are powers of 1024, and a parameter's base unit may carry a multiplier
# (`8kB` for shared_buffers, `16MB` for old WAL sizes).
PG_MEMORY_UNITS_BYTES = {"B": 1, "kB": KIB, "MB": MIB, "GB": GIB, "TB": TIB}
PG_TIME_UNITS_US = {"us": 1, "ms": 1000, "s": 1_000_000, "min": 60_000_000, "h": 3_600_000_000,
                    "d": 86_400_000_000}
_PG_BASE_UNIT = re.compile(r"(?P<mult>\d*)(?P<unit>[A-Za-z]+)")


def pg_base_unit(unit: str) -> tuple[str, float] | None:
    """A pg_settings unit ('8kB', 'ms', 'min') -> ('memory' or 'time', its size in bytes or microseconds)."""
    match = _PG_BASE_UNIT.fullmatch(unit)
    if not match:
        return None
    mult = int(match["mult"] or 1)
    if match["unit"] in PG_MEMORY_UNITS_BYTES:
        return "memory", float(mult * PG_MEMORY_UNITS_BYTES[match["unit"]])
    if match["unit"] in PG_TIME_UNITS_US:
        return "time", float(mult * PG_TIME_UNITS_US[match["unit"]])
    return None


def pg_in_base_units(number: float, unit: str, base: str) -> float:
    """`number` `unit` (a PostgreSQL unit name) in multiples of the parameter's base unit `base`.

    Raises UnitError when the unit is not one PostgreSQL reads for this kind of parameter."""
    kind = pg_base_unit(base)
    if kind is None:
        raise UnitError(f"this parameter takes no unit (got {unit!r})")
    table = PG_MEMORY_UNITS_BYTES if kind[0] == "memory" else PG_TIME_UNITS_US
    if unit not in table:
        raise UnitError(f"unit {unit!r} is not a PostgreSQL {kind[0]} unit (valid units: {', '.join(table)}; "
                        "they are case-sensitive)")
    return number * table[unit] / kind[1]

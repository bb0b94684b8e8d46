"""Units: sizes are bytes, durations milliseconds, ratios floats in [0, 1]; formatting only when written."""

from __future__ import annotations

import pytest

from generators import units
from generators.units import GIB, KIB, MIB, TIB, UnitError


@pytest.mark.parametrize(("text", "expected"), [
    ("64GiB", 64 * GIB),
    ("64GB", 64 * GIB),          # PostgreSQL's GB is 1024-based, like GiB
    ("512MB", 512 * MIB),
    ("512MiB", 512 * MIB),
    ("1kB", KIB),
    ("1KB", KIB),
    ("8KiB", 8 * KIB),
    ("2TB", 2 * TIB),
    ("1TiB", TIB),
    ("1.5GiB", 1536 * MIB),      # fractions allowed when they land on whole bytes
    ("100B", 100),
    ("100", 100),                # bare number in text: bytes
    ("4 GiB", 4 * GIB),          # a space before the unit is fine
    (" 4GiB ", 4 * GIB),
    (4096, 4096),                # a bare integer is bytes
    (0, 0),
])
def test_parse_size(text: object, expected: int) -> None:
    assert units.parse_size(text) == expected


@pytest.mark.parametrize("bad", [
    "4 GiBs", "4gib", "4G", "4M", "4Q", "GiB", "-1GiB", "1.5", "0.1kB", -1, 1.5, True, None, [4], "",
])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(UnitError):
        units.parse_size(bad)


def test_parse_size_message_names_the_units() -> None:
    with pytest.raises(UnitError, match="units: kB, MB, GB, TB, KiB, MiB, GiB, TiB.*'4 parsecs'"):
        units.parse_size("4 parsecs")


@pytest.mark.parametrize(("text", "expected"), [
    ("150ms", 150),
    ("30s", 30_000),
    ("5m", 300_000),
    ("5min", 300_000),
    ("1h", 3_600_000),
    ("2d", 172_800_000),
    ("1.5s", 1500),
    ("0.5m", 30_000),
    ("0", 0),
    (0, 0),
    ("10 s", 10_000),
])
def test_parse_duration(text: object, expected: int) -> None:
    assert units.parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["30", "5 parsecs", "-5s", "1.5ms", "s", "5M", "5S", 30, 1.5, True, None, ""])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(UnitError):
        units.parse_duration(bad)


def test_bare_number_duration_suggests_units() -> None:
    with pytest.raises(UnitError, match="write 30s or 30ms"):
        units.parse_duration(30)


@pytest.mark.parametrize(("text", "expected"), [
    ("70%", 0.70), ("0.7", 0.70), (0.7, 0.70), ("100%", 1.0), ("0%", 0.0), (1, 1.0), (0, 0.0), ("12.5%", 0.125),
])
def test_parse_ratio(text: object, expected: float) -> None:
    assert units.parse_ratio(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["150%", 1.5, -0.1, "-5%", "seventy", "nan", "inf", True, None, "%"])
def test_parse_ratio_rejects(bad: object) -> None:
    with pytest.raises(UnitError):
        units.parse_ratio(bad)


@pytest.mark.parametrize(("text", "expected"), [("70%", 70), (70, 70), ("1", 1), ("100%", 100)])
def test_parse_percent(text: object, expected: int) -> None:
    assert units.parse_percent(text) == expected


@pytest.mark.parametrize("bad", [0, 101, "0%", "150%", 70.5, "70.5%", True, "x"])
def test_parse_percent_rejects(bad: object) -> None:
    with pytest.raises(UnitError):
        units.parse_percent(bad)


@pytest.mark.parametrize(("text", "expected"), [
    ("8B", 8_000_000_000), ("70B", 70_000_000_000), ("1.5B", 1_500_000_000), ("500M", 500_000_000),
    ("7K", 7000), ("1T", 10**12), (12, 12), ("12", 12),
])
def test_parse_count(text: object, expected: int) -> None:
    assert units.parse_count(text) == expected


@pytest.mark.parametrize("bad", ["8Q", "8b", "B", "0B", 0, -3, True, None, 1.5])
def test_parse_count_rejects(bad: object) -> None:
    with pytest.raises(UnitError):
        units.parse_count(bad)


@pytest.mark.parametrize(("kb", "expected"), [
    (4 * 1024 * 1024, "4GB"),    # divisible by 1048576 kB
    (16 * 1024, "16MB"),         # divisible by 1024 kB, not by 1048576
    (1536 * 1024, "1536MB"),     # 1.5GB is not a whole GB: stays in MB
    (20164, "20164kB"),          # pgtune's worked example work_mem
    (32, "32kB"),
    (0, "0kB"),
])
def test_format_size_pg(kb: int, expected: str) -> None:
    assert units.format_size_pg(kb) == expected


@pytest.mark.parametrize(("num_bytes", "expected"), [
    (6 * GIB, "6gb"), (768 * MIB, "768mb"), (3 * KIB, "3kb"), (1000, "1000"), (0, "0"),
])
def test_format_size(num_bytes: int, expected: str) -> None:
    assert units.format_size(num_bytes) == expected


@pytest.mark.parametrize(("num_bytes", "expected"), [
    (4 * GIB, "4GiB"), (1536 * MIB, "1.50GiB"), (2 * TIB, "2TiB"), (512, "512B"), (KIB, "1KiB"),
])
def test_format_size_human(num_bytes: int, expected: str) -> None:
    assert units.format_size_human(num_bytes) == expected


@pytest.mark.parametrize(("ms", "expected"), [
    (60_000, "1min"), (30_000, "30s"), (200, "200ms"), (3_600_000, "1h"), (86_400_000, "1d"), (90_000, "90s"),
    (0, "0"),
])
def test_format_duration_pg(ms: int, expected: str) -> None:
    # The forms PostgreSQL's SHOW prints.
    assert units.format_duration_pg(ms) == expected


@pytest.mark.parametrize(("ms", "expected"), [
    (300_000, "5m"), (30_000, "30s"), (150, "150ms"), (3_600_000, "1h"), (0, "0s"), (90_000, "90s"),
])
def test_format_duration(ms: int, expected: str) -> None:
    assert units.format_duration(ms) == expected


@pytest.mark.parametrize(("ms", "expected"), [(35_000, 35), (1500, 1.5), (0, 0)])
def test_ms_to_seconds(ms: int, expected: float) -> None:
    result = units.ms_to_seconds(ms)
    assert result == expected
    assert isinstance(result, int) == (ms % 1000 == 0)


@pytest.mark.parametrize("text", ["64GiB", "512MB", "3kB", "1TiB", "1000B"])
def test_size_round_trip(text: str) -> None:
    # Formatting a parsed size and parsing it back (as Redis's lower-case units read) keeps the bytes.
    num = units.parse_size(text)
    formatted = units.format_size(num)
    assert units.parse_size(formatted.replace("gb", "GB").replace("mb", "MB").replace("kb", "kB")) == num


@pytest.mark.parametrize("text", ["150ms", "30s", "5min", "1h", "2d", "90s"])
def test_duration_round_trip(text: str) -> None:
    assert units.parse_duration(units.format_duration_pg(units.parse_duration(text))) == units.parse_duration(text)

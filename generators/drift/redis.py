"""Redis drift: the rendered redis.conf settings against `CONFIG GET`, read with redis-py.

Only the managed keys are asked for (never `requirepass`, so no secret is read). Memory values are
compared in bytes with Redis's own suffixes (1k = 1000, 1kb = 1024, 1m = 10^6, 1mb = 1024^2, ...), so
`maxmemory 768mb` equals `805306368`. `port` is deployment-local (a test server, a port-forward) and not
compared; nor is `user`, the app's ACL user, which is not a CONFIG parameter (it is passed on the command
line with its password; tests/test_workloads.py judges its rules with ACL DRYRUN).
"""

from __future__ import annotations

import re

from .. import units
from ..bundle import Bundle
from .report import CHANGED, MISSING, Difference, TargetReport, failed, redact_url

TARGET = "redis"
TIMEOUT_S = 3
NOT_COMPARED = frozenset({"port", "bind", "dir", "logfile", "pidfile", "daemonize", "requirepass", "user"})
MEMORY_SUFFIXES = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
_MEMORY = re.compile(r"^(\d+)\s*(k|kb|m|mb|g|gb|b)?$", re.IGNORECASE)


def memory_bytes(text: str) -> int | None:
    """Redis's memtoull: '768mb' -> 805306368; None when the text is not a memory value."""
    match = _MEMORY.match(text.strip())
    if not match:
        return None
    return int(match[1]) * MEMORY_SUFFIXES[(match[2] or "").lower()]


def unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def same(expected: str, actual: str) -> bool:
    expected, actual = unquote(expected), actual.strip()
    if expected.lower() == actual.lower():
        return True
    e_bytes, a_bytes = memory_bytes(expected), memory_bytes(actual)
    if e_bytes is not None and a_bytes is not None and not expected.isdigit():
        return e_bytes == a_bytes
    return " ".join(expected.split()) == " ".join(actual.split())


def shown(expected: str, actual: str) -> str:
    """The live value in the rendered file's units when the rendered value has a memory suffix."""
    if memory_bytes(unquote(expected)) is not None and not unquote(expected).isdigit() and actual.isdigit():
        return units.format_size_redis(int(actual))
    return actual


def compare(bundle: Bundle, config: dict[str, str]) -> tuple[list[Difference], int]:
    diffs: list[Difference] = []
    settings = {k: s for k, s in bundle.target_settings(TARGET).items() if k not in NOT_COMPARED}
    for key, setting in settings.items():
        if key not in config:
            diffs.append(Difference(key, MISSING, unquote(setting.text), None, note="this Redis has no such setting"))
        elif not same(setting.text, config[key]):
            diffs.append(Difference(key, CHANGED, unquote(setting.text), shown(setting.text, config[key])))
    return diffs, len(settings)


def redact(url: str) -> str:
    return redact_url(url)


def read(url: str, keys: list[str]) -> dict[str, str]:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S,
                                  decode_responses=True)
    try:
        try:
            found = client.config_get(*keys)  # one round trip (Redis >= 7 takes several patterns)
        except redis.ResponseError:
            found = {}
            for key in keys:  # an older Redis: one key at a time
                found.update(client.config_get(key))
    finally:
        client.close()
    return {str(k): str(v) for k, v in found.items()}


def check(bundle: Bundle, url: str) -> TargetReport:
    endpoint = redact(url)
    keys = [k for k in bundle.target_settings(TARGET) if k not in NOT_COMPARED]
    if not keys:
        return TargetReport(TARGET, endpoint, skipped=True, notes=["the profile renders no Redis settings"])
    try:
        config = read(url, keys)
    except Exception as exc:  # noqa: BLE001 - reported; the other targets go on
        return failed(TARGET, endpoint, f"{type(exc).__name__}: {str(exc).strip()}")
    diffs, checked = compare(bundle, config)
    return TargetReport(TARGET, endpoint, checked=checked, differences=diffs)

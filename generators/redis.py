"""Redis memory, eviction and persistence: redis.conf with no `requirepass` value in it."""

from __future__ import annotations

from typing import Any

from . import formats, paths, units
from .bundle import Part, Setting
from .profile import Profile
from .templates import render_template

TARGET = "redis"


def _setting(key: str, value: Any, text: str, rule: str, **inputs: Any) -> Setting:
    return Setting(TARGET, key, value, text, rule, inputs)


def maxmemory_bytes(profile: Profile) -> int:
    """A size as given, or a share of hardware.redis.memory rounded down to whole MiB."""
    value = profile.redis.maxmemory
    if isinstance(value, float):
        return int(profile.hardware.redis.memory * value) // units.MIB * units.MIB
    return int(value)


def maxmemory(profile: Profile) -> Setting:
    value = profile.redis.maxmemory
    size = maxmemory_bytes(profile)
    if isinstance(value, float):
        rule = f"{value:.0%} of hardware.redis.memory, rounded down to MiB"
        inputs = {"share": value, "memory": units.format_size_human(profile.hardware.redis.memory)}
    else:
        rule, inputs = "given by redis.maxmemory", {"maxmemory": units.format_size_human(size)}
    return _setting("maxmemory", size, units.format_size(size), rule, **inputs)


def persistence(profile: Profile) -> list[Setting]:
    mode = profile.redis.persistence
    save = "3600 1 300 100 60 10000" if mode == "rdb" else ""
    return [
        _setting("appendonly", mode == "aof", "yes" if mode == "aof" else "no", f"persistence: {mode}",
                 persistence=mode),
        _setting("appendfsync", "everysec", "everysec", "fsync once a second: at most 1 s of writes lost",
                 persistence=mode),
        _setting("save", save, f'"{save}"', "RDB snapshots only for persistence: rdb" if mode != "rdb"
                 else "Redis's snapshot schedule (1 h/1 change, 5 min/100, 1 min/10000)", persistence=mode),
    ]


def settings(profile: Profile) -> list[Setting]:
    r = profile.redis
    timeout_s = r.timeout // 1000
    keepalive_s = r.tcp_keepalive // 1000
    return [
        _setting("port", r.port, str(r.port), "given by redis.port"),
        _setting("protected-mode", True, "yes", "refuse outside clients unless a password is set (from the Secret)"),
        maxmemory(profile),
        _setting("maxmemory-policy", r.maxmemory_policy, r.maxmemory_policy, "given by redis.maxmemory_policy",
                 role=r.role),
        _setting("timeout", timeout_s, str(timeout_s), "given by redis.timeout, in seconds",
                 timeout=units.format_duration(r.timeout)),
        _setting("tcp-keepalive", keepalive_s, str(keepalive_s), "given by redis.tcp_keepalive, in seconds",
                 tcp_keepalive=units.format_duration(r.tcp_keepalive)),
        *persistence(profile),
    ]


def conf_line(setting: Setting) -> str:
    """`key value` as redis.conf reads it (sdssplitargs); a text already in quotes is one argument."""
    text = setting.text
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return formats.redis_line(setting.key, text)


def render(profile: Profile) -> Part:
    items = settings(profile)
    conf = render_template("redis.conf.j2", profile=profile, settings=items, line=conf_line,
                           comment=formats.comment, secret=profile.secrets.redis_password)
    return Part(settings=items, files={paths.REDIS_CONF: conf})

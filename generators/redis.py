"""Redis memory, eviction, persistence and the app's ACL user: redis.conf with no password in it.

Versions are inputs (`redis.version`, generators/serverversions.py); `redis.settings` overrides, validated at
load against the version, win over the rules here. The app's ACL user is passed on the command line
(`--user ... >$(REDIS_APP_PASSWORD)`, expanded by Kubernetes from the Secret): Redis refuses a second
`user` line for the same name, and the password must never be in the file.
"""

from __future__ import annotations

from typing import Any

from . import formats, paths, serverversions, units
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


def eviction_policy(profile: Profile) -> Setting:
    r = profile.redis
    if r.maxmemory_policy is not None:
        return _setting("maxmemory-policy", r.maxmemory_policy, r.maxmemory_policy, "given by redis.maxmemory_policy",
                        role=r.role)
    if r.role == "queue":
        policy, why = "noeviction", "a queue never drops a job: at maxmemory writes fail instead"
    elif profile.llm is not None:
        policy, why = "allkeys-lfu", ("the cache holds LLM answers: a few prompts are asked over and over, so "
                                      "keeping the most frequently used keys (LFU) beats the most recent (LRU)")
    else:
        policy, why = "allkeys-lru", "a cache may drop its least recently used keys instead of refusing writes"
    return _setting("maxmemory-policy", policy, policy, why, role=r.role)


def persistence(profile: Profile) -> list[Setting]:
    r = profile.redis
    mode = r.persistence
    save = "3600 1 300 100 60 10000" if mode == "rdb" else ""
    if r.appendfsync is not None:
        fsync, why = r.appendfsync, "given by redis.appendfsync"
    elif r.role == "queue":
        fsync, why = "always", ("a queue must never lose a job: every write is on disk before Redis acknowledges "
                                "it (one fsync per write; a queue's write rate is jobs, not cache traffic)")
    else:
        fsync, why = "everysec", "fsync once a second: at most 1 s of writes lost"
    return [
        _setting("appendonly", mode == "aof", "yes" if mode == "aof" else "no", f"persistence: {mode}",
                 persistence=mode),
        _setting("appendfsync", fsync, fsync, why, persistence=mode, role=r.role),
        _setting("save", save, f'"{save}"', "RDB snapshots only for persistence: rdb" if mode != "rdb"
                 else "Redis's snapshot schedule (1 h/1 change, 5 min/100, 1 min/10000)", persistence=mode),
    ]


LAZYFREE = ("lazyfree-lazy-eviction", "lazyfree-lazy-expire", "lazyfree-lazy-server-del", "lazyfree-lazy-user-del",
            "lazyfree-lazy-user-flush", "replica-lazy-flush")


def lazyfree(profile: Profile) -> list[Setting]:
    """A cache evicts and expires all the time; freeing a large value in the event loop stalls every client."""
    if profile.redis.role != "cache":
        return []
    return [_setting(key, True, "yes", "a cache evicts and expires constantly: large values are freed in a "
                     "background thread instead of blocking every client in the event loop", role="cache")
            for key in LAZYFREE if serverversions.redis_has(key, profile.redis.version)]


# Commands the app's ACL user may not run: they wipe data (FLUSHALL, FLUSHDB, SWAPDB), reconfigure or stop the
# server (CONFIG, DEBUG, SHUTDOWN, MODULE, ACL, REPLICAOF, FAILOVER), block it (KEYS, MONITOR, SAVE) or copy
# its data out (SYNC, PSYNC, MIGRATE). Admins and the exporter use the default user (requirepass).
DENIED_COMMANDS = ("flushall", "flushdb", "swapdb", "config", "debug", "shutdown", "module", "acl", "replicaof",
                   "slaveof", "failover", "keys", "monitor", "save", "bgsave", "bgrewriteaof", "sync", "psync",
                   "migrate", "restore", "cluster")


def acl_rules(profile: Profile) -> list[str]:
    """The app user's ACL rules after its name, without the password (added at start from the Secret)."""
    return ["on", "~*", "&*", "+@all", *[f"-{command}" for command in DENIED_COMMANDS]]


def acl_user(profile: Profile) -> Setting:
    user = profile.redis.acl_user
    rules = " ".join(acl_rules(profile))
    secret = profile.secrets.redis_app_password
    return _setting("user", user, f"{user} {rules}", f"the app's ACL user: every key and command except the "
                    f"dangerous ones; its password from the Secret '{secret.secret}' (key '{secret.key}') is added "
                    "on the command line", user=user)


def settings(profile: Profile) -> list[Setting]:
    r = profile.redis
    timeout_s = r.timeout // 1000
    keepalive_s = r.tcp_keepalive // 1000
    items = [
        _setting("port", r.port, str(r.port), "given by redis.port"),
        _setting("protected-mode", True, "yes", "refuse outside clients unless a password is set (from the Secret)"),
        maxmemory(profile),
        eviction_policy(profile),
        _setting("maxclients", 10_000, "10000", "Redis's default, stated: the app's pools (app.redis_client) are "
                 "checked against it"),
        _setting("timeout", timeout_s, str(timeout_s), "given by redis.timeout, in seconds",
                 timeout=units.format_duration(r.timeout)),
        _setting("tcp-keepalive", keepalive_s, str(keepalive_s), "given by redis.tcp_keepalive, in seconds",
                 tcp_keepalive=units.format_duration(r.tcp_keepalive)),
        *persistence(profile),
        *lazyfree(profile),
    ]
    out = {s.key: s for s in items}
    for name, raw in r.settings.items():
        value, text = serverversions.parse(serverversions.REDIS, name, raw)
        rule = f"given by redis.settings.{name}" + (f" (overrides: {out[name].rule})" if name in out else "")
        out[name] = _setting(name, value, text, rule)
    return [*out.values(), acl_user(profile)]


# Settings that are passed on the command line, not written in redis.conf.
COMMAND_LINE = frozenset({"user"})


def conf_line(setting: Setting) -> str:
    """`key value` as redis.conf reads it (sdssplitargs); a text already in quotes is one argument."""
    text = setting.text
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return formats.redis_line(setting.key, text)


def render(profile: Profile) -> Part:
    items = settings(profile)
    conf = render_template("redis.conf.j2", profile=profile, settings=items, command_line=COMMAND_LINE,
                           line=conf_line, comment=formats.comment, secret=profile.secrets.redis_password)
    return Part(settings=items, files={paths.REDIS_CONF: conf},
                derived={"image": serverversions.REDIS_RELEASES[profile.redis.version].image,
                         "acl_user": profile.redis.acl_user, "acl_rules": acl_rules(profile)})

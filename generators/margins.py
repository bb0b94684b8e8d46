"""The numbers behind each capacity and timeout check: what is used, what the limit is, the headroom.

`checks.py` decides pass or fail; this module exposes the same two sides as data, so `perfstack diff`
can show a margin before and after a change ("now uses 90 % of PgBouncer's max_client_conn") and
`explain` can say which margins a setting feeds. Each Margin is computed with the same helpers as its
check (tests/test_review.py holds them to agreement: a check fails exactly when its margin is exceeded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import units
from .bundle import Parts
from .profile import Profile


@dataclass(frozen=True)
class Margin:
    check: str  # the check in checks.py that refuses (or warns about) the profile when the margin is exceeded
    name: str  # what is measured, e.g. "server connections"
    used: float
    limit: float  # math.inf: no limit (a timeout of 0)
    unit: str  # connections | bytes | ms | tokens
    keys: tuple[str, ...]  # profile keys on either side
    strict: bool = False  # used must stay below limit (not reach it)

    @property
    def id(self) -> str:
        return f"{self.check}:{self.name}"

    @property
    def headroom(self) -> float | None:
        """(limit - used) / limit: 1 is all room left, 0 is at the limit, negative is over. None: no limit."""
        if math.isinf(self.limit):
            return None
        if self.limit == 0:
            return 0.0 if self.used == 0 else -math.inf
        return (self.limit - self.used) / self.limit

    @property
    def exceeded(self) -> bool:
        return self.used >= self.limit if self.strict else self.used > self.limit

    def text(self, value: float) -> str:
        return format_amount(value, self.unit)

    def summary(self) -> str:
        room = self.headroom
        share = "" if room is None else f" ({(1 - room) * 100:.0f} % used, headroom {room * 100:.0f} %)"
        used = self.text(self.used) if self.unit in ("bytes", "ms") else f"{self.used:g}"
        return f"{self.name}: {used} of {self.text(self.limit)}{share}"

    def to_dict(self) -> dict[str, Any]:
        room = self.headroom
        return {"check": self.check, "name": self.name, "unit": self.unit, "keys": list(self.keys),
                "used": _number(self.used), "limit": _number(self.limit), "strict": self.strict,
                "headroom": None if room is None or math.isinf(room) else round(room, 4),
                "text": self.summary()}


def _number(value: float) -> float | int | None:
    if math.isinf(value):
        return None
    return int(value) if float(value).is_integer() else value


def format_amount(value: float | None, unit: str) -> str:
    if value is None or math.isinf(value):
        return "no limit"
    if unit == "bytes":
        return units.format_size_human(int(value))
    if unit == "ms":
        return units.format_duration(int(value)) if value else "0s"
    return f"{value:g} {unit}"


def _timeout(ms: int) -> float:
    return math.inf if ms == 0 else ms


def margins(profile: Profile, parts: Parts) -> list[Margin]:
    """Every capacity and timeout margin, from the rendered values the checks read (checks.CHECKS' order)."""
    from .checks import HPA_MAX_STABILIZATION_MS, REDIS_MAXMEMORY_SHARE, TIMEOUT_ORDER

    found: list[Margin] = []
    pb = profile.pgbouncer
    found.append(Margin("pgbouncer_fits_postgres", "PostgreSQL server connections",
                        parts.pgbouncer.derived["server_connections"] + parts.pgbouncer.derived["surge_server_connections"],
                        parts.postgres.value("max_connections") - parts.postgres.value("superuser_reserved_connections"),
                        "connections", ("pgbouncer.default_pool_size", "pgbouncer.reserve_pool_size",
                                        "pgbouncer.replicas", "pgbouncer.users", "postgres.max_connections")))
    found.append(Margin("app_fits_pgbouncer", "PgBouncer client connections",
                        (parts.autoscaling.value("api.max_replicas") + profile.api_surge())
                        * (parts.app.value("DB_POOL_SIZE") + parts.app.value("DB_MAX_OVERFLOW")),
                        parts.pgbouncer.value("max_client_conn") * pb.replicas, "connections",
                        ("app.db_pool.size", "app.db_pool.max_overflow", "autoscaling.api.max_replicas",
                         "app.max_surge", "pgbouncer.max_client_conn", "pgbouncer.replicas")))
    found.append(_postgres_memory(profile, parts))
    num, den = REDIS_MAXMEMORY_SHARE[profile.redis.persistence]
    found.append(Margin("redis_fits_memory", "Redis maxmemory", parts.redis.value("maxmemory"),
                        profile.hardware.redis.memory * num // den, "bytes",
                        ("redis.maxmemory", "hardware.redis.memory", "redis.persistence")))
    if profile.llm is not None and profile.hardware.gpu is not None:
        if "gpu_budget" in parts.llm.derived:
            b = parts.llm.derived["gpu_budget"]
            found.append(Margin("llm_fits_gpu", "KV-cache per GPU", b.max_num_seqs * b.bytes_per_sequence,
                                b.kv_cache_bytes, "bytes",
                                ("llm.max_num_seqs", "llm.max_model_len", "llm.gpu_memory_utilization",
                                 "hardware.gpu.memory")))
        probe = parts.llm.derived["startup_probe"]
        load_time = parts.llm.derived["load_time"]
        found.append(Margin("llm_startup_covers_load_time", "LLM startup probe", load_time,
                            probe["failureThreshold"] * probe["periodSeconds"] * 1000, "ms",
                            ("llm.load_time", "llm.startup_timeout")))
        if profile.llm_autoscaled():
            found.append(Margin("llm_scale_down_covers_load_time", "LLM scale-down stabilization", load_time,
                                profile.autoscaling.llm.scale_down_stabilization, "ms",
                                ("llm.load_time", "autoscaling.llm.scale_down_stabilization")))
    for name in ("api", "llm"):
        found.append(Margin("hpa_stabilization_within_limit", f"{name} HPA stabilization window",
                            getattr(profile.autoscaling, name).scale_down_stabilization, HPA_MAX_STABILIZATION_MS,
                            "ms", (f"autoscaling.{name}.scale_down_stabilization",)))
    for order in TIMEOUT_ORDER:  # the same table, read by the same functions, as checks.timeouts_nest
        outer, inner = order.outer.read(profile, parts), order.inner.read(profile, parts)
        if outer is None or inner is None or (order.strict and outer == 0 and inner == 0):
            continue
        o = _timeout(outer) if order.outer.zero_is_unbounded else outer
        i = _timeout(inner) if order.inner.zero_is_unbounded else inner
        found.append(Margin(order.check, f"{order.outer.key} over {order.inner.key}", i, o, "ms",
                            (order.inner.key, order.outer.key), strict=order.strict))
    return found


def _postgres_memory(profile: Profile, parts: Parts) -> Margin:
    from .checks import PG_AUTOVACUUM_DEFAULT_WORKERS

    pg = parts.postgres
    workers_setting = pg.get("autovacuum_max_workers")
    workers = workers_setting.value if workers_setting else PG_AUTOVACUUM_DEFAULT_WORKERS
    av_setting = pg.get("autovacuum_work_mem")
    maint = pg.value("maintenance_work_mem")
    av = av_setting.value if av_setting and av_setting.value != -1 else maint
    used_kb = pg.value("shared_buffers") + pg.value("work_mem") * pg.value("max_connections") + maint + workers * av
    return Margin("postgres_fits_memory", "PostgreSQL memory", used_kb * 1024,
                  profile.hardware.postgres.memory // 1024 * 1024, "bytes",
                  ("hardware.postgres.memory", "postgres.max_connections", "postgres.settings"))

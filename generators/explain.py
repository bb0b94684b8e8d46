"""Where and why for `perfstack explain`: the profile lines behind a setting and the checks it feeds.

A setting's profile keys are its own name when that is a profile key (`pgbouncer.default_pool_size`) and
every profile key its rule names (`2 x llm.load_time`). Each is located in the profile files
(`profiles/prod.yaml:14`) or reported as the rule default (the key is not written in any file). The
checks a setting feeds are the margins (`generators/margins.py`) that list one of those keys.
"""

from __future__ import annotations

import re
from typing import Any

from .bundle import Setting
from .loader import Source
from .margins import Margin
from .profile import Profile

SECTIONS = ("hardware", "postgres", "pgbouncer", "redis", "llm", "app", "autoscaling", "slo", "alerts",
            "kubernetes", "secrets", "review", "pricing")
_KEY = re.compile(rf"\b(?:{'|'.join(SECTIONS)})(?:\.[a-z_][a-z0-9_]*)+")


def _is_profile_key(key: str) -> bool:
    model: Any = Profile
    for part in key.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        model = next((a for a in (getattr(annotation, "__args__", None) or (annotation,))
                      if hasattr(a, "model_fields")), annotation)
    return True


# pgtune's inputs by the profile key they come from (the postgres rules name their inputs pgtune's way).
INPUT_KEYS = {"memory_kb": "hardware.postgres.memory", "cpus": "hardware.postgres.cpus",
              "storage": "hardware.postgres.storage", "os": "hardware.postgres.os",
              "db_size": "hardware.postgres.data_size", "workload": "postgres.workload",
              "max_connections": "postgres.max_connections", "version": "postgres.version"}


def profile_keys(setting: Setting) -> list[str]:
    from_inputs = [INPUT_KEYS[k] for k in setting.inputs if setting.target == "postgres" and k in INPUT_KEYS]
    from_inputs += [f"{setting.target}.{k}" for k in setting.inputs]
    candidates = [setting.name, *_KEY.findall(setting.rule), *from_inputs]
    return list(dict.fromkeys(k for k in candidates if _is_profile_key(k)))


def where(key: str, source: Source | None) -> str:
    """file:line that set key, or 'rule default' when no profile file writes it."""
    loc = source.locations.get(tuple(key.split("."))) if source else None
    return f"{loc.file}:{loc.line}" if loc else "rule default"


def provenance(setting: Setting, source: Source | None, margins: list[Margin]) -> dict[str, Any]:
    keys = profile_keys(setting)
    feeds = [m for m in margins if set(m.keys) & set(keys)]
    return {"set_by": [{"key": k, "where": where(k, source)} for k in keys],
            "feeds": [{"check": m.check, "margin": m.summary()} for m in feeds]}

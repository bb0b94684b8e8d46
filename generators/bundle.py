"""The Bundle: everything one profile renders, as data. Files, Pulumi and drift all consume it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from .profile import Profile


@dataclass(frozen=True)
class Setting:
    """One rendered setting: what `explain` shows and the config comments say."""

    target: str
    key: str
    value: Any  # in perfstack's internal unit (kB for PostgreSQL sizes, bytes, ms) or the literal value
    text: str  # as written in the target's file
    rule: str
    inputs: dict[str, Any] = field(default_factory=dict)
    # "server": the target's config file; "role": PostgreSQL settings given per application role
    # (postgres/roles.sql, ALTER ROLE ... SET), which the server-wide files and pg_settings do not carry.
    scope: str = "server"

    @property
    def name(self) -> str:
        return f"{self.target}.{self.key}"

    def explain(self) -> dict[str, Any]:
        return {"target": self.target, "key": self.key, "value": self.text, "rule": self.rule, "inputs": self.inputs}


@dataclass(frozen=True)
class Finding:
    """The result of a cross-component check or a rule's warning."""

    check: str
    message: str
    severity: str = "warning"  # warning | error
    keys: tuple[str, ...] = ()  # the profile keys the finding is about (the first written one is named)
    context: tuple[str, ...] = ()  # keys that only locate it when none of `keys` is written

    def __str__(self) -> str:
        return f"{self.severity}: {self.check}: {self.message}"


@dataclass
class Part:
    """What one target module renders."""

    settings: list[Setting] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    objects: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    # Figures the target derived from its settings that other stages read (never written to a file):
    # PgBouncer's server connections, the LLM's GPU budget and startup probe.
    derived: dict[str, Any] = field(default_factory=dict)

    def setting(self, key: str) -> Setting:
        """The rendered setting `key` (KeyError naming the key when this part renders none)."""
        for item in self.settings:
            if item.key == key:
                return item
        raise KeyError(f"no rendered setting {key!r}")

    def get(self, key: str) -> Setting | None:
        return next((item for item in self.settings if item.key == key), None)

    def value(self, key: str) -> Any:
        """The resolved value of `key` in perfstack's internal unit (kB, bytes, ms), whatever set it."""
        return self.setting(key).value


@dataclass(frozen=True)
class Parts:
    """The config stage's result: each component's rendered settings and files, by name.

    Every later stage (checks, lint, alerts, dashboards, Kubernetes objects) reads these, never the
    targets' rule functions. Adding a component adds one field here and one line in render.config_parts.
    """

    postgres: Part
    pgbouncer: Part
    redis: Part
    llm: Part
    app: Part
    autoscaling: Part
    workers: Part
    vector: Part

    def all(self) -> list[Part]:
        return [getattr(self, f.name) for f in fields(self)]


@dataclass
class Bundle:
    profile: Profile
    settings: list[Setting]
    files: dict[str, str]  # relative path -> text; includes explain.json and kubernetes/*.yaml
    objects: list[dict[str, Any]]
    warnings: list[Finding]

    def setting(self, name: str) -> Setting | None:
        for item in self.settings:
            if item.name == name:
                return item
        return None

    def target_settings(self, target: str) -> dict[str, Setting]:
        return {s.key: s for s in self.settings if s.target == target}

    def digest(self) -> str:
        """A digest of every rendered file: changes whenever any rendered byte does."""
        sha = hashlib.sha256()
        for path in sorted(self.files):
            sha.update(path.encode() + b"\0" + self.files[path].encode() + b"\0")
        return sha.hexdigest()


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

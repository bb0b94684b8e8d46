"""The Bundle: everything one profile renders, as data. Files, Pulumi and drift all consume it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
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
    keys: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.severity}: {self.check}: {self.message}"


@dataclass
class Part:
    """What one target module renders."""

    settings: list[Setting] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    objects: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)


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

"""What an advise run found: findings with their evidence, proposed profile edits, and reviewed SQL.

A Finding is one observation about a live system (a missing index, checkpoints forced by WAL volume, a
cache under its SLO). When it maps to a profile key it carries Edits; the edits are proposed only after
the cross-component checks have accepted the edited profile (see `edits.validate`). SQL (index changes,
a VACUUM for a backlog) is never run by perfstack: it is written to a file for a person to review.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Finding severities: "warning" findings are what advise exists for (exit 1); "info" lines are context.
WARNING, INFO = "warning", "info"


@dataclass(frozen=True)
class Edit:
    """Set one profile key (a dotted path in the environment's own file) to a value as the profile writes it."""

    key: str  # e.g. "postgres.settings.max_wal_size"
    value: Any  # e.g. "8GB", 40, "32MiB"
    current: Any = None  # the value the profile gives today (after extends), for the report
    reason: str = ""  # one line of evidence; --write puts it in a comment beside the key

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "current": self.current, "reason": self.reason}


@dataclass(frozen=True)
class IndexAdvice:
    """One CREATE INDEX CONCURRENTLY proven with hypothetical indexes, or one DROP INDEX CONCURRENTLY."""

    action: str  # "create" | "drop"
    table: str  # schema-qualified
    sql: str
    size_bytes: int
    statements: tuple[str, ...] = ()  # the statements it helps (create)
    cost_before: float | None = None  # summed over the statements it helps
    cost_after: float | None = None
    index: str | None = None  # the index's name (drop), or its definition (create)
    why: str = ""

    @property
    def reduction(self) -> float | None:
        if self.cost_before and self.cost_after is not None:
            return 1 - self.cost_after / self.cost_before
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "table": self.table, "sql": self.sql, "size_bytes": self.size_bytes,
                "statements": list(self.statements), "cost_before": self.cost_before,
                "cost_after": self.cost_after, "index": self.index, "why": self.why,
                "cost_reduction": None if self.reduction is None else round(self.reduction, 4)}


@dataclass
class Finding:
    target: str  # postgres | redis | prometheus
    kind: str  # e.g. missing_index, duplicate_index, unused_index, dead_tuples, checkpoints, work_mem, ...
    subject: str  # what it is about: a table, an index, a statement, a cache
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: str = WARNING
    edits: list[Edit] = field(default_factory=list)  # the profile change that answers it, if any
    companions: list[Edit] = field(default_factory=list)  # edits the checks may need alongside
    sql: list[str] = field(default_factory=list)  # statements for review (never run)
    index: IndexAdvice | None = None
    proposal: str = "none"  # none | proposed | proposed-with-companions | refused
    refused_because: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "subject": self.subject, "message": self.message,
                "severity": self.severity, "evidence": self.evidence,
                "edits": [e.to_dict() for e in self.edits], "companions": [e.to_dict() for e in self.companions],
                "proposal": self.proposal, "refused_because": self.refused_because, "sql": self.sql,
                "index": self.index.to_dict() if self.index else None}


@dataclass
class TargetResult:
    target: str
    endpoint: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "endpoint": self.endpoint, "error": self.error, "notes": self.notes,
                "findings": [f.to_dict() for f in self.findings]}


@dataclass
class Advice:
    environment: str
    profile_file: str
    targets: list[TargetResult]
    edits: list[Edit] = field(default_factory=list)  # every accepted edit, merged (one per key)
    checked_warnings: list[str] = field(default_factory=list)  # the checks' warnings on the edited profile

    @property
    def findings(self) -> list[Finding]:
        return [f for t in self.targets for f in t.findings]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def sql(self) -> list[str]:
        return [s for f in self.findings for s in f.sql]

    @property
    def exit_code(self) -> int:
        if any(t.error for t in self.targets):
            return 2
        return 1 if self.warnings else 0

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "perfstack.advise/v1", "environment": self.environment, "profile": self.profile_file,
                "exit_code": self.exit_code, "targets": [t.to_dict() for t in self.targets],
                "edits": [e.to_dict() for e in self.edits], "checked_warnings": self.checked_warnings,
                "sql": self.sql}

"""render(profile) -> Bundle: every target's data, plus the Kubernetes objects and explain.json."""

from __future__ import annotations

import importlib
from typing import Any

from . import checks
from .bundle import Bundle, Finding, Part, dump_json
from .errors import CheckError, Problem
from .k8s import dump_yaml, object_filename
from .loader import Source
from .profile import Profile

# One module per target; each exposes render(profile) -> Part. Order is the order of explain.json.
TARGETS = ("postgres", "pgbouncer", "redis", "llm", "app", "autoscaling", "alerts", "dashboards",
           "workloads",
           "workers", "vector")


def check(profile: Profile, source: Source | None = None) -> list[Finding]:
    """Run the cross-component checks; raise CheckError (located in the profile) on any error."""
    findings = checks.run(profile)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise CheckError([_locate(f, source) for f in errors])
    return findings


def _locate(finding: Finding, source: Source | None) -> Problem:
    key = finding.keys[0] if finding.keys else ""
    if source and source.files:
        # Point at the key the profile itself wrote, when it wrote one of them (not at a parent's line).
        own = [k for k in finding.keys if (loc := source.locations.get(tuple(k.split(".")))) and loc.file == source.files[-1]]
        key = own[0] if own else key
    where = source.locate(tuple(key.split("."))) if source and key else None
    file = where.file if where else (source.files[-1] if source and source.files else "<profile>")
    return Problem(message=f"{finding.check}: {finding.message}", file=file,
                   line=where.line if where else None, column=where.column if where else None, key=key)


def render(profile: Profile, source: Source | None = None) -> Bundle:
    warnings = check(profile, source)
    parts: list[Part] = [importlib.import_module(f"generators.{name}").render(profile) for name in TARGETS]
    settings = [s for part in parts for s in part.settings]
    files: dict[str, str] = {}
    objects: list[dict[str, Any]] = []
    for part in parts:
        warnings.extend(part.warnings)
        files.update(part.files)
        objects.extend(part.objects)
    for obj in objects:
        files[f"kubernetes/{object_filename(obj)}"] = dump_yaml(obj)
    files["explain.json"] = dump_json({
        "environment": profile.environment,
        "settings": [s.explain() for s in settings],
        "warnings": [{"check": w.check, "message": w.message, "severity": w.severity} for w in warnings],
    })
    return Bundle(profile=profile, settings=settings, files=dict(sorted(files.items())), objects=objects,
                  warnings=warnings)

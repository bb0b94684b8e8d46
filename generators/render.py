"""render(profile) -> Bundle, as the stage graph it is.

    resolved profile (loader: extends; infra.stack: stack overrides; postgres.settings overrides win in
      │               the postgres target) ── validated once at load (validation.py)
      ▼
    config_parts ── postgres, pgbouncer, redis, llm, app, autoscaling: each target's settings and files
      │
      ▼
    gate ─────────── cross-component checks (checks.py) and the production lint (lint.py), both reading the
      │              rendered values; any error refuses the profile here, before anything is written
      ▼
    alerts ───────── rule groups whose thresholds read the parts
      ▼
    dashboards ───── threshold lines read the alerts
      ▼
    objects ──────── every Kubernetes object, built from the parts, the alerts and the dashboards
      ▼
    files ────────── config files, kubernetes/<kind>-<name>.yaml, explain.json

Each stage is a named function of the stages before it; every target and rule is registered by reference.
render, render --check, validate, explain, diff, drift, bench and the Pulumi program all call render().
"""

from __future__ import annotations

from typing import Any

from . import (
    alerts,
    app,
    autoscaling,
    checks,
    dashboards,
    lint,
    llm,
    objects,
    paths,
    pgbouncer,
    postgres,
    redis,
    vector,
    workers,
)
from .alerts import Rules
from .bundle import Bundle, Finding, Part, Parts, dump_json
from .errors import CheckError, Problem
from .k8s import dump_yaml, object_filename
from .loader import Source
from .profile import Profile


def config_parts(profile: Profile) -> Parts:
    """Stage 1: every config target renders its settings and files from the profile alone."""
    return Parts(
        postgres=postgres.render(profile),
        pgbouncer=pgbouncer.render(profile),
        redis=redis.render(profile),
        llm=llm.render(profile),
        app=app.render(profile),
        autoscaling=autoscaling.render(profile),
        workers=workers.render(profile),
        vector=vector.render(profile),
    )


def gate(profile: Profile, parts: Parts, source: Source | None = None,
         objects: list[dict[str, Any]] | None = None) -> list[Finding]:
    """Stage 2: the cross-component checks over the parts (before alerts and objects are built), and with
    `objects` the production lint, which also reads the Kubernetes objects.

    Raises CheckError, each problem located at the profile key that set the value, on any error;
    returns the warnings.
    """
    found = checks.run(profile, parts) if objects is None else lint.findings(profile, parts, objects)
    errors = [f for f in found if f.severity == "error"]
    if errors:
        raise CheckError([_locate(source, f) for f in errors])
    return found


def _locate(source: Source | None, finding: Finding) -> Problem:
    message = f"{finding.check}: {finding.message}"
    return source.problem(finding.keys, message, finding.context) if source else Problem(message, key=finding.keys[0])


def alert_rules(profile: Profile, parts: Parts) -> Rules:
    """Stage 3: the alerts, thresholds from the parts."""
    return alerts.build(profile, parts)


def kubernetes_objects(profile: Profile, parts: Parts, rules: Rules, boards: Part) -> tuple[Part, list[dict[str, Any]]]:
    """Stage 5: every Kubernetes object, from the parts, the alert rules and the rendered dashboards."""
    return objects.build(profile, parts, rules, boards)


def check(profile: Profile, source: Source | None = None) -> list[Finding]:
    """The whole gate (checks and lint) without writing anything: what `validate` runs."""
    return render(profile, source).warnings


def render(profile: Profile, source: Source | None = None) -> Bundle:
    parts = config_parts(profile)
    warnings = gate(profile, parts, source)
    rules = alert_rules(profile, parts)
    monitoring_part = alerts.render(profile, rules)
    boards = dashboards.render(profile, rules)
    core, built = kubernetes_objects(profile, parts, rules, boards)
    warnings += gate(profile, parts, source, built)  # the production lint: it reads the objects too
    stages = [*parts.all(), monitoring_part, boards, core]
    settings = [s for part in stages for s in part.settings]
    files: dict[str, str] = {}
    for part in stages:
        warnings.extend(part.warnings)
        files.update(part.files)
    for obj in built:
        files[f"{paths.KUBERNETES_DIR}/{object_filename(obj)}"] = dump_yaml(obj)
    files[paths.EXPLAIN] = dump_json({
        "environment": profile.environment,
        "settings": [s.explain() for s in settings],
        "warnings": [{"check": w.check, "message": w.message, "severity": w.severity} for w in warnings],
    })
    return Bundle(profile=profile, settings=settings, files=dict(sorted(files.items())), objects=built,
                  warnings=warnings)

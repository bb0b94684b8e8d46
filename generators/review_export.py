"""Export what one revision renders for one environment, as JSON (perfstack.snapshot/v1).

`perfstack diff ENV --base REF` runs this file's source with `python3 -c` inside an export of REF
(`git archive`), so that the base revision's own generators render the base. It therefore uses only
the API every revision has had (`generators.profile.load_profile`, `generators.render.render` and the
Bundle's settings, objects and files) and reads newer parts (`checks.margins`) only when present.
Keep it self-contained: no imports of other perfstack modules at module level.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

SCHEMA = "perfstack.snapshot/v1"


def _alerts(text: str | None) -> list[dict[str, Any]]:
    import yaml

    if not text:
        return []
    rules = []
    for group in (yaml.safe_load(text) or {}).get("groups") or []:
        for rule in group.get("rules") or []:
            if "alert" in rule:
                rules.append({"group": group.get("name"), "alert": rule["alert"], "expr": str(rule.get("expr", "")),
                              "for": rule.get("for"), "labels": rule.get("labels") or {}})
    return rules


def export(env: str, profiles_dir: Path) -> dict[str, Any]:
    """Render ENV from profiles_dir with the generators importable here; a missing profile is `missing`."""
    from generators import checks
    from generators import render as stages
    from generators.loader import resolve_profile_path

    try:  # where a revision keeps load_profile: validation.py since the stage graph, profile.py before
        from generators.validation import load_profile
    except ImportError:
        from generators.profile import load_profile  # type: ignore[attr-defined,no-redef]

    if not resolve_profile_path(env, profiles_dir).exists():
        return {"schema": SCHEMA, "missing": True}
    profile, source = load_profile(env, profiles_dir)
    bundle = stages.render(profile, source)
    margins = getattr(checks, "margins", None)
    if margins is not None and hasattr(stages, "config_parts"):
        found = margins(profile, stages.config_parts(profile))
    else:
        found = margins(profile) if margins is not None else None
    return {
        "schema": SCHEMA,
        "missing": False,
        "environment": profile.environment,
        "namespace": profile.namespace,
        "profile": profile.model_dump(mode="json"),
        "files_in_profile": list(source.files),
        "settings": [{"target": s.target, "key": s.key, "text": s.text} for s in bundle.settings],
        "objects": bundle.objects,
        "files": {path: hashlib.sha256(text.encode()).hexdigest() for path, text in bundle.files.items()},
        "alerts": _alerts(bundle.files.get("prometheus/alerts.yaml")),
        "margins": None if found is None else [m.to_dict() for m in found],
        "warnings": [str(w) for w in bundle.warnings],
    }


def main(argv: list[str]) -> int:
    """python3 -c SOURCE ENV PROFILES_DIR: the snapshot on stdout; exit 2 with the error on stderr."""
    from generators.errors import PerfstackError

    env, profiles_dir = argv
    try:
        data = export(env, Path(profiles_dir))
    except PerfstackError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    json.dump(data, sys.stdout, sort_keys=True, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

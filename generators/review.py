"""Pull-request review: what a change to the profiles or generators does to one environment.

`perfstack diff ENV --base REF [--head REF]` renders ENV at two revisions and compares, by component,
every setting, every Kubernetes object (field by field), every alert rule, the cross-component margins
(used / limit and headroom, `generators/margins.py`) and the monthly cost (`generators/cost.py`).

Each revision is rendered by its own generators: REF is exported with `git archive` into a temporary
folder and `generators/review_export.py` runs there in a subprocess, importing that revision's code.
The working tree (the default head) is rendered in this process. So a change to a renderer shows up
as well as a change to a profile, and a base whose profiles the head's schema would refuse still
renders. Parts a revision's code predates (margins) are computed by this code from that revision's
profiles, when this code can load them; a note says so.
"""

from __future__ import annotations

import html
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import formats, review_export
from .bundle import dump_json
from .errors import PerfstackError, UsageError

EXPORT_TIMEOUT_S = 300
DEFAULT_MIN_HEADROOM = 0.10
WORKING_TREE = "working tree"


# ---------------------------------------------------------------- rendering a revision
def _git(top: Path | str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(top), *args], capture_output=True, timeout=120, check=False)


def repository_of(folder: Path) -> Path:
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such profiles folder")
    try:
        done = _git(folder, "rev-parse", "--show-toplevel")
    except FileNotFoundError:
        raise UsageError("diff --base needs git on PATH") from None
    if done.returncode != 0:
        raise UsageError(f"diff --base needs a git repository: {folder} is not in one")
    return Path(done.stdout.decode().strip()).resolve()


def resolve_commit(top: Path, ref: str) -> str:
    if not ref or ref.startswith("-"):
        raise UsageError(f"not a git revision: {ref!r}")
    done = _git(top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if done.returncode != 0:
        raise UsageError(f"{ref}: no such git revision in {top}")
    return done.stdout.decode().strip()


def _export_tree(top: Path, commit: str, paths: list[str], into: Path) -> None:
    done = _git(top, "archive", "--format=tar", commit, "--", *paths)
    if done.returncode != 0:
        raise UsageError(f"git archive {commit[:12]} failed: {done.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(into, filter="data")


@dataclass
class Side:
    label: str  # "main (1a2b3c4d)" or "working tree"
    snapshot: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _env_in(env: str, top: Path, tree: Path) -> str:
    """ENV as the exported tree names it: a profile name stays, a path maps into the tree."""
    candidate = Path(env)
    if candidate.suffix not in (".yaml", ".yml") and "/" not in env:
        return env
    try:
        return str(tree / candidate.resolve().relative_to(top))
    except ValueError:
        raise UsageError(f"{env}: a profile path must lie inside the repository {top} to be compared with a revision"
                         ) from None


def render_revision(env: str, profiles_dir: Path, ref: str) -> Side:
    """ENV rendered by revision REF's own generators, from REF's profiles."""
    top = repository_of(profiles_dir)
    commit = resolve_commit(top, ref)
    rel = profiles_dir.resolve().relative_to(top)
    label = f"{ref} ({commit[:8]})" if not commit.startswith(ref) else commit[:8]
    tree = Path(tempfile.mkdtemp(prefix="perfstack-review-"))
    try:
        listed = _git(top, "ls-tree", "--name-only", commit, "--", "generators", str(rel)).stdout.decode().split()
        if "generators" not in listed:
            raise UsageError(f"{ref}: revision has no generators/ folder to render with")
        if str(rel) not in listed and str(rel) != ".":
            return Side(label, {"schema": review_export.SCHEMA, "missing": True},
                        [f"{ref} has no {rel}/ folder: every object is new"])
        _export_tree(top, commit, ["generators"] + ([] if str(rel) == "." else [str(rel)]), tree)
        (tree / rel).mkdir(parents=True, exist_ok=True)
        env_there = _env_in(env, top, tree)
        child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
        child_env["PYTHONDONTWRITEBYTECODE"] = "1"
        source = Path(review_export.__file__).read_text(encoding="utf-8")
        try:
            done = subprocess.run([sys.executable, "-c", source, env_there, str(rel)], cwd=tree, env=child_env,
                                  capture_output=True, timeout=EXPORT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise UsageError(f"{label}: rendering {env} took over {EXPORT_TIMEOUT_S} s") from None
        errors = done.stderr.decode(errors="replace").strip().replace(str(tree) + "/", "")
        if done.returncode == 2:
            raise UsageError(f"{label} does not render {env}:\n{errors}")
        if done.returncode != 0:
            tail = "\n".join(errors.splitlines()[-8:])
            raise UsageError(f"{label}: its generators failed to render {env} (exit {done.returncode}):\n{tail}")
        snapshot = json.loads(done.stdout)
        side = Side(label, snapshot)
        if not snapshot.get("missing") and snapshot.get("margins") is None:
            side.snapshot["margins"], note = _margins_with_this_code(env_there, tree / rel)
            side.notes.append(f"{label} predates margins: " + note)
        return side
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _margins_with_this_code(env: str, profiles_dir: Path) -> tuple[list[dict[str, Any]] | None, str]:
    from .checks import margins
    from .render import config_parts
    from .validation import load_profile

    try:
        profile, _source = load_profile(env, profiles_dir)
        found = margins(profile, config_parts(profile))
    except PerfstackError as exc:
        return None, f"this revision's code cannot load its profile, so its margins are not shown ({exc})"
    return [m.to_dict() for m in found], "computed by this revision's checks from its profile"


def render_working_tree(env: str, profiles_dir: Path) -> Side:
    return Side(WORKING_TREE, review_export.export(env, profiles_dir))


# ---------------------------------------------------------------- comparing two snapshots
@dataclass(frozen=True)
class Change:
    component: str
    kind: str  # setting | object | alert | file
    name: str  # setting key, "Kind/name", "group/alert", path
    status: str  # changed | added | removed
    fields: tuple[tuple[str, str | None, str | None], ...] = ()  # (field, base, head)
    base: str | None = None
    head: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, "kind": self.kind, "name": self.name, "status": self.status,
                "base": self.base, "head": self.head,
                "fields": [{"field": f, "base": a, "head": b} for f, a, b in self.fields]}


@dataclass(frozen=True)
class MarginChange:
    id: str
    check: str
    name: str
    unit: str
    base: dict[str, Any] | None
    head: dict[str, Any] | None
    flagged: str | None  # why a reviewer should look, or None

    @property
    def changed(self) -> bool:
        strip = ("used", "limit")
        return (self.base or {}).get("used") != (self.head or {}).get("used") or \
            any((self.base or {}).get(k) != (self.head or {}).get(k) for k in strip)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "check": self.check, "name": self.name, "unit": self.unit, "base": self.base,
                "head": self.head, "changed": self.changed, "flagged": self.flagged}


@dataclass
class Review:
    environment: str
    base: Side
    head: Side
    changes: list[Change]
    margins: list[MarginChange]
    min_headroom: float
    cost: dict[str, Any] | None
    files: list[Change]

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.files)

    @property
    def exit_code(self) -> int:
        return 1 if self.changed else 0

    def components(self) -> dict[str, list[Change]]:
        groups: dict[str, list[Change]] = {}
        for change in self.changes:
            groups.setdefault(change.component, []).append(change)
        return dict(sorted(groups.items()))

    def notes(self) -> list[str]:
        return self.base.notes + self.head.notes + list((self.cost or {}).get("notes") or [])

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "perfstack.review/v1", "environment": self.environment, "base": self.base.label,
                "head": self.head.label, "changed": self.changed, "exit_code": self.exit_code,
                "min_headroom": self.min_headroom, "notes": self.notes(),
                "components": {name: [c.to_dict() for c in items] for name, items in self.components().items()},
                "margins": [m.to_dict() for m in self.margins], "cost": self.cost,
                "files": [{"path": c.name, "status": c.status} for c in self.files]}


def _pairs(base: dict[str, Any], head: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, base.get(k), head.get(k)) for k in dict.fromkeys([*base, *head]) if base.get(k) != head.get(k)]


def _status(a: Any, b: Any) -> str:
    return "added" if a is None else "removed" if b is None else "changed"


def _compare_settings(base: dict[str, Any], head: dict[str, Any]) -> list[Change]:
    def index(snapshot: dict[str, Any]) -> dict[str, Any]:
        return {f"{s['target']}\0{s['key']}": s["text"] for s in snapshot.get("settings") or []}

    out = []
    for key, a, b in _pairs(index(base), index(head)):
        target, name = key.split("\0", 1)
        out.append(Change(target, "setting", name, _status(a, b), base=a, head=b))
    return out


IGNORED_ANNOTATION = "checksum"  # perfstack.io/config-checksum follows the ConfigMap, whose own change is listed


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if ".annotations." in f".{path}" and IGNORED_ANNOTATION in str(key):
                continue
            _flatten(item, path, out)
    elif isinstance(value, list) and value and all(isinstance(i, dict) and "name" in i for i in value):
        for item in value:  # containers, ports, volumes, env: keyed by name, not by position
            _flatten(item, f"{prefix}[{item['name']}]", out)
    elif isinstance(value, list) and value and all(isinstance(i, dict) and "alert" in i for i in value):
        for item in value:  # a PrometheusRule's rules: by alert name
            _flatten(item, f"{prefix}[{item['alert']}]", out)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value, sort_keys=True)
    elif isinstance(value, str) and "\n" in value:
        out[prefix] = value  # a config file in a ConfigMap: summarised by _shown
    else:
        out[prefix] = value if isinstance(value, str) else json.dumps(value)


def _shown(a: str | None, b: str | None) -> tuple[str | None, str | None]:
    """Multi-line values (files in ConfigMaps) as line counts; the setting changes show what moved."""
    if (a is not None and "\n" in a) or (b is not None and "\n" in b):
        def count(text: str | None) -> str | None:
            return None if text is None else f"{len(text.splitlines())} lines, sha256 {_sha(text)[:8]}"
        return count(a), count(b)
    return a, b


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _component_of(obj: dict[str, Any]) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return str(labels.get("app.kubernetes.io/name") or labels.get("app.kubernetes.io/component") or "kubernetes")


def _compare_objects(base: dict[str, Any], head: dict[str, Any]) -> list[Change]:
    def index(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
        # By kind and name, not namespace: a namespace change is a field of every object, not 2 x N objects.
        return {f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}": o for o in snapshot.get("objects") or []}

    left, right = index(base), index(head)
    apps = {((s.get("profile") or {}).get("app") or {}).get("deployment") for s in (base, head)} - {None}
    out = []
    for name in dict.fromkeys([*left, *right]):
        a, b = left.get(name), right.get(name)
        component = _component_of(b or a or {})
        component = "app" if component in apps else component  # the app's ConfigMap and HPA sit with its settings
        if a is None or b is None:
            obj = b or a or {}
            summary = _object_summary(obj)
            out.append(Change(component, "object", name, _status(a, b), base=None if a is None else summary,
                              head=None if b is None else summary))
            continue
        flat_a: dict[str, str] = {}
        flat_b: dict[str, str] = {}
        _flatten(_without_rules(a), "", flat_a)
        _flatten(_without_rules(b), "", flat_b)
        fields = tuple((path, *_shown(x, y)) for path, x, y in _pairs(flat_a, flat_b))
        if a.get("kind") == "PrometheusRule" and (a.get("spec") or {}).get("groups") != (b.get("spec") or {}).get("groups"):
            fields += (("spec.groups", "rules as base", "rules as head (alert rules are listed by component)"),)
        if fields:
            out.append(Change(component, "object", name, "changed", fields=fields))
    return out


def _without_rules(obj: dict[str, Any]) -> dict[str, Any]:
    """A PrometheusRule's groups are the alert rules, compared rule by rule on their own."""
    if obj.get("kind") != "PrometheusRule":
        return obj
    return {**obj, "spec": {k: v for k, v in (obj.get("spec") or {}).items() if k != "groups"}}


def _object_summary(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    parts = [f"namespace {meta['namespace']}"] if meta.get("namespace") else []
    if "replicas" in spec:
        parts.append(f"replicas {spec['replicas']}")
    for container in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []:
        parts.append(f"image {container.get('image')}")
    return ", ".join(parts) or str(obj.get("apiVersion", ""))


def _compare_alerts(base: dict[str, Any], head: dict[str, Any]) -> list[Change]:
    def index(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {f"{r['group']}/{r['alert']}": r for r in snapshot.get("alerts") or []}

    left, right = index(base), index(head)
    apps = {"api"} | {((s.get("profile") or {}).get("app") or {}).get("deployment") for s in (base, head)} - {None}
    out = []
    for name in dict.fromkeys([*left, *right]):
        a, b = left.get(name), right.get(name)
        rule = b or a or {}
        component = str((rule.get("labels") or {}).get("component") or "alerts")
        component = "app" if component in apps else component
        if a is None or b is None:
            text = f"for {rule.get('for')}: {rule.get('expr')}"
            out.append(Change(component, "alert", name, _status(a, b), base=None if a is None else text,
                              head=None if b is None else text))
            continue
        fields: list[tuple[str, str | None, str | None]] = []
        expr_a, expr_b = str(a.get("expr")), str(b.get("expr"))
        ns_a, ns_b = base.get("namespace"), head.get("namespace")
        if ns_a != ns_b and expr_a.replace(formats.matcher("namespace", str(ns_a)), formats.matcher("namespace", str(ns_b))) == expr_b:
            fields.append(("expr namespace selector", str(ns_a), str(ns_b)))  # the rest of the expression is equal
        elif expr_a != expr_b:
            fields.append(("expr", expr_a, expr_b))
        if a.get("for") != b.get("for"):
            fields.append(("for", str(a.get("for")), str(b.get("for"))))
        for key, x, y in _pairs(a.get("labels") or {}, b.get("labels") or {}):
            fields.append((f"labels.{key}", None if x is None else str(x), None if y is None else str(y)))
        if fields:
            out.append(Change(component, "alert", name, "changed", fields=tuple(fields)))
    return out


def _compare_files(base: dict[str, Any], head: dict[str, Any]) -> list[Change]:
    return [Change("files", "file", path, _status(a, b))
            for path, a, b in sorted(_pairs(base.get("files") or {}, head.get("files") or {}))]


def _compare_margins(base: dict[str, Any], head: dict[str, Any], min_headroom: float) -> list[MarginChange]:
    def index(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {f"{m['check']}:{m['name']}": m for m in snapshot.get("margins") or []}

    left, right = index(base), index(head)
    out = []
    for key in dict.fromkeys([*right, *left]):
        a, b = left.get(key), right.get(key)
        m = b or a or {}
        flagged = None
        room_b = (b or {}).get("headroom")
        room_a = (a or {}).get("headroom")
        if b is not None and room_b is not None:
            exceeded = room_b < 0 or (m.get("strict") and room_b <= 0)
            shrank = room_a is None or room_b < room_a
            if exceeded and shrank:
                flagged = f"now over its limit (headroom {room_b * 100:.0f} %)"
            elif room_b < min_headroom and shrank:
                flagged = f"headroom {room_b * 100:.0f} % is below review.min_headroom {min_headroom * 100:.0f} %"
        out.append(MarginChange(key, str(m.get("check")), str(m.get("name")), str(m.get("unit")), a, b, flagged))
    return out


def compare(base: Side, head: Side) -> Review:
    a, b = base.snapshot, head.snapshot
    min_headroom = (((b.get("profile") or {}).get("review") or {}).get("min_headroom"))
    min_headroom = DEFAULT_MIN_HEADROOM if min_headroom is None else float(min_headroom)
    changes = _compare_settings(a, b) + _compare_objects(a, b) + _compare_alerts(a, b)
    from .cost import compare_cost

    return Review(environment=str(b.get("environment") or a.get("environment") or "?"), base=base, head=head,
                  changes=changes, margins=_compare_margins(a, b, min_headroom), min_headroom=min_headroom,
                  cost=compare_cost(a, b), files=_compare_files(a, b))


def review(env: str, profiles_dir: Path, base_ref: str, head_ref: str | None) -> Review:
    base = render_revision(env, profiles_dir, base_ref)
    head = render_revision(env, profiles_dir, head_ref) if head_ref else render_working_tree(env, profiles_dir)
    if base.snapshot.get("missing") and head.snapshot.get("missing"):
        raise UsageError(f"{env}: no such profile at {base.label} nor at {head.label}")
    return compare(base, head)


# ---------------------------------------------------------------- formatting
def _amount(value: Any, unit: str) -> str:
    from .margins import format_amount

    return format_amount(None if value is None else float(value), unit)


def _margin_text(m: dict[str, Any] | None, unit: str) -> str:
    if m is None:
        return "—"
    room = m.get("headroom")
    used = _amount(m.get("used"), unit) if unit in ("bytes", "ms") else f"{m.get('used')}"
    text = f"{used} / {_amount(m.get('limit'), unit)}"
    return text + ("" if room is None else f" ({room * 100:.0f} % headroom)")


def _money(value: float | None, currency: str) -> str:
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value):,.2f} {currency}"


def cost_line(cost: dict[str, Any] | None) -> str | None:
    if not cost:
        return None
    cur = cost["currency"]
    b, h, d = cost.get("base"), cost.get("head"), cost.get("delta")

    def span(side: dict[str, Any] | None) -> str:
        return "—" if side is None else f"{_money(side['min'], cur)} to {_money(side['max'], cur)}"

    delta = "" if d is None else (f" (delta {'+' if d['min'] >= 0 else ''}{_money(d['min'], cur)} at min, "
                                  f"{'+' if d['max'] >= 0 else ''}{_money(d['max'], cur)} at max replicas)")
    return f"monthly cost at min to max replicas: {span(b)} -> {span(h)}{delta}"


def _summary(r: Review) -> str:
    counts: dict[str, int] = {}
    for change in r.changes:
        counts[change.kind] = counts.get(change.kind, 0) + 1
    words = {"setting": "setting", "object": "Kubernetes object", "alert": "alert rule"}
    parts = [f"{n} {words[k]}{'s' if n != 1 else ''}" for k, n in counts.items()]
    if not r.changed:
        head = "nothing changed"
    elif not r.changes:
        head = f"no setting value, object or alert rule changed; {len(r.files)} rendered file(s) differ " \
            "(rules or explanations)"
    else:
        head = (", ".join(parts) or "no setting or object") + f" changed in {len(r.components())} component(s); " \
            f"{len(r.files)} rendered file(s) differ"
    flagged = [m for m in r.margins if m.flagged]
    if flagged:
        head += f"; {len(flagged)} margin(s) to check"
    return head


def _md(value: str | None) -> str:
    """A profile-derived value in a GitHub table cell: HTML-escaped, no pipe, no newline."""
    if value is None:
        return "—"
    text = html.escape(value, quote=False).replace("|", "&#124;").replace("\n", " ⏎ ").replace("`", "&#96;")
    if len(text) > 200:
        text = text[:197] + "…"
    return f"<code>{text}</code>"


def format_review(r: Review, fmt: str) -> str:
    if fmt == "json":
        return dump_json(r.to_dict())
    if fmt == "markdown":
        return _markdown(r)
    return _text(r)


def _text(r: Review) -> str:
    lines = [f"perfstack diff {r.environment}: {r.base.label} -> {r.head.label}: {_summary(r)}"]
    if (line := cost_line(r.cost)) is not None:
        lines.append(line)
    lines += [f"note: {n}" for n in r.notes()]
    for component, items in r.components().items():
        lines.append(f"[{component}]")
        for c in items:
            if c.fields:
                lines.append(f"  {c.kind} {c.name} changed:")
                lines += [f"    {f}: {_plain(a)} -> {_plain(b)}" for f, a, b in c.fields]
            else:
                lines.append(f"  {c.kind} {c.name}: {_plain(c.base)} -> {_plain(c.head)}" if c.status == "changed"
                             else f"  {c.kind} {c.name} {c.status}: {c.head if c.head is not None else c.base}")
    shown = [m for m in r.margins if m.changed or m.flagged]
    if shown:
        lines.append("[margins]")
        for m in shown:
            flag = f"  <-- {m.flagged}" if m.flagged else ""
            lines.append(f"  {m.check}: {m.name}: {_margin_text(m.base, m.unit)} -> {_margin_text(m.head, m.unit)}"
                         f"{flag}")
    return "\n".join(lines) + "\n"


def _plain(value: str | None) -> str:
    return "(unset)" if value is None else value


def _markdown(r: Review) -> str:
    lines = [f"<!-- perfstack-diff:{r.environment} -->",
             f"## perfstack diff `{r.environment}`: {_md(r.base.label)} → {_md(r.head.label)}", "",
             f"**{html.escape(_summary(r))}**", ""]
    if r.cost is not None:
        lines += [f"Monthly cost ({html.escape(r.cost['currency'])}, {html.escape(r.cost['note'])}): "
                  + _cost_cells(r.cost), ""]
    for note in r.notes():
        lines.append(f"> {html.escape(note)}")
    if r.notes():
        lines.append("")
    shown = [m for m in r.margins if m.changed or m.flagged]
    if shown:
        lines += ["### Margins", "", "| | check | base | head |", "| --- | --- | --- | --- |"]
        for m in shown:
            mark = "⚠️" if m.flagged else ""
            name = f"{html.escape(m.name)} (<code>{html.escape(m.check)}</code>)"
            if m.flagged:
                name += f"<br>{html.escape(m.flagged)}"
            lines.append(f"| {mark} | {name} | {_margin_text(m.base, m.unit)} | {_margin_text(m.head, m.unit)} |")
        lines.append("")
    for component, items in r.components().items():
        lines += [f"### {html.escape(component)}", ""]
        settings = [c for c in items if c.kind == "setting"]
        others = [c for c in items if c.kind != "setting"]
        if settings:
            lines += ["| setting | base | head |", "| --- | --- | --- |"]
            lines += [f"| {_md(c.name)} | {_md(c.base)} | {_md(c.head)} |" for c in settings]
            lines.append("")
        if others:
            detail = ["| object or rule | field | base | head |", "| --- | --- | --- | --- |"]
            for c in others:
                if c.fields:
                    detail += [f"| {_md(c.kind + ' ' + c.name)} | {_md(f)} | {_md(a)} | {_md(b)} |" for f, a, b in c.fields]
                else:
                    detail.append(f"| {_md(c.kind + ' ' + c.name)} | {c.status} | {_md(c.base)} | {_md(c.head)} |")
            names = ", ".join(sorted({c.name for c in others}))
            lines += [f"<details><summary>{len(others)} Kubernetes object(s) / alert rule(s): "
                      f"{html.escape(names)}</summary>", "", *detail, "", "</details>", ""]
    if r.files:
        lines += [f"<details><summary>{len(r.files)} rendered file(s) differ</summary>", ""]
        lines += [f"- {_md(c.name)} {c.status}" for c in r.files]
        lines += ["", "</details>", ""]
    if r.margins:
        lines += ["<details><summary>All margins</summary>", "", "| check | base | head |", "| --- | --- | --- |"]
        lines += [f"| {html.escape(m.name)} | {_margin_text(m.base, m.unit)} | {_margin_text(m.head, m.unit)} |"
                  for m in r.margins]
        lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def _cost_cells(cost: dict[str, Any]) -> str:
    cur = cost["currency"]
    b, h, d = cost.get("base"), cost.get("head"), cost.get("delta")

    def span(side: dict[str, Any] | None) -> str:
        return "—" if side is None else f"{_money(side['min'], cur)} – {_money(side['max'], cur)}"

    text = f"base {span(b)} → head {span(h)}"
    if d is not None:
        text += f" (delta {'+' if d['min'] >= 0 else ''}{_money(d['min'], cur)} at min replicas, " \
                f"{'+' if d['max'] >= 0 else ''}{_money(d['max'], cur)} at max)"
    return text




def format_reviews(reviews: list[Review], fmt: str) -> str:
    """Several environments in one report (diff --all): one PR comment, one JSON document."""
    if fmt == "json":
        return dump_json({"schema": "perfstack.reviews/v1", "exit_code": max((r.exit_code for r in reviews), default=0),
                          "environments": [r.to_dict() for r in reviews]})
    if fmt == "markdown":
        changed = [r.environment for r in reviews if r.changed]
        head = ["<!-- perfstack-diff -->", "# perfstack",
                "", f"{len(changed)} of {len(reviews)} environment(s) change"
                + (f": {html.escape(', '.join(changed))}" if changed else ""), ""]
        parts = [_markdown(r).replace(f"<!-- perfstack-diff:{r.environment} -->\n", "") for r in reviews]
        return "\n".join(head) + "\n" + "\n".join(parts)
    return "".join(_text(r) for r in reviews)

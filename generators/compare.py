"""Setting-level comparison of two Bundles (perfstack diff), grouped by target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .bundle import Bundle, dump_json


@dataclass(frozen=True)
class Change:
    target: str
    key: str
    a: str | None
    b: str | None


def diff_bundles(a: Bundle, b: Bundle) -> list[Change]:
    left = {(s.target, s.key): s.text for s in a.settings}
    right = {(s.target, s.key): s.text for s in b.settings}
    order = list(dict.fromkeys([*left, *right]))
    return [Change(t, k, left.get((t, k)), right.get((t, k))) for t, k in order if left.get((t, k)) != right.get((t, k))]


def _grouped(changes: list[Change]) -> dict[str, list[Change]]:
    groups: dict[str, list[Change]] = {}
    for change in changes:
        groups.setdefault(change.target, []).append(change)
    return groups


def format_diff(changes: list[Change], name_a: str, name_b: str, fmt: str) -> str:
    if fmt == "json":
        data: dict[str, Any] = {"a": name_a, "b": name_b, "targets": {
            target: [{"key": c.key, "a": c.a, "b": c.b} for c in items] for target, items in _grouped(changes).items()}}
        return dump_json(data)
    if fmt == "markdown":
        lines = [f"## perfstack diff: {name_a} → {name_b}", ""]
        if not changes:
            lines.append("No setting differs.")
        for target, items in _grouped(changes).items():
            lines += [f"### {target}", "", f"| setting | {name_a} | {name_b} |", "| --- | --- | --- |"]
            lines += [f"| `{c.key}` | {_cell(c.a)} | {_cell(c.b)} |" for c in items]
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"
    lines = []
    for target, items in _grouped(changes).items():
        lines.append(f"[{target}]")
        width = max(len(c.key) for c in items)
        lines += [f"  {c.key:<{width}}  {c.a if c.a is not None else '(unset)'} -> "
                  f"{c.b if c.b is not None else '(unset)'}" for c in items]
    return "\n".join(lines) + "\n" if lines else f"no setting differs between {name_a} and {name_b}\n"


def _cell(value: str | None) -> str:
    return "—" if value is None else f"`{value}`".replace("|", "\\|")

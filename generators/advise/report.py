"""How an advise run is printed: text for people, Markdown for a pull request description, JSON for tools,
and the SQL file for review (perfstack writes it; a person runs it)."""

from __future__ import annotations

import json
from typing import Any

from ..units import format_size_human
from .model import INFO, Advice, Finding

PROPOSAL_WORDS = {"proposed": "proposed", "proposed-with-companions": "proposed with the edits the checks need",
                  "refused": "not proposed: the checks refuse it"}


def _value(value: Any) -> str:
    return str(value) if value is not None else "(unset)"


def _edit_lines(finding: Finding) -> list[str]:
    if not finding.edits:
        return []
    if finding.proposal == "refused":
        return ["edit not proposed, the checks refuse it:", *[f"  {p}" for p in finding.refused_because]]
    edits = finding.edits + (finding.companions if finding.proposal == "proposed-with-companions" else [])
    return [f"edit: {e.key}: {_value(e.current)} -> {e.value}" for e in edits]


def format_text(advice: Advice) -> str:
    lines = [f"perfstack advise {advice.environment}" + (f" ({advice.profile_file})" if advice.profile_file else "")]
    for target in advice.targets:
        lines.append(f"\n{target.target} {target.endpoint}: " + (
            f"ERROR {target.error}" if target.error else f"{len(target.findings)} finding(s)"))
        for finding in target.findings:
            mark = "-" if finding.severity == INFO else "!"
            lines.append(f"  {mark} [{finding.kind}] {finding.message}")
            lines.extend(f"      {line}" for line in _edit_lines(finding))
            lines.extend(f"      sql: {s}" for s in finding.sql)
        lines.extend(f"  note: {n}" for n in target.notes)
    if advice.edits:
        lines.append("\nprofile edits (the cross-component checks pass on the edited profile):")
        lines.extend(f"  {e.key}: {_value(e.current)} -> {e.value}" for e in advice.edits)
    if not advice.warnings and not any(t.error for t in advice.targets):
        lines.append("\nnothing to advise")
    return "\n".join(lines) + "\n"


def format_markdown(advice: Advice) -> str:
    """A pull request description for the profile change."""
    env = advice.environment
    lines = [f"## perfstack advise: {env}", ""]
    if advice.edits:
        lines += [f"Profile changes for `{advice.profile_file or env}`, from how the stack ran. The cross-component "
                  "checks (`perfstack validate`) pass on the edited profile.", "",
                  "| key | now | proposed | evidence |", "| --- | --- | --- | --- |"]
        lines += [f"| `{e.key}` | {_md(_value(e.current))} | **{_md(str(e.value))}** | {_md(e.reason)} |"
                  for e in advice.edits]
        lines.append("")
    creates = [f.index for f in advice.findings if f.index and f.index.action == "create"]
    drops = [f.index for f in advice.findings if f.index and f.index.action == "drop"]
    if creates:
        lines += ["### Indexes (proven with HypoPG hypothetical indexes)", "",
                  "| index | statements | cost before | cost after | est. size |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| `{_md(i.sql)}` | {'<br>'.join('`' + _md(s) + '`' for s in i.statements)} | {i.cost_before:.0f} | "
                  f"{i.cost_after:.0f} | {format_size_human(i.size_bytes)} |" for i in creates if i.cost_before is not None
                  and i.cost_after is not None]
        lines.append("")
    if drops:
        lines += ["### Indexes to drop", "", "| index | why | size |", "| --- | --- | ---: |"]
        lines += [f"| `{_md(i.sql)}` | {_md(i.why)} | {format_size_human(i.size_bytes)} |" for i in drops]
        lines.append("")
    others = [f for f in advice.findings if not f.index]
    if others:
        lines += ["### Findings", ""]
        for finding in others:
            state = f" ({PROPOSAL_WORDS[finding.proposal]})" if finding.proposal in PROPOSAL_WORDS else ""
            lines.append(f"- **{finding.target} {finding.kind}**: {_md(finding.message)}{state}")
            lines.extend(f"  - `{_md(p)}`" for p in finding.refused_because)
        lines.append("")
    if advice.sql:
        lines += ["### SQL for review (perfstack did not run it)", "", "```sql", *advice.sql, "```", ""]
    errors = [t for t in advice.targets if t.error]
    if errors:
        lines += ["### Not read", ""] + [f"- {t.target} {t.endpoint}: {_md(t.error or '')}" for t in errors] + [""]
    if not advice.findings and not errors:
        lines += ["Nothing to advise.", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_json(advice: Advice) -> str:
    return json.dumps(advice.to_dict(), indent=2, sort_keys=True, default=str) + "\n"


def format_report(advice: Advice, fmt: str) -> str:
    return {"text": format_text, "markdown": format_markdown, "json": format_json}[fmt](advice)


def sql_file(advice: Advice) -> str:
    """The SQL to review: index changes first (CONCURRENTLY: run each outside a transaction), then the rest."""
    lines = [f"-- perfstack advise {advice.environment}: statements for review. perfstack never runs them.",
             "-- CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction block: run them one by one.", ""]
    for finding in advice.findings:
        if not finding.sql:
            continue
        lines.append(f"-- {finding.kind}: {' '.join(finding.message.split())}")
        lines.extend(finding.sql)
        lines.append("")
    return "\n".join(lines)

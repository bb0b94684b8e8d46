"""Proposed profile edits: re-checked on the edited profile, and written back with ruamel.yaml round trip.

`validate` applies each finding's edits (over the ones accepted before it) to the merged profile data,
then loads and renders the result with the project's own entry points, as `perfstack validate` does
(`profile_from_source` for the types, `render.render`, whose gate runs the cross-component checks and
the production lint, and every generator). An edit the checks refuse is
retried with the finding's companion edits (e.g. a bigger Redis host for a bigger maxmemory); if that
is refused too, the finding says why and proposes nothing.

`write` edits the environment's own file (the one ENV names; keys its `extends:` parent sets are
overridden there), keeping comments and layout: the file is loaded and dumped with ruamel.yaml's round
trip, and only the lines the edits changed are merged into the original text (ruamel re-flows multi-line
flow mappings it did not need to touch; those stay as written). Each edited key gets a comment with the
evidence.
"""

from __future__ import annotations

import copy
import difflib
import io
import os
from pathlib import Path
from typing import Any

from ..errors import PerfstackError
from ..loader import Source
from .model import Edit, Finding

COMMENT_PREFIX = "perfstack advise: "


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def get(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def edited_source(source: Source, edits: list[Edit]) -> Source:
    data = copy.deepcopy(source.data)
    for edit in edits:
        _set(data, edit.key, edit.value)
    return Source(data=data, locations=source.locations, files=source.files)


def check_edits(source: Source, environment: str, edits: list[Edit]) -> list[str]:
    """The problems `perfstack validate` would find in the edited profile ([] = none): the loader's types,
    the cross-component checks and every generator (render), and the production lint."""
    from ..render import render
    from ..validation import profile_from_source

    edited = edited_source(source, edits)
    try:
        render(profile_from_source(edited, environment), edited)  # the one gate: checks and the production lint
    except PerfstackError as exc:
        return [line for line in str(exc).splitlines() if line.strip()]
    return []


def _merge(accepted: list[Edit], new: list[Edit]) -> list[Edit]:
    keys = {e.key for e in new}
    return [e for e in accepted if e.key not in keys] + list(new)


def validate(findings: list[Finding], source: Source, environment: str) -> tuple[list[Edit], list[str]]:
    """Accept each finding's edits when the checks pass on the profile with them (and the ones before);
    mark findings proposed, proposed-with-companions or refused. Returns the accepted edits and the
    checks' warnings on the final edited profile."""
    accepted: list[Edit] = []
    for finding in findings:
        if not finding.edits:
            continue
        current = {a.key: a.value for a in accepted}
        if all(current.get(e.key, object()) == e.value for e in finding.edits):
            finding.proposal = "proposed"  # the same change another finding already proposed
            continue
        trial = _merge(accepted, finding.edits)
        problems = check_edits(source, environment, trial)
        if not problems:
            accepted, finding.proposal = trial, "proposed"
            continue
        if finding.companions:
            with_companions = _merge(trial, finding.companions)
            again = check_edits(source, environment, with_companions)
            if not again:
                accepted, finding.proposal = with_companions, "proposed-with-companions"
                continue
            problems = again
        finding.proposal, finding.refused_because = "refused", problems
    return accepted, _warnings(source, environment, accepted)


def _warnings(source: Source, environment: str, edits: list[Edit]) -> list[str]:
    from ..render import render
    from ..validation import profile_from_source

    if not edits:
        return []
    edited = edited_source(source, edits)
    bundle = render(profile_from_source(edited, environment), edited)
    return [str(w.message) for w in bundle.warnings]


# ---------------------------------------------------------------- writing the profile
def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.width = 4096
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _dump(yaml: Any, data: Any) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _apply(document: Any, edit: Edit) -> None:
    from ruamel.yaml.comments import CommentedMap

    parts = edit.key.split(".")
    node = document
    parents = []
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = CommentedMap()
        parents.append((node, part))
        node = node[part]
    node[parts[-1]] = edit.value
    comment = COMMENT_PREFIX + (edit.reason or "proposed") + (f" (was {edit.current})" if edit.current is not None else "")
    comment = " ".join(comment.split())
    if not node.fa.flow_style():
        own = node.ca.items.get(parts[-1])
        if own and len(own) > 2 and own[2] is not None:  # the key has a comment of its own: keep it, go above
            node.yaml_set_comment_before_after_key(parts[-1], before=comment, indent=2 * (len(parts) - 1))
        else:
            node.yaml_add_eol_comment(comment, parts[-1])
        return
    # A flow mapping ({a: 1, b: 2}) has no room for a comment: put it on the line above it, in the block
    # mapping that holds it.
    while parents:
        parent, key = parents.pop()
        if not parent.fa.flow_style():
            parent.yaml_set_comment_before_after_key(key, before=comment, indent=2 * len(parents))
            return


def merge_changes(original: str, base: str, edited: str) -> str | None:
    """Apply the lines that differ between base (the unedited round trip) and edited to the original text;
    None when a change falls where the round trip had already re-flowed the original."""
    orig, base_lines, new = original.splitlines(True), base.splitlines(True), edited.splitlines(True)
    mapping: dict[int, int] = {}  # base line -> original line, for lines the round trip kept as they were
    for block in difflib.SequenceMatcher(None, base_lines, orig, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            mapping[block.a + k] = block.b + k
    out = list(orig)
    shift = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, base_lines, new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if i2 > i1:
            if any(i not in mapping for i in range(i1, i2)) or mapping[i2 - 1] - mapping[i1] != i2 - 1 - i1:
                return None
            o1, o2 = mapping[i1], mapping[i2 - 1] + 1
        elif i1 in mapping:
            o1 = o2 = mapping[i1]
        elif i1 == len(base_lines):
            o1 = o2 = len(orig)
        elif i1 - 1 in mapping:
            o1 = o2 = mapping[i1 - 1] + 1
        else:
            return None
        out[o1 + shift:o2 + shift] = new[j1:j2]
        shift += (j2 - j1) - (o2 - o1)
    text = "".join(out)
    return text if text.endswith("\n") or not text else text + "\n"


def write(path: Path, edits: list[Edit]) -> str:
    """Apply the edits to the profile file at path; returns the new text (written atomically)."""
    original = path.read_text()
    yaml = _yaml()
    base = _dump(yaml, yaml.load(original))
    document = yaml.load(original)
    for edit in edits:
        _apply(document, edit)
    edited = _dump(yaml, document)
    text = merge_changes(original, base, edited) or edited
    temp = path.with_name(f".{path.name}.advise.tmp")
    temp.write_text(text)
    os.replace(temp, path)
    return text

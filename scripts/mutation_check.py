#!/usr/bin/env python3
"""Mutation check of the rendered alert rules: do the generated promtool proofs catch real mistakes?

For each environment (default: dev prod) the profile is rendered into a temporary folder; then every rule of
prometheus/alerts.yaml is mutated one change at a time, the way a hand edit goes wrong:

    operator     a comparison turned around or loosened (> to <, > to >=, == to !=)
    threshold    the number it is compared with moved by 10% (0 becomes 1)
    for          the `for` window doubled, or removed
    selector     one label matcher dropped ({namespace="x", job="api"} -> {job="api"})
    aggregation  sum <-> max (min), or one label dropped from a `by (...)` clause
    window       a range [5m] or an offset made 5x shorter or 3x longer

and `promtool test rules` runs the generated tests of the alerts the mutated rule is or feeds against the
mutant. A mutant is caught when a test fails. Mutants that change nothing (the same text) are not counted.
One class (two forms) is declared equivalent (listed apart, out of the share), each member checked by `matched_away`:

    a selector's matcher on label L dropped, where every aggregation of the expression keeps L
    (`sum by (..., L, ...)`), every series it reads is aggregated, the operands are joined only by
    one-to-one arithmetic, comparison or `and` (no `or`, `unless`, `on`, `ignoring`, `absent`), and
    another selector of the same expression still carries the identical matcher. One-to-one matching
    keeps only the label sets present on both sides, so the extra groups the mutant lets in (L outside
    the matcher) have no partner and are dropped: the result is the same for every input. Example:
    `sum by (ns) (rate(a{ns="x"}[5m])) / sum by (ns) (rate(b{ns="x"}[5m]))` with the first `ns="x"` gone.
    Likewise (`set_matched_away`) a matcher on L dropped from Y in `X and on (L) Y` or `X unless on (L) Y`
    (or with no on(), which matches on every label, L included)
    when X's every selector carries it and X keeps L, or from X of an `and` when Y's do: an element failing
    the matcher cannot share L's value with one passing it, so the extra elements match nothing. Example:
    `absent(a{ns="x"}) and on (ns) (up{ns="x", job="j"} == 1)` with the second `ns="x"` gone.

A second class (`never_equal`): `>` and `>=` (or `<` and `<=`) swapped where they compare a recording rule
`1 - X` with a threshold T under 0.5 for which 1 - T is no double. They differ only where the value equals T,
and no double X makes 1 - X equal T (1 - X is exact for X in [0.5, 2]): the latency burn-rate alerts.

Prints the share caught per environment and per kind; `--min 0.9` exits 1 below it.

    python3 scripts/mutation_check.py [ENV ...] [--min 0.9] [--jobs 2] [--show-survivors] [--format json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
COMPARISON = re.compile(r"(?<![=!<>])(>=|<=|==|!=|>|<)\s*(" + NUMBER + r")(?![\w.])")
OPPOSITE = {">": ["<", ">="], "<": [">", "<="], ">=": [">", "<"], "<=": ["<", ">"], "==": ["!="], "!=": ["=="]}
SELECTOR = re.compile(r"\{([^{}]*)\}")
MATCHER = re.compile(r'\s*[A-Za-z_]\w*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*')
AGGREGATION = re.compile(r"\b(sum|max|min)\s+by\s*\(([^)]*)\)")
SWAP = {"sum": ["max"], "max": ["sum", "min"], "min": ["max"]}
RANGE = re.compile(r"\[(\d+)(ms|s|m|h|d)\]|\boffset\s+(\d+)(ms|s|m|h|d)\b")
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True)
class Mutant:
    group: str
    rule: str  # alert or record name
    kind: str
    change: str
    expr: str
    for_: str | None
    equivalent: bool = False


def duration(ms: int) -> str:
    for unit in ("d", "h", "m", "s"):
        if ms % UNIT_MS[unit] == 0:
            return f"{ms // UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.12g}"


AGGREGATED = re.compile(r"\b(?:sum|max|min) by \(([^)]*)\) \((?:(?:rate|increase)\()?[A-Za-z_:][\w:]*\{[^{}]*\}"
                        r"(?:\[\w+\])?\)?\)")
METRIC_SELECTOR = re.compile(r"[A-Za-z_:][\w:]*\{[^{}]*\}")
NOT_ONE_TO_ONE = re.compile(r"\b(or|unless|on|ignoring|group_left|group_right|absent|absent_over_time|without)\b")


def matched_away(expr: str, dropped: str) -> bool:
    """The dropped matcher's extra groups find no partner in a one-to-one match (module docstring)."""
    label = re.match(r"\s*(\w+)", dropped).group(1)  # type: ignore[union-attr]
    clauses = AGGREGATED.findall(expr)
    if not clauses or len(clauses) != len(METRIC_SELECTOR.findall(expr)):
        return False
    if NOT_ONE_TO_ONE.search(re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)):
        return False
    if not all(label in [x.strip() for x in by.split(",")] for by in clauses):
        return False
    keeping = [body for body in SELECTOR.findall(expr) if dropped.strip() in [x.group(0).strip() for x in MATCHER.finditer(body)]]
    return len(keeping) >= 2  # the mutated selector and at least one more that keeps it


SET_OP = re.compile(r"\s+(and|unless)(?:\s+on\s*\(([^)]*)\))?\s+")  # no on(): matched on every label


def _carries(segment: str, dropped: str, label: str) -> bool:
    """Every element the segment yields has `label` passing the matcher: each of its selectors carries the
    matcher and its aggregations (or absent(), for an equality) keep the label."""
    bodies = SELECTOR.findall(segment)
    if not bodies or not all(dropped.strip() in [x.group(0).strip() for x in MATCHER.finditer(b)] for b in bodies):
        return False
    if "absent(" in segment and not re.match(r"\s*\w+\s*=\s*\"", dropped):
        return False
    by_lists = re.findall(r"\b(?:sum|max|min|count|avg) by \(([^)]*)\)", segment)
    return all(label in [x.strip() for x in by.split(",")] for by in by_lists) and " without " not in segment


def set_matched_away(expr: str, at: int, dropped: str) -> bool:
    """`X and on (L) Y`, `X unless on (L) Y`: the matcher on L dropped in Y, where X's elements all pass it,
    or in X of an `and`, where Y's all pass it. An element that fails the matcher cannot share its L with
    one that passes, so the extra elements match nothing: `and` drops them, `unless` removes nothing more."""
    label = re.match(r"\s*(\w+)", dropped).group(1)  # type: ignore[union-attr]
    if re.search(r"\bor\b", re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)):
        return False
    parts = SET_OP.split(expr)  # segment, op, on-list, segment, ...
    if len(parts) < 4:
        return False
    starts, position = [], 0
    for i, part in enumerate(parts):
        if part is None:  # an `and` without on(): every label, L included
            continue
        position = expr.index(part, position)
        if i % 3 == 0:
            starts.append(position)
        position += len(part)
    k = max(i for i, start in enumerate(starts) if start <= at)
    segments, ops = parts[0::3], parts[1::3]
    ons = [[x.strip() for x in o.split(",")] if o is not None else [label] for o in parts[2::3]]
    if k >= 1:
        return label in ons[k - 1] and _carries(segments[0], dropped, label)
    return ops[0] == "and" and label in ons[0] and "absent(" not in segments[0] and _carries(segments[1], dropped, label)


def expr_mutants(expr: str) -> list[tuple[str, str, str, bool]]:
    """(kind, change, mutated expression, equivalent) for one expression."""
    out: list[tuple[str, str, str, bool]] = []
    for m in COMPARISON.finditer(expr):
        op, value = m.group(1), float(m.group(2))
        for other in OPPOSITE[op]:
            out.append(("operator", f"{op} -> {other}", expr[:m.start(1)] + other + expr[m.end(1):], False))
        for moved in ([value * 1.1, value * 0.9] if value else [1.0]):
            out.append(("threshold", f"{m.group(2)} -> {number(moved)}",
                        expr[:m.start(2)] + number(moved) + expr[m.end(2):], False))
    for m in SELECTOR.finditer(expr):
        matchers = [x.group(0) for x in MATCHER.finditer(m.group(1))]
        for i, dropped in enumerate(matchers):
            kept = ", ".join(x.strip() for j, x in enumerate(matchers) if j != i)
            same = matched_away(expr, dropped) or set_matched_away(expr, m.start(), dropped)
            out.append(("selector", f"drop {dropped.strip()}", expr[:m.start()] + "{" + kept + "}" + expr[m.end():],
                        same))
    for m in AGGREGATION.finditer(expr):
        for other in SWAP[m.group(1)]:
            out.append(("aggregation", f"{m.group(1)} -> {other}", expr[:m.start(1)] + other + expr[m.end(1):], False))
        labels = [x.strip() for x in m.group(2).split(",") if x.strip()]
        for i, label in enumerate(labels):
            if len(labels) > 1:
                kept = ", ".join(x for j, x in enumerate(labels) if j != i)
                out.append(("aggregation", f"by: drop {label}",
                            expr[:m.start(2)] + kept + expr[m.end(2):], False))
    for m in RANGE.finditer(expr):
        amount, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        ms = int(amount) * UNIT_MS[unit]
        for factor in (0.2, 3):
            new = duration(max(1000, int(ms * factor)))
            text = f"[{new}]" if m.group(1) else f"offset {new}"
            out.append(("window", f"{m.group(0)} -> {text}", expr[:m.start()] + text + expr[m.end():], False))
    return [mutant for mutant in out if mutant[2] != expr]


def _sides(expr: str, mutated: str) -> list[str]:
    """The `and`-joined comparison the mutant changed (the part of expr that differs)."""
    ours, theirs = expr.split(" and "), mutated.split(" and ")
    return [a for a, b in zip(ours, theirs, strict=False) if a != b] if len(ours) == len(theirs) else []


def never_equal(expr: str, change: str, records: dict[str, str]) -> bool:
    """`> T` turned `>= T` (or `<` and `<=`) where the left side is a recording rule `1 - X` and no double
    X gives 1 - X == T: for X in [0.5, 2] the subtraction is exact (Sterbenz), so 1 - X == T needs X == 1 - T
    exactly, which is no double when 1 - T is not one (T under 0.5); any other X gives 1 - X >= 0.5 or < 0.
    The two comparisons then agree on every input."""
    m = re.fullmatch(r"([A-Za-z_:][\w:]*)\{[^{}]*\} ([<>]=?) (" + NUMBER + r")", expr.strip())
    old, new = change.split(" -> ")
    if m is None or old != m.group(2) or {old, new} not in ({">", ">="}, {"<", "<="}):
        return False
    record = records.get(m.group(1), "")
    threshold = float(m.group(3))
    exact = Fraction(1) - Fraction(threshold)
    return record.startswith("1 - ") and 0 < threshold < 0.5 and Fraction(float(exact)) != exact


def mutants(rules: dict[str, Any]) -> list[Mutant]:
    found = []
    for group in rules["groups"]:
        records = {r["record"]: str(r["expr"]) for r in group["rules"] if "record" in r}
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            expr, for_ = str(rule["expr"]), rule.get("for")
            for kind, change, mutated, same in expr_mutants(expr):
                if kind == "operator" and not same:
                    same = any(never_equal(part, change, records) for part in _sides(expr, mutated))
                found.append(Mutant(group["name"], name, kind, change, mutated, for_, same))
            if "alert" in rule and for_:
                ms = sum(int(n) * UNIT_MS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d)", for_))
                found.append(Mutant(group["name"], name, "for", f"for {for_} -> {duration(2 * ms)}", expr,
                                    duration(2 * ms)))
                found.append(Mutant(group["name"], name, "for", f"for {for_} -> none", expr, None))
    return found


def _reads(expr: str, name: str) -> bool:
    return re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", expr) is not None


def run_mutant(mutant: Mutant, rules: dict[str, Any], tests: dict[str, Any], workdir: Path) -> bool:
    """True when promtool's tests of the alerts the mutant affects fail (the mutant is caught).

    The mutated group is cut down to what those tests can observe: the alerts the mutated rule is or feeds
    (an alert, or the alerts of its group that read a mutated recording rule) and the recording rules those
    alerts read. Every other rule is unchanged and its tests passed on the unmutated rules, so leaving them
    out changes no verdict; it only spares promtool evaluating them (the SLO group's 3-day windows)."""
    group = next(g for g in rules["groups"] if g["name"] == mutant.group)
    records = {r["record"]: str(r["expr"]) for r in group["rules"] if "record" in r}
    if mutant.rule in records:
        affected = {r["alert"] for r in group["rules"] if "alert" in r and _reads(str(r["expr"]), mutant.rule)}
    else:
        affected = {mutant.rule}
    changed = []
    for rule in group["rules"]:
        name = rule.get("alert") or rule.get("record")
        if "alert" in rule and name not in affected:
            continue
        if "record" in rule and name != mutant.rule and not any(
                _reads(str(r["expr"]), name) for r in group["rules"] if r.get("alert") in affected):
            continue
        rule = dict(rule)
        if name == mutant.rule:
            rule["expr"] = mutant.expr
            rule.pop("for", None)
            if mutant.for_:
                rule["for"] = mutant.for_
        changed.append(rule)
    selected = [t for t in tests["tests"]
                if any(check["alertname"] in affected for check in t.get("alert_rule_test", []))]
    if not selected:
        return False
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        Path(folder, "alerts.yaml").write_text(yaml.safe_dump({"groups": [{**group, "rules": changed}]}, sort_keys=False))
        Path(folder, "alerts_test.yaml").write_text(
            yaml.safe_dump({**tests, "rule_files": ["alerts.yaml"], "tests": selected}, sort_keys=False))
        result = subprocess.run(["promtool", "test", "rules", "alerts_test.yaml"], cwd=folder, capture_output=True,
                                timeout=600)
    return result.returncode != 0


def check(env: str, jobs: int, only: str = "") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="perfstack-mutation-") as tmp:
        out = Path(tmp) / env
        rendered = subprocess.run([sys.executable, "-m", "generators", "render", env, "--out", str(out)],
                                  cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if rendered.returncode != 0:
            raise SystemExit(f"render {env} failed: {rendered.stderr}")
        rules = yaml.safe_load((out / "prometheus/alerts.yaml").read_text())
        tests = yaml.safe_load((out / "prometheus/alerts_test.yaml").read_text())
        baseline = subprocess.run(["promtool", "test", "rules", "alerts_test.yaml"], cwd=out / "prometheus",
                                  capture_output=True, text=True)
        if baseline.returncode != 0:
            raise SystemExit(f"{env}: the unmutated proofs fail:\n{baseline.stdout[-2000:]}")
        every = [m for m in mutants(rules) if only in m.group or only == m.rule]
        found = [m for m in every if not m.equivalent]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            caught = list(pool.map(lambda m: run_mutant(m, rules, tests, Path(tmp)), found))
    by_kind: dict[str, list[int]] = {}
    for mutant, hit in zip(found, caught, strict=True):
        entry = by_kind.setdefault(mutant.kind, [0, 0])
        entry[0] += hit
        entry[1] += 1
    survivors = [f"{m.group} {m.rule}: {m.kind} {m.change}" for m, hit in zip(found, caught, strict=True) if not hit]
    equivalent = [f"{m.group} {m.rule}: {m.kind} {m.change}" for m in every if m.equivalent]
    return {"environment": env, "mutants": len(found), "caught": sum(caught),
            "share": sum(caught) / len(found) if found else 1.0,
            "by_kind": {k: {"caught": v[0], "mutants": v[1]} for k, v in sorted(by_kind.items())},
            "equivalent": len(equivalent), "survivors": survivors, "equivalent_mutants": equivalent}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="*", default=["dev", "prod"])
    parser.add_argument("--min", type=float, default=0.0, help="exit 1 when a share caught is below this")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--show-survivors", action="store_true")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--only", default="", help="only the mutants of this rule, or of groups naming this")
    args = parser.parse_args()
    results = [check(env, args.jobs, args.only) for env in args.envs]
    if args.format == "json":
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            kinds = ", ".join(f"{k} {v['caught']}/{v['mutants']}" for k, v in r["by_kind"].items())
            print(f"{r['environment']}: {r['caught']} of {r['mutants']} mutants caught ({r['share']:.1%}); {kinds}; "
                  f"{r['equivalent']} equivalent (matched away, not counted)")
            if args.show_survivors:
                for line in r["survivors"]:
                    print(f"  survived: {line}")
                for line in r["equivalent_mutants"]:
                    print(f"  equivalent: {line}")
    counts = Counter(r["share"] >= args.min for r in results)
    return 0 if not counts[False] else 1


if __name__ == "__main__":
    sys.exit(main())

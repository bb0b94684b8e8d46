"""Index advice proven with hypothetical indexes (HypoPG): perfstack never creates a real index.

For the slowest statements in pg_stat_statements (at most MAX_STATEMENTS, by total time), in the caller's
read-only transaction:

1. EXPLAIN each statement's generic plan (`EXPLAIN (GENERIC_PLAN)` on PostgreSQL 16+; before that a
   PREPARE with plan_cache_mode = force_generic_plan and NULL parameters) and note its cost.
2. From the plan's scans, collect the columns each table is filtered on: equality, range, IS [NOT] NULL,
   and sort keys. Candidates per table: each column alone; the equality columns together in selectivity
   order (most distinct values first, from pg_stats), then one range or sort column; and a partial index
   (`WHERE col IS NULL`) where a constant predicate of that form is part of the filter.
3. Create each candidate with hypopg_create_index, EXPLAIN again, hypopg_reset.
4. Greedily recommend the candidate that saves the most cost (calls x cost saved) over the statements it
   cuts by at least MIN_COST_REDUCTION (statements planned under MIN_STATEMENT_COST are cheap already and
   not analysed); a smaller index wins when it saves within 5 % of the best. Each
   recommendation carries CREATE INDEX CONCURRENTLY, the statements, the summed cost before and after, and
   HypoPG's estimate of the index's size. The whole analysis stops at MAX_EXPLAINS or TIME_BUDGET_S.

A simple UPDATE or DELETE is planned as the SELECT that scans the same rows (`as_select`), so the role
needs no write privilege. Statement texts are only planned (EXPLAIN without ANALYZE, one statement per protocol message), inside
the read-only transaction, so nothing they say is executed.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..units import format_size_human
from .model import Finding, IndexAdvice

MAX_STATEMENTS = 10
MAX_CANDIDATES_PER_TABLE = 8
MAX_EXPLAINS = 400
TIME_BUDGET_S = 30.0  # the whole index analysis; each EXPLAIN is also under the 5 s statement timeout
MIN_COST_REDUCTION = 0.5  # an index is recommended only when it halves a statement's planned cost
MIN_STATEMENT_COST = 100.0  # a statement whose plan costs less is cheap already: no index is worth its writes
SIMILAR_BENEFIT = 0.95
_PARAM = re.compile(r"\$(\d+)")
_OPERATOR = r"(=|<>|<=|>=|<|>|~~|IS NOT NULL|IS NULL)"
_COLUMN = re.compile(r"\(*(?:(\w+)\.)?\"?(\w+)\"?\)*(?:::[\w ]+?)?\)*\s*" + _OPERATOR)
SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")


@dataclass
class Usage:
    """How the statements filter one table."""

    schema: str
    table: str
    equality: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    sorts: list[str] = field(default_factory=list)
    null_predicates: list[str] = field(default_factory=list)  # "shipped_at IS NULL"


@dataclass(frozen=True)
class Candidate:
    schema: str
    table: str
    columns: tuple[str, ...]
    predicate: str | None = None

    def definition(self) -> str:
        cols = ", ".join(_quote(c) for c in self.columns)
        where = f" WHERE {self.predicate}" if self.predicate else ""
        return f"ON {_quote(self.schema)}.{_quote(self.table)} ({cols}){where}"

    def name(self) -> str:
        base = f"{self.table}_{'_'.join(self.columns)}" + ("_partial" if self.predicate else "") + "_idx"
        return base[:63]


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


_UPDATE = re.compile(r"^\s*UPDATE\s+(?:ONLY\s+)?(?P<table>[\w.\"]+)(?:\s+(?:AS\s+)?(?P<alias>(?!SET\b)\w+))?\s+"
                     r"SET\s+(?P<set>.+?)\s+WHERE\s+(?P<where>.+)$", re.IGNORECASE | re.DOTALL)
_DELETE = re.compile(r"^\s*DELETE\s+FROM\s+(?:ONLY\s+)?(?P<table>[\w.\"]+)(?:\s+(?:AS\s+)?(?P<alias>(?!WHERE\b)\w+))?"
                     r"\s+WHERE\s+(?P<where>.+)$", re.IGNORECASE | re.DOTALL)
_NOT_SIMPLE = re.compile(r"\b(RETURNING|USING|FROM|WITH|CURRENT\s+OF)\b", re.IGNORECASE)


def _split_top_level(text: str) -> list[str] | None:
    """Split at commas outside parentheses and quotes; None when the text is not balanced."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return None
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth or quote:
        return None
    return [*parts, text[start:]]


def as_select(query: str) -> str | None:
    """A SELECT that scans like a simple UPDATE or DELETE (same table, WHERE and parameters), so a role
    with only SELECT can plan it; None for anything else (RETURNING, USING, FROM, WHERE CURRENT OF).
    UPDATE's assignments become comparisons in the select list (`col = expr`), so each parameter keeps
    a type PostgreSQL can infer."""
    for pattern in (_UPDATE, _DELETE):
        match = pattern.match(query.strip().rstrip(";"))
        if not match:
            continue
        where = match["where"]
        assignments = match.groupdict().get("set")
        if _NOT_SIMPLE.search(where) or (assignments and _NOT_SIMPLE.search(assignments)):
            return None
        columns = "1"
        if assignments:
            items = _split_top_level(assignments)
            if not items or any("=" not in item for item in items):
                return None
            columns = ", ".join(f"({item.strip()})" for item in items)
        alias = f" {match['alias']}" if match["alias"] else ""
        return f"SELECT {columns} FROM {match['table']}{alias} WHERE {where}"
    return None


class Explainer:
    """EXPLAIN of a statement's generic plan, each in a savepoint so a failure leaves the transaction usable."""

    def __init__(self, cur: Any, version: int, budget: int = MAX_EXPLAINS, seconds: float = TIME_BUDGET_S):
        self.cur = cur
        self.version = version
        self.budget = budget
        self.deadline = time.monotonic() + seconds

    @property
    def exhausted(self) -> bool:
        return self.budget <= 0 or time.monotonic() > self.deadline

    def plan(self, query: str) -> dict[str, Any] | None:
        if self.exhausted:
            return None
        self.budget -= 1
        conn = self.cur.connection
        params = max((int(n) for n in _PARAM.findall(query)), default=0)
        text = query.strip().rstrip(";")
        if re.match(r"\s*(UPDATE|DELETE)\b", text, re.IGNORECASE):
            text = as_select(text) or text  # planned as its SELECT: the role needs no write privilege
        try:
            with conn.transaction():
                if self.version >= 160000:
                    self.cur.execute("EXPLAIN (GENERIC_PLAN, VERBOSE, FORMAT JSON) " + text)
                    return dict(self.cur.fetchone()[0][0]["Plan"])
                self.cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                self.cur.execute("PREPARE perfstack_advise AS " + text)
                args = "(" + ", ".join(["NULL"] * params) + ")" if params else ""
                self.cur.execute(f"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE perfstack_advise{args}")
                return dict(self.cur.fetchone()[0][0]["Plan"])
        except Exception:  # noqa: BLE001 - a statement that cannot be planned here (privileges, temp tables) is skipped
            return None
        finally:
            if self.version < 160000:
                with conn.transaction():
                    self.cur.execute("DEALLOCATE ALL")


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []) or []:
        out.extend(_nodes(child))
    return out


def usages(plan: dict[str, Any]) -> list[Usage]:
    """The filtered columns of each scanned table in a plan."""
    found: dict[tuple[str, str], Usage] = {}
    for node in _nodes(plan):
        sort_keys = node.get("Sort Key") if node.get("Node Type") == "Sort" else None
        if sort_keys:
            scans = [n for n in _nodes(node)[1:] if n.get("Node Type") in SCANS]
            if len(scans) == 1:
                scan = scans[0]
                usage = found.setdefault((scan.get("Schema", "public"), scan["Relation Name"]),
                                         Usage(scan.get("Schema", "public"), scan["Relation Name"]))
                for key in sort_keys:
                    match = re.fullmatch(r"(?:(\w+)\.)?\"?(\w+)\"?(?: DESC| ASC)?", key.strip())
                    if match and (match[1] in (None, scan.get("Alias"))) and match[2] not in usage.sorts:
                        usage.sorts.append(match[2])
        if node.get("Node Type") not in SCANS or "Relation Name" not in node:
            continue
        key = (node.get("Schema", "public"), node["Relation Name"])
        usage = found.setdefault(key, Usage(*key))
        alias = node.get("Alias")
        for text in (node.get("Filter"), node.get("Index Cond"), node.get("Recheck Cond")):
            for qualifier, column, operator in _COLUMN.findall(text or ""):
                if qualifier and qualifier != alias:
                    continue
                if operator == "=" and column not in usage.equality:
                    usage.equality.append(column)
                elif operator in ("<", ">", "<=", ">=") and column not in usage.ranges:
                    usage.ranges.append(column)
                elif operator in ("IS NULL", "IS NOT NULL"):
                    predicate = f"{_quote(column)} {operator}"
                    if predicate not in usage.null_predicates:
                        usage.null_predicates.append(predicate)
    return list(found.values())


def _distinct(cur: Any, schema: str, table: str) -> tuple[set[str], dict[str, float]]:
    cur.execute("SELECT a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
                "AND a.attnum > 0 AND NOT a.attisdropped", (schema, table))
    columns = {r[0] for r in cur.fetchall()}
    cur.execute("SELECT s.attname, s.n_distinct, c.reltuples FROM pg_catalog.pg_stats s "
                "JOIN pg_catalog.pg_namespace n ON n.nspname = s.schemaname "
                "JOIN pg_catalog.pg_class c ON c.relname = s.tablename AND c.relnamespace = n.oid "
                "WHERE s.schemaname = %s AND s.tablename = %s", (schema, table))
    distinct = {}
    for name, n_distinct, reltuples in cur.fetchall():
        n = float(n_distinct or 0)
        distinct[name] = -n * max(float(reltuples or 0), 1) if n < 0 else n
    return columns, distinct


def candidates(usage: Usage, columns: set[str], distinct: dict[str, float]) -> list[Candidate]:
    equality = sorted((c for c in usage.equality if c in columns), key=lambda c: -distinct.get(c, 0))
    ranges = [c for c in usage.ranges if c in columns and c not in equality]
    sorts = [c for c in usage.sorts if c in columns and c not in equality]
    predicates = [p for p in usage.null_predicates if p.split(" ")[0].strip('"') in columns]
    out: list[Candidate] = []

    def add(cols: tuple[str, ...], predicate: str | None = None) -> None:
        candidate = Candidate(usage.schema, usage.table, cols, predicate)
        if cols and candidate not in out:
            out.append(candidate)

    for column in [*equality, *ranges, *sorts]:
        add((column,))
    tail = (ranges or sorts)[:1]
    if len(equality) + len(tail) >= 2:
        add((*equality[:3], *tail))
    if equality and sorts and sorts[0] not in tail:
        add((*equality[:3], sorts[0]))
    for predicate in predicates:
        base = tuple((*equality[:3], *tail)) or tuple(c for c in [*ranges, *sorts][:1])
        if base:
            add(base, predicate)
            if len(base) > 1:
                add(base[:1], predicate)
    return out[:MAX_CANDIDATES_PER_TABLE]


def _hypopg_schema(cur: Any) -> str | None:
    cur.execute("SELECT extnamespace::regnamespace::text FROM pg_catalog.pg_extension WHERE extname = 'hypopg'")
    row = cur.fetchone()
    return row[0] if row else None


def advise(cur: Any, stats: Any, explain_budget: int | None = None) -> tuple[list[Finding], list[str]]:
    """Recommended indexes for the slowest statements, as findings; notes on what could not be analysed."""
    notes: list[str] = []
    hypopg = _hypopg_schema(cur)
    if hypopg is None:
        return [], ["HypoPG is not installed in this database (CREATE EXTENSION hypopg; Debian: "
                    "postgresql-NN-hypopg): no index advice"]
    schema = '"' + hypopg.replace('"', '""') + '"'
    explainer = Explainer(cur, stats.version, explain_budget or MAX_EXPLAINS)
    slowest = sorted(stats.statements, key=lambda s: -s.total_ms)[:MAX_STATEMENTS]
    baseline: dict[int, float] = {}
    by_table: dict[tuple[str, str], list[Any]] = {}
    table_usage: dict[tuple[str, str], Usage] = {}
    for statement in slowest:
        plan = explainer.plan(statement.query)
        if plan is None:
            notes.append(f"could not EXPLAIN (skipped): {statement.short}")
            continue
        if float(plan["Total Cost"]) < MIN_STATEMENT_COST:
            continue
        baseline[statement.queryid] = float(plan["Total Cost"])
        for usage in usages(plan):
            key = (usage.schema, usage.table)
            by_table.setdefault(key, []).append(statement)
            merged = table_usage.setdefault(key, Usage(*key))
            for attr in ("equality", "ranges", "sorts", "null_predicates"):
                for item in getattr(usage, attr):
                    if item not in getattr(merged, attr):
                        getattr(merged, attr).append(item)
    # cost[candidate][queryid] with that one hypothetical index in place
    costs: dict[Candidate, dict[int, float]] = {}
    sizes: dict[Candidate, int] = {}
    for key, usage in table_usage.items():
        columns, distinct = _distinct(cur, *key)
        for candidate in candidates(usage, columns, distinct):
            cur.execute(f"SELECT {schema}.hypopg_reset()")
            try:
                with cur.connection.transaction():
                    cur.execute(f"SELECT indexrelid FROM {schema}.hypopg_create_index(%s)",
                                ("CREATE INDEX " + candidate.definition(),))
                    oid = cur.fetchone()[0]
                    cur.execute(f"SELECT {schema}.hypopg_relation_size(%s)", (oid,))
                    sizes[candidate] = int(cur.fetchone()[0])
            except Exception as exc:  # noqa: BLE001 - an index HypoPG cannot model is not advised
                notes.append(f"HypoPG refused {candidate.definition()}: {str(exc).strip().splitlines()[0]}")
                continue
            costs[candidate] = {}
            for statement in by_table[key]:
                plan = explainer.plan(statement.query)
                if plan is not None:
                    costs[candidate][statement.queryid] = float(plan["Total Cost"])
    cur.execute(f"SELECT {schema}.hypopg_reset()")
    if explainer.exhausted:
        notes.append(f"index advice stopped at its bound ({MAX_EXPLAINS} EXPLAINs or {TIME_BUDGET_S:g} s): "
                     "the statements it did not reach got no index advice")
    return choose(slowest, baseline, costs, sizes), notes


def choose(statements: list[Any], baseline: dict[int, float], costs: dict[Candidate, dict[int, float]],
           sizes: dict[Candidate, int]) -> list[Finding]:
    calls = {s.queryid: max(1, s.calls) for s in statements}
    text = {s.queryid: s.short for s in statements}
    open_ = set(baseline)
    findings = []
    while open_:
        scored = []
        for candidate, per in costs.items():
            helped = [q for q, cost in per.items()
                      if q in open_ and baseline[q] > 0 and 1 - cost / baseline[q] >= MIN_COST_REDUCTION]
            if helped:
                benefit = sum(calls[q] * (baseline[q] - per[q]) for q in helped)
                scored.append((benefit, candidate, helped))
        if not scored:
            break
        best = max(b for b, _, _ in scored)
        near = [s for s in scored if s[0] >= SIMILAR_BENEFIT * best]
        benefit, candidate, helped = min(near, key=lambda s: (sizes.get(s[1], 0), len(s[1].columns), s[1].name()))
        before = sum(baseline[q] for q in helped)
        after = sum(costs[candidate][q] for q in helped)
        sql = f"CREATE INDEX CONCURRENTLY {_quote(candidate.name())} {candidate.definition()};"
        advice = IndexAdvice("create", f"{candidate.schema}.{candidate.table}", sql, sizes.get(candidate, 0),
                             tuple(text[q] for q in helped), round(before, 2), round(after, 2),
                             index=candidate.definition(), why=f"cost {before:.0f} -> {after:.0f}")
        findings.append(Finding(
            "postgres", "missing_index", f"{candidate.schema}.{candidate.table}",
            f"an index {candidate.definition()} (about {format_size_human(advice.size_bytes)}) cuts the planned "
            f"cost of {len(helped)} statement(s) from {before:.0f} to {after:.0f} ({advice.reduction:.1%} less)",
            {"statements": list(advice.statements), "cost_before": advice.cost_before, "cost_after": advice.cost_after,
             "size_bytes": advice.size_bytes, "calls": sum(calls[q] for q in helped)},
            sql=[sql], index=advice))
        open_ -= set(helped)
    return findings

"""The proofs' shape-built cases catch the mistakes each was built for (issue 13, requirement 6), one mutant
of the committed prod rules at a time, run through scripts/mutation_check.py's own runner with the real
promtool (only the mutated rule's group and tests: seconds each). The whole check is the soak test
(tests/test_alerts_mutation.py); these are the cases a careless edit of promtool.py or burn.py would lose.

Plus the equivalence the check declares for `>` vs `>=` on `1 - X`, tested against real doubles."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from fractions import Fraction
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from .conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")

_spec = importlib.util.spec_from_file_location("mutation_check", REPO / "scripts" / "mutation_check.py")
assert _spec and _spec.loader
check = importlib.util.module_from_spec(_spec)
sys.modules["mutation_check"] = check
_spec.loader.exec_module(check)

FOLDER = REPO / "rendered" / "prod" / "prometheus"


def _rendered() -> tuple[dict[str, Any], dict[str, Any]]:
    return (yaml.safe_load((FOLDER / "alerts.yaml").read_text()),
            yaml.safe_load((FOLDER / "alerts_test.yaml").read_text()))


def _mutant(rules: dict[str, Any], name: str, old: str, new: str, nth: int) -> Any:
    for group in rules["groups"]:
        for rule in group["rules"]:
            if (rule.get("alert") or rule.get("record")) == name:
                expr = str(rule["expr"])
                at = -1
                for _ in range(nth + 1):
                    at = expr.index(old, at + 1)
                mutated = expr[:at] + new + expr[at + len(old):]
                return check.Mutant(group["name"], name, "test", f"{old} -> {new}", mutated, rule.get("for"))
    raise AssertionError(f"{name} is not rendered")


CASES = [
    # burn rates: one window at the threshold while the other burns
    ("ApiAvailabilityBurnRate1d", " > ", " >= ", 0),  # the long side
    ("ApiAvailabilityBurnRate1d", " > ", " >= ", 1),  # the short side
    ("ApiAvailabilityBurnRate6h", " > 0.", " > 0.0", 1),  # the short side's threshold ten times lower
    ("ApiLatencyBurnRate3d", " > 0.", " > 0.0", 0),
    # a max per bucket of a fast and a slow instance stays fast
    ("ApiLatencyHigh", "sum by", "max by", 0),
    # healthy in halves over two instances: a max of the fast requests halves them
    ("perfstack:api_slow_requests:ratio_rate1h", "sum by", "max by", 0),
    # far on the healthy side, then just past: a shorter window fires too soon
    ("ApiErrorRateHigh", "[5m]", "[1m]", 0),
    ("ApiErrorRateHigh", "[5m]", "[1m]", 1),
    # decoys in the firing test: the numerator lets another cache's hits in
    ("QueryCacheHitRatioLow", 'cache="query", ', "", 0),
    # one job waiting fires; an empty queue whose pool scaled to zero does not
    ("WorkerDefaultNoConsumers", "> 0", "> 1", 0),
    ("WorkerDefaultNoConsumers", "> 0", ">= 0", 0),
    # the queue wait proved 2% either side
    ("WorkerDefaultQueueWaitHigh", "> 300", "> 330", 0),
    # a rate 1% past its threshold: one moved up 5% never fires
    ("RedisEvictionsHigh", "> 8.33333333333", "> 8.75", 0),
    # the app's own target: its job matcher dropped, another job's up 0 fires it
    ("ApiScrapeFailing", ', job="api"', "", 0),
]


@pytest.mark.parametrize(("name", "old", "new", "nth"), CASES, ids=[f"{c[0]}:{c[1]}->{c[2]}#{c[3]}" for c in CASES])
def test_shape_built_cases_catch_the_mutant(name: str, old: str, new: str, nth: int, tmp_path: Any) -> None:
    rules, tests = _rendered()
    mutant = _mutant(rules, name, old, new, nth)
    assert check.run_mutant(mutant, rules, tests, tmp_path), f"{name}: {old!r} -> {new!r} survived"


def test_the_unmutated_rule_passes_the_same_runner(tmp_path: Any) -> None:
    """The runner reports a mutant that changes nothing as surviving (so a caught one is a real failure)."""
    rules, tests = _rendered()
    same = _mutant(rules, "ApiAvailabilityBurnRate1d", " > ", " > ", 0)
    assert not check.run_mutant(same, rules, tests, tmp_path)


@given(st.floats(min_value=0.0, max_value=2.0, allow_nan=False))
def test_one_minus_x_never_equals_a_threshold_the_check_calls_equivalent(x: float) -> None:
    records = {"r": "1 - sum(a) / sum(b)"}
    for text in ("0.3", "0.15", "0.05", "0.1", "0.01"):
        if check.never_equal(f'r{{job="x"}} > {text}', "> -> >=", records):
            assert 1 - x != float(text)


def test_never_equal_refuses_thresholds_that_one_minus_x_can_reach() -> None:
    records = {"r": "1 - sum(a) / sum(b)", "plain": "sum(a) / sum(b)"}
    assert not check.never_equal('r{job="x"} > 0.25', "> -> >=", records)  # 1 - 0.75 == 0.25
    assert 1 - 0.75 == 0.25
    assert not check.never_equal('r{job="x"} > 0.72', "> -> >=", records)  # over 0.5: 1 - X may round onto it
    assert not check.never_equal('plain{job="x"} > 0.3', "> -> >=", records)  # not of the form 1 - X
    assert not check.never_equal('r{job="x"} > 0.3', "> -> <", records)  # not the boundary's two sides
    exact = Fraction(1) - Fraction(0.3)
    assert Fraction(float(exact)) != exact

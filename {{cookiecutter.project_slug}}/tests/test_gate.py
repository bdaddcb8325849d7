from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ml.config import GateSection
from ml.gate import decide

GATE = GateSection(primary_metric="roc_auc", max_regression=0.0, thresholds={"roc_auc": 0.9, "accuracy": 0.8})
GOOD = {"roc_auc": 0.97, "accuracy": 0.93, "f1": 0.9}


def test_first_model_is_judged_on_thresholds_alone() -> None:
    decision = decide(GOOD, None, GATE)
    assert decision.passed
    assert [c.name for c in decision.checks] == ["accuracy", "roc_auc"]


def test_a_threshold_miss_fails_and_says_which() -> None:
    decision = decide({**GOOD, "accuracy": 0.5}, None, GATE)
    assert not decision.passed
    assert decision.failures == ["accuracy = 0.5000, needs >= 0.8000"]


def test_worse_than_the_champion_fails_even_above_thresholds() -> None:
    decision = decide(GOOD, {**GOOD, "roc_auc": 0.99}, GATE, champion_version=4)
    assert not decision.passed
    assert decision.failures == ["roc_auc vs champion v4 = 0.9700, needs >= 0.9900"]


def test_equal_to_the_champion_passes() -> None:
    assert decide(GOOD, GOOD, GATE, champion_version=1).passed


def test_max_regression_is_a_tolerance() -> None:
    lenient = GATE.model_copy(update={"max_regression": 0.05})
    assert decide(GOOD, {**GOOD, "roc_auc": 0.99}, lenient, champion_version=1).passed


unit = st.floats(min_value=0.0, max_value=1.0)


@given(candidate=unit, champion=unit, accuracy=unit)
def test_the_gate_passes_exactly_when_every_rule_holds(candidate: float, champion: float, accuracy: float) -> None:
    decision = decide({"roc_auc": candidate, "accuracy": accuracy}, {"roc_auc": champion}, GATE, 1)
    expected = candidate >= 0.9 and accuracy >= 0.8 and candidate >= champion
    assert decision.passed is expected
    assert (not decision.failures) is expected

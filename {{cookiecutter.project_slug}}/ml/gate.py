"""The promotion gate: absolute thresholds, then no regression against the champion.

There is deliberately no switch that skips it. To ship a model that fails, change the
thresholds in mlops.toml, which leaves a reviewed diff behind. Each metric has a direction
(ml/tasks.py): a threshold on an error metric such as rmse is a maximum, on a score a minimum.
A champion of another schema (ml/schema.py's signature) is not comparable: that candidate starts
a new lineage and meets the thresholds only, which the decision says.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.config import GateSection
from ml.schema import Task
from ml.tasks import metric


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    required: float
    passed: bool
    higher_is_better: bool = True

    @property
    def relation(self) -> str:
        return ">=" if self.higher_is_better else "<="


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    checks: list[Check]
    note: str = ""

    @property
    def failures(self) -> list[str]:
        return [f"{c.name} = {c.value:.4f}, needs {c.relation} {c.required:.4f}" for c in self.checks if not c.passed]


def _check(name: str, value: float, required: float, higher_is_better: bool) -> Check:
    passed = value >= required if higher_is_better else value <= required
    return Check(name, value, required, passed, higher_is_better)


def decide(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    gate: GateSection,
    champion_version: int | None = None,
    task: Task = Task.BINARY,
    new_lineage: str = "",
) -> GateDecision:
    checks = [
        _check(name, candidate[name], limit, metric(task, name).higher_is_better)
        for name, limit in sorted(gate.thresholds.items())
    ]
    if champion is not None:
        name = gate.primary_metric
        higher = metric(task, name).higher_is_better
        # Re-evaluated on this run's test set, so the two numbers are comparable.
        required = champion[name] - gate.max_regression if higher else champion[name] + gate.max_regression
        label = f"{name} vs champion v{champion_version}" if champion_version else f"{name} vs champion"
        checks.append(_check(label, candidate[name], required, higher))
    return GateDecision(passed=all(c.passed for c in checks), checks=checks, note=new_lineage)

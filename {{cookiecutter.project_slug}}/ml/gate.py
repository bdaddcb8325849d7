"""The promotion gate: absolute thresholds, then no regression against the champion.

There is deliberately no switch that skips it. To ship a model that fails, change the
thresholds in mlops.toml, which leaves a reviewed diff behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.config import GateSection


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    required: float
    passed: bool


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    checks: list[Check]

    @property
    def failures(self) -> list[str]:
        return [f"{c.name} = {c.value:.4f}, needs >= {c.required:.4f}" for c in self.checks if not c.passed]


def decide(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    gate: GateSection,
    champion_version: int | None = None,
) -> GateDecision:
    checks = [
        Check(metric, candidate[metric], minimum, candidate[metric] >= minimum)
        for metric, minimum in sorted(gate.thresholds.items())
    ]
    if champion is not None:
        metric = gate.primary_metric
        # Re-evaluated on this run's test set, so the two numbers are comparable.
        required = champion[metric] - gate.max_regression
        label = f"{metric} vs champion v{champion_version}" if champion_version else f"{metric} vs champion"
        checks.append(Check(label, candidate[metric], required, candidate[metric] >= required))
    return GateDecision(passed=all(c.passed for c in checks), checks=checks)

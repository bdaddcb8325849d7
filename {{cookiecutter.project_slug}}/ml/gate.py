"""The promotion gate: absolute thresholds, no regression against the champion, a clear gain over a
simple baseline, thresholds on every slice, and at most a set disparity between groups.

There is deliberately no switch that skips it. To ship a model that fails, change the
thresholds in mlops.toml, which leaves a reviewed diff behind. Each metric has a direction
(ml/tasks.py): a threshold on an error metric such as rmse is a maximum, on a score a minimum.
A champion of another schema (ml/schema.py's signature) is not comparable: that candidate starts
a new lineage and meets the thresholds only, which the decision says.

A slice group with fewer test rows than its min_rows, or a metric the group cannot define (ROC AUC
on one class), is not judged: the decision lists it as such (Check.not_judged) instead of passing it
in silence, and it does not block the candidate, as the monitor treats a window too small to judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ml.config import GateSection, SliceSection
from ml.errors import PipelineError
from ml.schema import Task
from ml.tasks import metric


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None  # None when not judged
    required: float
    passed: bool
    higher_is_better: bool = True
    not_judged: str = ""  # why this check could not be made (too few rows, an undefined metric)

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

    @property
    def not_judged(self) -> list[str]:
        return [f"{c.name}: not judged, {c.not_judged}" for c in self.checks if c.not_judged]


def _check(name: str, value: float, required: float, higher_is_better: bool) -> Check:
    passed = value >= required if higher_is_better else value <= required
    return Check(name, value, required, passed, higher_is_better)


def _unjudged(name: str, required: float, higher_is_better: bool, reason: str) -> Check:
    return Check(name, None, required, True, higher_is_better, not_judged=reason)


def decide(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    gate: GateSection,
    champion_version: int | None = None,
    task: Task = Task.BINARY,
    new_lineage: str = "",
    report: dict[str, Any] | None = None,
) -> GateDecision:
    """The gate's checks; report is evaluation.json (its baselines and slices), when there is one."""
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
    report = report or {}
    checks += baseline_checks(candidate, report.get("baselines"), gate, task)
    checks += slice_checks(report.get("slices") or {}, gate, task)
    checks += fairness_checks(report.get("slices") or {}, gate)
    return GateDecision(passed=all(c.passed for c in checks), checks=checks, note=new_lineage)


def baseline_checks(
    candidate: dict[str, float], baselines: dict[str, Any] | None, gate: GateSection, task: Task
) -> list[Check]:
    """The candidate beats the simple baseline by min_gain_over_simple on the primary metric."""
    if not baselines:
        return []  # an evaluation from before baselines were measured
    name = gate.primary_metric
    higher = metric(task, name).higher_is_better
    simple = baselines["simple"]["metrics"][name]
    required = simple + gate.min_gain_over_simple if higher else simple - gate.min_gain_over_simple
    return [_check(f"{name} vs simple baseline", candidate[name], required, higher)]


def slice_checks(slices: dict[str, Any], gate: GateSection, task: Task) -> list[Check]:
    """Every group of every slice that can be judged meets its slice's thresholds."""
    checks = []
    for slice_name, spec in gate.slices.items():
        for group in _groups(slices, slice_name):
            for name, required in sorted(spec.thresholds.items()):
                higher = metric(task, name).higher_is_better
                label = f"{name} on {slice_name} = {group['group']}"
                reason = _why_not_judged(group, name, spec)
                checks.append(
                    _unjudged(label, required, higher, reason)
                    if reason
                    else _check(label, group["metrics"][name], required, higher)
                )
    return checks


def fairness_checks(slices: dict[str, Any], gate: GateSection) -> list[Check]:
    """The largest difference of each metric between the judged groups of each group slice.

    The difference between the best and the worst group, as fairlearn's MetricFrame.difference()
    gives it (tests compare the two), over the groups with enough rows.
    """
    checks = []
    for slice_name in gate.fairness.groups:
        spec = gate.slices[slice_name]
        for name in gate.fairness.metrics:
            label = f"{name} disparity across {slice_name}"
            values = [g["metrics"][name] for g in _groups(slices, slice_name) if not _why_not_judged(g, name, spec)]
            if len(values) < 2:
                reason = f"fewer than two groups with {spec.min_rows} rows or more"
                checks.append(_unjudged(label, gate.fairness.max_disparity, False, reason))
            else:
                checks.append(_check(label, max(values) - min(values), gate.fairness.max_disparity, False))
    return checks


def _groups(slices: dict[str, Any], slice_name: str) -> list[dict[str, Any]]:
    if slice_name not in slices:
        raise PipelineError(
            f"the evaluation has no slice {slice_name!r}: it was measured before [gate.slices] declared it. "
            "Run the evaluation again (make evaluate)."
        )
    groups: list[dict[str, Any]] = slices[slice_name]["groups"]
    return groups


def _why_not_judged(group: dict[str, Any], name: str, spec: SliceSection) -> str:
    if group["rows"] < spec.min_rows:
        return f"{group['rows']} test rows, fewer than min_rows = {spec.min_rows}"
    if group["metrics"].get(name) is None:
        return f"{name} is undefined on its {group['rows']} rows (one class only?)"
    return ""

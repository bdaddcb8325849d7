"""The run summary: a table for people and a JSON file for machines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ml import atomic, faults
from ml.errors import GateRejectedError

if TYPE_CHECKING:
    from ml.steps.evaluate import EvaluationResult

T = TypeVar("T")
TOP_FEATURES = 5  # the features the summary names; the report lists them all
STATUS_STYLE = {
    "ok": "green",
    "reused": "cyan",
    "skipped": "dim",
    "failed": "red",
    "rejected": "yellow",
    "interrupted": "yellow",
    "not run": "dim",
}


@dataclass
class StepRecord:
    name: str
    status: str
    seconds: float
    detail: str = ""


@dataclass
class Summary:
    env: str
    run_id: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f"))
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    status: str = "running"
    steps: list[StepRecord] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    champion: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    # The gate's checks, the baselines' metrics and the features' importance (ml/steps/evaluate.py).
    evaluation: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    # The estimator and its hyperparameters, and the data's hash: an MLflow run's params and tags.
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    # What became of the run in MLflow (ml/tracking.py): printed, not recorded.
    tracking: str = ""
    _clock: float = field(default_factory=time.perf_counter, repr=False)
    _running: str | None = field(default=None, repr=False)

    def step(self, name: str, action: Callable[[], T], detail: Callable[[T], str] = lambda _: "") -> T:
        started = time.perf_counter()
        self._running = name
        try:
            faults.at("before", name)
            result = action()
            faults.at("after", name)
        except BaseException as exc:
            status = (
                "rejected"
                if isinstance(exc, GateRejectedError)
                else "interrupted"
                if isinstance(exc, KeyboardInterrupt)
                else "failed"
            )
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            self.steps.append(StepRecord(name, status, time.perf_counter() - started, reason))
            raise
        finally:
            self._running = None
        self.steps.append(StepRecord(name, "ok", time.perf_counter() - started, detail(result)))
        return result

    def failed_step(self) -> str | None:
        """The step that was running when the run stopped, if one was."""
        failed = [record.name for record in self.steps if record.status in ("failed", "interrupted")]
        return failed[-1] if failed else self._running

    def evaluated(self, result: EvaluationResult) -> None:
        """What the evaluation measured and the gate decided, for the table and summary.json."""
        self.metrics = result.metrics
        if result.champion_metrics is not None:
            self.champion = {"version": result.champion_version, "metrics": result.champion_metrics}
        self.paths["report"] = result.report_dir
        self.evaluation = {
            "checks": result.checks,
            "baselines": result.baselines,
            "importance": result.importance,
            "no_contribution": result.no_contribution,
        }

    def mark(self, name: str, status: str, detail: str = "") -> None:
        self.steps.append(StepRecord(name, status, 0.0, detail))

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._clock

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "env": self.env,
            "status": self.status,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "steps": [
                {"name": s.name, "status": s.status, "seconds": round(s.seconds, 3), "detail": s.detail}
                for s in self.steps
            ],
            "metrics": self.metrics,
            "champion": self.champion,
            "model": self.model,
            "paths": self.paths,
            "evaluation": self.evaluation,
            "error": self.error,
            "params": self.params,
            "data": self.data,
            "failed_step": self.failed_step() if self.status in ("failed", "interrupted") else None,
        }

    def write(self, state_dir: Path) -> Path:
        text = json.dumps(self.to_json(), indent=2)
        atomic.write_text(state_dir / "runs" / f"{self.run_id}.json", text)
        latest = state_dir / "summary.json"
        atomic.write_text(latest, text)
        self.paths.setdefault("summary", str(latest))
        return latest

    def render(self, console: Console) -> None:
        colour = {"succeeded": "green", "rejected": "yellow"}.get(self.status, "red")
        steps = Table(title=f"pipeline [{colour}]{self.status}[/] in {self.seconds:.1f}s (env {self.env})")
        steps.add_column("step")
        steps.add_column("status")
        steps.add_column("seconds", justify="right")
        steps.add_column("detail", overflow="fold")
        for record in self.steps:
            style = STATUS_STYLE.get(record.status, "")
            # Details quote messages such as "[data].source ...": shown literally, never as rich markup.
            steps.add_row(record.name, f"[{style}]{record.status}[/]", f"{record.seconds:.2f}", escape(record.detail))
        console.print(steps)
        if self.metrics:
            console.print(self._metrics_table())
        if self.evaluation.get("checks"):
            console.print(self._checks_table())
        if self.evaluation.get("importance"):
            console.print(self._importance_line(), highlight=False)
        facts = Table(show_header=False, title="model")
        for key, value in self.model.items():
            facts.add_row(key, escape(str(value)))
        console.print(facts)
        # Paths and URLs on lines of their own, never wrapped or cut: they are copied and opened.
        console.print("[bold]where things are[/]")
        for key, value in self.paths.items():
            console.print(f"  {key}: {escape(_shown(value))}", soft_wrap=True, highlight=False)
        if self.tracking:
            console.print(f"  tracking: {escape(self.tracking)}", soft_wrap=True, highlight=False)

    def _metrics_table(self) -> Table:
        metrics = Table(title="metrics (held-out test set)")
        metrics.add_column("metric")
        columns: list[tuple[str, dict[str, float]]] = [("candidate", self.metrics)]
        if self.champion.get("metrics"):
            columns.append((f"champion v{self.champion.get('version')}", self.champion["metrics"]))
        baselines = self.evaluation.get("baselines") or {}
        columns += [(f"{role} baseline", baselines[role]) for role in ("simple", "trivial") if role in baselines]
        for title, _ in columns:
            metrics.add_column(title, justify="right")
        for name in sorted(self.metrics):
            metrics.add_row(name, *(f"{values.get(name, float('nan')):.4f}" for _, values in columns))
        return metrics

    def _checks_table(self) -> Table:
        checks = Table(title="gate")
        for column in ("check", "value", "required", "result"):
            checks.add_column(column, justify="right" if column in ("value", "required") else "left")
        for check in self.evaluation["checks"]:
            relation = ">=" if check.get("higher_is_better", True) else "<="
            if check.get("not_judged"):
                value, result = "-", f"[yellow]not judged[/]: {escape(check['not_judged'])}"
            else:
                value, result = f"{check['value']:.4f}", "[green]pass[/]" if check["passed"] else "[red]fail[/]"
            checks.add_row(escape(check["name"]), value, f"{relation} {check['required']:.4f}", result)
        return checks

    def _importance_line(self) -> str:
        ranked = self.evaluation["importance"]
        top = ", ".join(f"{item['feature']} {item['mean']:+.4f}" for item in ranked[:TOP_FEATURES])
        line = f"relies most on (drop in the primary metric when shuffled): {top}"
        idle = self.evaluation.get("no_contribution") or []
        if idle:
            line += (
                f"\n{len(idle)} of {len(ranked)} features change nothing beyond noise when shuffled alone "
                "(unused, or a correlated feature stands in for them): see importance.png in the report"
            )
        return escape(line)


def _shown(value: str) -> str:
    """A path under the working directory, relative to it; anything else (a URL, elsewhere) as it is."""
    try:
        return str(Path(value).resolve().relative_to(Path.cwd().resolve())) if value.startswith("/") else value
    except ValueError:
        return value

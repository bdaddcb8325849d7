"""The run summary: a table for people and a JSON file for machines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ml import atomic, faults
from ml.errors import GateRejectedError

T = TypeVar("T")
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
    error: str = ""
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
            "error": self.error,
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
            metrics = Table(title="metrics (held-out test set)")
            metrics.add_column("metric")
            metrics.add_column("candidate", justify="right")
            champion_metrics = self.champion.get("metrics") or {}
            if champion_metrics:
                metrics.add_column(f"champion v{self.champion.get('version')}", justify="right")
            for name, value in sorted(self.metrics.items()):
                row = [name, f"{value:.4f}"]
                if champion_metrics:
                    row.append(f"{champion_metrics.get(name, float('nan')):.4f}")
                metrics.add_row(*row)
            console.print(metrics)
        facts = Table(show_header=False, title="where things are")
        for key, value in [*self.model.items(), *self.paths.items()]:
            facts.add_row(key, escape(str(value)))
        console.print(facts)

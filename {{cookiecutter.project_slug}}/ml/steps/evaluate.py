"""Evaluate step: score candidate and champion on the same test set, plot, apply the gate."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from ml import gate, lineage, names, schema
from ml.backends.base import ProcessingSpec
from ml.config import PROJECT_ROOT
from ml.context import Context
from ml.errors import PipelineError
from ml.schema import Task
from ml.steps.data import DataResult
from ml.steps.train import TrainResult

EVALUATION_JSON = "evaluation/evaluation.json"


@dataclass(frozen=True)
class EvaluationResult:
    job_name: str
    evaluation_uri: str
    metrics: dict[str, float]
    champion_version: int | None
    champion_metrics: dict[str, float] | None
    passed: bool
    checks: list[dict[str, Any]]
    report_dir: str
    new_lineage: str = ""  # why the champion was not compared (another schema), if it was not
    reused_version: int | None = None  # an unchanged model: its registered evaluation stands (ml/reuse.py)
    # What a reviewer asks next (ml/evaluate.py measures, ml/gate.py judges): each baseline's metrics,
    # the features ranked by permutation importance, those that contribute nothing, and the slice
    # groups and disparities that could not be judged.
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    importance: list[dict[str, Any]] = field(default_factory=list)
    no_contribution: list[str] = field(default_factory=list)
    not_judged: list[str] = field(default_factory=list)


def run(ctx: Context, data: DataResult, trained: TrainResult) -> EvaluationResult:
    config = ctx.config
    backends = ctx.backends
    champion = backends.registry.champion()
    inputs = {"model": trained.model_uri, "test": data.test_uri}
    new_lineage = ""
    if champion is not None and champion.package.lineage.get("schema_signature") != data.schema_signature:
        # Another label, task, class list or feature set: the champion cannot score this test set,
        # and its numbers would not be comparable if it could. The candidate starts a new lineage.
        new_lineage = (
            f"the data's schema differs from champion v{champion.version}'s (label, task, classes or features "
            f"changed): a new lineage, so the candidate meets [gate.thresholds] only, with no comparison"
        )
        ctx.console.print(f"[yellow]new lineage:[/] {escape(new_lineage)}")
        champion = None
    if champion is not None:
        if not backends.artifacts.exists(champion.package.model_uri):
            raise PipelineError(
                f"champion v{champion.version}'s model {champion.package.model_uri} is missing, "
                "so the candidate cannot be compared with it. Restore the artifact store."
            )
        inputs["champion"] = champion.package.model_uri
    inputs["train"] = data.train_uri  # the baselines are fitted on the candidate's own training split
    inputs["judging"] = judging_input(ctx)
    spec = ProcessingSpec(
        job_name=names.job_name(config.project.resource_prefix, config.env, "eval"),
        entry_point=PROJECT_ROOT / "ml" / "evaluate.py",
        source_files=lineage.model_code_files(),
        inputs=inputs,
        outputs=("evaluation",),
        arguments=("--label", schema.for_config(config).label),
        max_runtime_seconds=config.train.max_runtime_seconds,
    )
    with ctx.progress(f"evaluation job {spec.job_name}"):
        result = backends.jobs.process(spec)
    evaluation_uri = result.outputs[EVALUATION_JSON]
    report_dir = config.state_dir / "reports" / spec.job_name
    with tempfile.TemporaryDirectory() as scratch:
        report = json.loads(backends.artifacts.get(evaluation_uri, Path(scratch) / "e.json").read_text())
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    # Drawn beside the steps that follow (matplotlib is slow to import); ctx waits before the run ends.
    ctx.in_background(
        "evaluation plots",
        "ml.plots",
        ["evaluation", str(report_dir / "evaluation.json"), str(report_dir)],
        log=report_dir / "plots.log",
    )
    explain_in_background(ctx, data, trained, report_dir)

    candidate_metrics = report["candidate"]["metrics"]
    champion_metrics = report["champion"]["metrics"] if report["champion"] else None
    decision = gate.decide(
        candidate_metrics,
        champion_metrics,
        config.gate,
        champion.version if champion else None,
        task=Task(data.task),
        new_lineage=new_lineage,
        report=report,
    )
    importance = report.get("importance") or {}
    return EvaluationResult(
        job_name=spec.job_name,
        evaluation_uri=evaluation_uri,
        metrics=candidate_metrics,
        champion_version=champion.version if champion else None,
        champion_metrics=champion_metrics,
        passed=decision.passed,
        checks=[asdict(check) for check in decision.checks],
        report_dir=str(report_dir),
        new_lineage=new_lineage,
        baselines={role: part["metrics"] for role, part in (report.get("baselines") or {}).items()},
        importance=importance.get("features", []),
        no_contribution=importance.get("no_contribution", []),
        not_judged=decision.not_judged,
    )


def explain_in_background(ctx: Context, data: DataResult, trained: TrainResult, report_dir: Path) -> None:
    """SHAP values of the candidate on the test set (ml/explain.py), when the explain group is installed:
    drawn beside the next steps, like the plots. The inputs are copied in first, so it needs no backend."""
    from ml import explain

    if not explain.available():
        return
    inputs = report_dir / explain.INPUTS
    model = ctx.backends.artifacts.get(trained.model_uri, inputs / "model.tar.gz")
    test = ctx.backends.artifacts.get(data.test_uri, inputs / "test.csv")
    ctx.in_background("SHAP explanations", "ml.explain", [str(model), str(test), str(report_dir)],
                      log=report_dir / "explain.log")  # fmt: skip


def judging_input(ctx: Context) -> str:
    """What the evaluation job measures beyond the metrics, as a file in its own input channel.

    A file rather than container arguments: SageMaker caps each argument at 256 characters, and a
    few slices' bins and values pass that.
    """
    gate_config = ctx.config.gate
    settings = {
        "primary_metric": gate_config.primary_metric,
        "slices": {
            name: {"column": spec.column, "bins": list(spec.bins), "values": list(spec.values)}
            for name, spec in gate_config.slices.items()
        },
    }
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "judging.json"
        path.write_text(json.dumps(settings, indent=2, sort_keys=True))
        return ctx.backends.artifacts.put(path)

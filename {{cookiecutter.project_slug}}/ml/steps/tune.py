"""Tune: search [tune.space] on the training split as a processing job, optionally keep the best.

`make tune` runs ml/tune.py with the processing-job layout, on this machine or (MLOPS_ENV=dev)
as a SageMaker processing job in the same scikit-learn container, so the search and the training
it informs run on the same libraries. The search scores with the gate's primary metric by
cross-validation on the training split; the test set stays unseen until evaluation.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml import atomic, names, schema
from ml.backends.base import ProcessingSpec
from ml.config import PROJECT_ROOT, load_config
from ml.context import Context
from ml.errors import ConfigError
from ml.steps import train as train_step
from ml.steps.data import DataResult

ENTRY_POINT = PROJECT_ROOT / "ml" / "tune.py"
SOURCES = tuple(PROJECT_ROOT / "ml" / name for name in ("tune.py", "train.py", "evaluate.py"))
RESULT = "tuning/tuning.json"


@dataclass(frozen=True)
class TuneResult:
    job_name: str
    best: dict[str, Any]
    metric: str
    best_score: float
    report: str
    written: bool


def settings(ctx: Context, label: str) -> dict[str, Any]:
    """What the job searches: the estimator, [train]'s other parameters held fixed, and the space."""
    from ml import estimator

    config = ctx.config
    if not config.tune.space:
        raise ConfigError(
            f"[tune.space] in {config.path} is empty: list the hyperparameters to try and their values, e.g. "
            "max_depth = [4, 8, 16]"
        )
    values = train_step.hyperparameters(ctx, label)  # [train] checked as before a training job
    fixed = {k: v for k, v in values.items() if k not in ("estimator", "label") and k not in config.tune.space}
    estimator.check_space(config.train.estimator, fixed, config.tune.space, config.path)
    return {
        "estimator": config.train.estimator,
        "fixed": {name: estimator.parse_value(value) for name, value in fixed.items()},
        "space": {name: list(choices) for name, choices in config.tune.space.items()},
        "metric": config.gate.primary_metric,
        "cv": config.tune.cv,
        "factor": config.tune.factor,
        "candidates": config.tune.candidates,
        "seed": config.tune.seed,
    }


def run(ctx: Context, data: DataResult, write: bool = False) -> TuneResult:
    config = ctx.config
    searched = settings(ctx, schema.for_config(config).label)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "tuning.json"
        path.write_text(json.dumps(searched, indent=2, sort_keys=True))
        tuning_uri = ctx.backends.artifacts.put(path)
    spec = ProcessingSpec(
        job_name=names.job_name(config.project.resource_prefix, config.env, "tune"),
        entry_point=ENTRY_POINT,
        source_files=SOURCES,
        inputs={"train": data.train_uri, "schema": data.schema_uri, "tuning": tuning_uri},
        outputs=("tuning",),
        arguments=("--n-jobs", str(os.cpu_count() or 1)),
        max_runtime_seconds=config.train.max_runtime_seconds,
    )
    with ctx.progress(f"tuning job {spec.job_name}"):
        result = ctx.backends.jobs.process(spec)
    report_dir = config.state_dir / "tuning" / spec.job_name
    with tempfile.TemporaryDirectory() as scratch:
        report = json.loads(ctx.backends.artifacts.get(result.outputs[RESULT], Path(scratch) / "t.json").read_text())
    atomic.write_text(report_dir / "tuning.json", json.dumps(report, indent=2))
    best = {name: report["best"][name] for name in config.tune.space}
    if write:
        write_hyperparameters(config.path, best)
    return TuneResult(spec.job_name, best, report["metric"], report["best_score"], str(report_dir), write)


def write_hyperparameters(path: Path, values: dict[str, Any]) -> None:
    """Set these keys in [train.hyperparameters], keeping every comment; refuse to leave a file that
    does not load (the old text stays)."""
    import tomli_w

    text = path.read_text(encoding="utf-8")
    header = re.search(r"^\[train\.hyperparameters\]\n", text, re.MULTILINE)
    if header is None:
        raise ConfigError(f"{path} has no [train.hyperparameters] table to write the tuned values into: add one")
    end = re.search(r"^\[", text[header.end() :], re.MULTILINE)
    body_end = header.end() + (end.start() if end else len(text) - header.end())
    body = text[header.end() : body_end]
    for name, value in values.items():
        line = tomli_w.dumps({name: "none" if value is None else value}).strip()
        pattern = re.compile(rf"^{re.escape(name)}\s*=.*$", re.MULTILINE)
        found = pattern.search(body)
        body = body[: found.start()] + line + body[found.end() :] if found else _append(body, line)
    updated = text[: header.end()] + body + text[body_end:]
    candidate = path.with_name(f".{path.name}.tuned")
    candidate.write_text(updated, encoding="utf-8")
    try:
        load_config(candidate)
    except ConfigError as error:
        candidate.unlink()
        raise ConfigError(f"the tuned values would make {path} invalid, so it was left as it was: {error}") from None
    candidate.unlink()
    atomic.write_text(path, updated)


def _append(body: str, line: str) -> str:
    """After the table's last key, before the blank lines that separate it from the next table."""
    kept = body.rstrip("\n")
    return f"{kept}\n{line}" + body[len(kept) :] if kept else f"{line}\n{body}"

"""Staleness: how fast a model decays on this data, as a processing job (ml/staleness.py).

`make staleness` validates the whole data set against the schema, orders its rows by
[staleness].order_by (oldest first), cuts them into [staleness].windows windows and hands them to
the job, locally or (MLOPS_ENV=dev) in SageMaker's scikit-learn container. Nothing is registered;
the report is written under .mlops/staleness/. Every setting the data cannot meet is refused here,
before a job starts, naming the key and the fix.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml import atomic, data_source, names, schema
from ml.backends.base import ProcessingSpec
from ml.config import PROJECT_ROOT
from ml.context import Context
from ml.errors import ConfigError, DataValidationError
from ml.steps import train as train_step
from ml.steps.data import load_frame

if TYPE_CHECKING:
    import pandas as pd

ENTRY_POINT = PROJECT_ROOT / "ml" / "staleness.py"
SOURCES = tuple(PROJECT_ROOT / "ml" / name for name in ("staleness.py", "train.py", "evaluate.py"))
RESULT = "staleness/staleness.json"


@dataclass(frozen=True)
class StalenessResult:
    job_name: str
    report: Path  # staleness.json: every score, the scores by age and each window's span


def windows(rows: int, count: int, min_rows: int, path: Path) -> list[tuple[int, int]]:
    """[start, end) row positions of count consecutive windows of (nearly) equal size."""
    if rows // count < min_rows:
        most = max(rows // min_rows, 0)
        raise ConfigError(
            f"[staleness].windows = {count} in {path} cuts {rows} rows into windows of {rows // count}, fewer "
            f"than min_rows = {min_rows}: set windows to at most {most}"
            + ("" if most >= 3 else " (at least 3 are needed: add rows, or lower min_rows)")
        )
    edges = [round(i * rows / count) for i in range(count + 1)]
    return list(itertools.pairwise(edges))


def ordered(ctx: Context) -> tuple[pd.DataFrame, list[str]]:
    """The data set's schema columns, validated and oldest first, and each row's time as text."""

    from ml import validation

    config = ctx.config
    contract = schema.for_config(config)
    raw = data_source.local_copy(ctx, data_source.resolve(ctx))
    frame = load_frame(raw)
    validation.validate(frame, str(raw), contract)
    column = config.staleness.order_by
    if not column:
        return frame[[*contract.names, contract.label]].reset_index(drop=True), [
            f"row {i + 1}" for i in range(len(frame))
        ]
    if column not in frame.columns:
        raise ConfigError(
            f"[staleness].order_by = {column!r} in {config.path} is not a column of {config.data.source} "
            f"(it has {', '.join(map(str, frame.columns[:8]))}{'...' if len(frame.columns) > 8 else ''}): name the "
            'column that says when each row happened, or set order_by = "" for the file\'s row order'
        )
    values = frame[column]
    if values.isna().any():
        first = int(values.isna().to_numpy().nonzero()[0][0])
        raise DataValidationError(
            f"[staleness].order_by column {column!r} of {config.data.source} is empty on {int(values.isna().sum())} "
            f"row(s), the first at data row {first + 1}: fill in when those rows happened, or drop them"
        )
    keys = _sort_keys(values, column, config.data.source)
    # By position, not by index label (a Parquet file may repeat its index); ties keep the file's order.
    order = np.argsort(keys.to_numpy(), kind="stable")
    kept = frame.iloc[order][[*contract.names, contract.label]].reset_index(drop=True)
    return kept, [str(v) for v in values.iloc[order]]


def _sort_keys(values: pd.Series[Any], column: str, source: str) -> pd.Series[Any]:
    """Numbers as numbers, else ISO 8601 times; refuse what is neither.

    ISO 8601 only: a format guessed per value would read 01/02/2024 as 2 January and 13/01/2024 as
    13 January, and order the rows wrongly without a word. A time without a zone is taken as UTC.
    """
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce")
    if not numbers.isna().any():
        return numbers
    dates = pd.to_datetime(values.astype(str), errors="coerce", format="ISO8601", utc=True)
    if not dates.isna().any():
        return dates
    mostly_numbers = numbers.notna().sum() >= dates.notna().sum()
    bad = values[numbers.isna() if mostly_numbers else dates.isna()].iloc[0]
    raise DataValidationError(
        f"[staleness].order_by column {column!r} of {source} holds {bad!r}, which is neither a number nor an "
        "ISO 8601 time: order by a column of numbers, or of times such as 2024-03-01 or 2024-03-01T09:30:00+01:00"
    )


def _check_classes(frame: pd.DataFrame, spans: list[tuple[int, int]], label: str, path: Path) -> None:
    """A window must hold two classes to be trained on: one class only teaches nothing."""
    for index, (start, end) in enumerate(spans[:-1]):
        present = frame[label].iloc[start:end].nunique()
        if present < 2:
            raise DataValidationError(
                f"staleness window {index + 1} (rows {start + 1} to {end}, in time order) holds one class only, so no "
                f"model can be trained on it: set fewer [staleness].windows in {path}, or check [staleness].order_by"
            )


def settings(ctx: Context, spans: list[tuple[int, int]]) -> dict[str, Any]:
    from ml import estimator

    config = ctx.config
    values = train_step.hyperparameters(ctx, schema.for_config(config).label)  # [train] checked as for training
    fixed = {k: estimator.parse_value(v) for k, v in values.items() if k not in ("estimator", "label")}
    return {"estimator": config.train.estimator, "hyperparameters": fixed, "metric": config.gate.primary_metric,
            "windows": [list(span) for span in spans]}  # fmt: skip


def run(ctx: Context) -> StalenessResult:
    config = ctx.config
    frame, times = ordered(ctx)
    spans = windows(len(frame), config.staleness.windows, config.staleness.min_rows, config.path)
    contract = schema.for_config(config)
    if contract.task.is_classification:
        _check_classes(frame, spans, contract.label, config.path)
    searched = settings(ctx, spans)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        (workdir / "settings.json").write_text(json.dumps(searched, indent=2, sort_keys=True))
        (workdir / "schema.json").write_text(contract.as_json())
        frame.to_csv(workdir / "staleness.csv", index=False)
        put = ctx.backends.artifacts.put
        inputs = {"staleness": put(workdir / "staleness.csv"), "schema": put(workdir / "schema.json"),
                  "settings": put(workdir / "settings.json")}  # fmt: skip
    spec = ProcessingSpec(
        job_name=names.job_name(config.project.resource_prefix, config.env, "stale"),
        entry_point=ENTRY_POINT,
        source_files=SOURCES,
        inputs=inputs,
        outputs=("staleness",),
        arguments=("--n-jobs", str(os.cpu_count() or 1)),
        max_runtime_seconds=config.train.max_runtime_seconds,
    )
    with ctx.progress(f"staleness job {spec.job_name}"):
        result = ctx.backends.jobs.process(spec)
    with tempfile.TemporaryDirectory() as scratch:
        report = json.loads(ctx.backends.artifacts.get(result.outputs[RESULT], Path(scratch) / "s.json").read_text())
    for window in report["windows"]:  # what the job cannot know: when each window's rows happened
        window["first"], window["last"] = times[window["start"]], times[window["end"] - 1]
    report["order_by"] = config.staleness.order_by
    path = config.state_dir / "staleness" / spec.job_name / "staleness.json"
    atomic.write_text(path, json.dumps(report, indent=2))
    return StalenessResult(spec.job_name, path)

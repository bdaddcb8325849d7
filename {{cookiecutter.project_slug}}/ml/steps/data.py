"""Data step: load the data set, validate it against the schema, split it, hash it.

An unchanged source (same bytes, same schema, same split settings, same code) reuses
the split validated last time, so a re-run does not even import pandas.
The split itself needs no scikit-learn: the orchestrator stays light (see stratified_split).
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ml import atomic, data_source, schema
from ml.context import Context
from ml.errors import DataValidationError
from ml.hashing import combine, file_sha256, json_sha256

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class DataResult:
    source: str
    data_hash: str
    split_hash: str
    train_uri: str
    test_uri: str
    rows: int
    train_rows: int
    test_rows: int
    class_counts: dict[str, int]
    ignored_columns: list[str]
    schema_uri: str = ""
    schema_signature: str = ""
    task: str = "binary"
    reused: bool = False


def source_path(source: str, root: Path) -> Path:
    """The data file [data].source names, relative to mlops.toml."""
    path = (root / source).resolve()
    if not path.is_file():
        raise DataValidationError(
            f"[data].source {source!r} does not exist (looked for {path}); fix the path in mlops.toml"
        )
    return path


def load_frame(path: Path) -> pd.DataFrame:
    """The data file as a frame: CSV, or Parquet (which needs pyarrow: `uv add pyarrow`)."""
    import pandas as pd

    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            parquet: pd.DataFrame = pd.read_parquet(path)
        except ImportError:
            raise DataValidationError(
                f"{path} is Parquet, which pandas reads with pyarrow: add it with `uv add pyarrow` "
                "(or save the data as CSV)"
            ) from None
        except (OSError, ValueError) as exc:
            raise DataValidationError(f"{path} is not a readable Parquet file: {exc}") from None
        return parquet
    try:
        frame: pd.DataFrame = pd.read_csv(path)
        return frame
    except pd.errors.EmptyDataError:
        raise DataValidationError(
            f"{path} is empty. Point [data].source in mlops.toml at a CSV with a header row and data rows."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"{path} is not a readable CSV file: {exc}") from None


def cache_key(ctx: Context) -> str:
    """Everything that determines the validated split, hashed without reading the data with pandas."""
    config = ctx.config
    identity = data_source.resolve(ctx).identity  # a file's hash, or its parts': follows the content
    contract = file_sha256(config.schema_path) if config.schema_path.is_file() else "no schema"
    schema_dir = Path(schema.__file__).parent
    code = [file_sha256(path) for path in (Path(__file__), schema_dir / "schema.py", schema_dir / "validation.py")]
    return json_sha256([identity, contract, config.data.model_dump(), code])


def cached(ctx: Context) -> DataResult | None:
    """The split validated before from the same inputs, if its files are still stored."""
    try:
        cache = ctx.config.state_dir / "cache" / "data" / f"{cache_key(ctx)}.json"
    except DataValidationError:
        return None  # the data step itself reports a missing source
    if not cache.exists():
        return None
    result = DataResult(**json.loads(cache.read_text()))
    artifacts = ctx.backends.artifacts
    return result if artifacts.exists(result.train_uri) and artifacts.exists(result.test_uri) else None


def run(ctx: Context) -> DataResult:
    from ml import tasks

    # The schema and the task-dependent settings are checked on every run, cached split or not.
    contract = schema.for_config(ctx.config)
    tasks.check_config(contract, ctx.config.gate, ctx.config.monitor, ctx.config.path)
    hit = cached(ctx)
    if hit is not None:
        ctx.console.print("[green]unchanged[/] data source: reusing the split validated before")
        return replace(hit, reused=True)
    key = cache_key(ctx)
    result = _validate_and_split(ctx)
    atomic.write_text(ctx.config.state_dir / "cache" / "data" / f"{key}.json", json.dumps(asdict(result)))
    return result


def stratified_split(labels: Sequence[object], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Row positions of the train and test sets, each label split in the same proportion.

    Deterministic for a seed, and written with the standard library so the orchestrator never
    imports scikit-learn (a second or more of start-up) for what is a shuffle per label.
    """
    rng = random.Random(seed)  # noqa: S311  # a reproducible split, not a secret
    by_label: dict[str, list[int]] = {}
    for position, label in enumerate(labels):
        by_label.setdefault(str(label), []).append(position)
    test: list[int] = []
    for label in sorted(by_label):
        positions = by_label[label]
        count = round(len(positions) * test_fraction)
        if count < 1 or count >= len(positions):
            raise DataValidationError(
                f"cannot split label {label!r} ({len(positions)} rows) with test_fraction={test_fraction}: "
                "each label needs rows in both the train and the test set. Add rows for that label, "
                "or change [data].test_fraction in mlops.toml."
            )
        rng.shuffle(positions)
        test += positions[:count]
    chosen = set(test)
    return [p for p in range(len(labels)) if p not in chosen], sorted(test)


def _validate_and_split(ctx: Context) -> DataResult:
    from ml import validation

    config = ctx.config
    contract = schema.for_config(config)
    raw = data_source.local_copy(ctx, data_source.resolve(ctx))  # a file, or a prefix's parts
    frame = load_frame(raw)
    report = validation.validate(frame, str(raw), contract)
    frame = frame[[*contract.names, contract.label]]
    # Classification splits each class in the same proportion; regression splits the rows at random.
    strata = frame[contract.label].tolist() if contract.task.is_classification else [""] * len(frame)
    train_rows, test_rows = stratified_split(strata, config.data.test_fraction, config.data.seed)
    train, test = frame.iloc[train_rows], frame.iloc[test_rows]
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        train_path, test_path, schema_path = workdir / "train.csv", workdir / "test.csv", workdir / "schema.json"
        train.to_csv(train_path, index=False)
        test.to_csv(test_path, index=False)
        schema_path.write_text(contract.as_json())
        return DataResult(
            source=config.data.source,
            data_hash=file_sha256(raw),
            # The schema is part of what the model is trained from (it decides how columns are encoded).
            split_hash=combine(file_sha256(train_path), file_sha256(test_path), file_sha256(schema_path)),
            train_uri=ctx.backends.artifacts.put(train_path),
            test_uri=ctx.backends.artifacts.put(test_path),
            schema_uri=ctx.backends.artifacts.put(schema_path),
            schema_signature=contract.signature(),
            task=str(contract.task),
            rows=report.rows,
            train_rows=len(train),
            test_rows=len(test),
            class_counts=dict(report.class_counts),
            ignored_columns=list(report.ignored_columns),
        )

"""Data step: load the data set, validate it against the schema, split it, hash it.

An unchanged source (same bytes, same schema, same split settings, same code) reuses
the split validated last time, so a re-run does not even import pandas.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ml import atomic, schema
from ml.context import Context
from ml.errors import DataValidationError
from ml.hashing import combine, file_sha256, json_sha256

if TYPE_CHECKING:
    import pandas as pd

BUILTIN_PREFIX = "builtin:"


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
    reused: bool = False


def builtin_breast_cancer() -> pd.DataFrame:
    """scikit-learn's bundled copy of the Wisconsin data, in this project's schema."""
    from sklearn.datasets import load_breast_cancer  # heavy; only needed on a cache miss

    bunch = load_breast_cancer(as_frame=True)
    frame: pd.DataFrame = bunch.data.copy()
    frame.columns = [name.replace(" ", "_") for name in frame.columns]
    # scikit-learn codes benign as 1; this project predicts the clinically relevant class.
    frame[schema.LABEL] = 1 - bunch.target.astype(int)
    return frame


BUILTINS = {"breast_cancer": builtin_breast_cancer}


def read_source(source: str, root: Path, workdir: Path) -> Path:
    """Materialise the source as a CSV file in workdir, so every source is hashed the same way."""
    if source.startswith(BUILTIN_PREFIX):
        name = source.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTINS:
            raise DataValidationError(
                f"[data].source {source!r} is unknown: use one of "
                f"{', '.join(BUILTIN_PREFIX + key for key in BUILTINS)} or a CSV path"
            )
        path = workdir / f"{name}.csv"
        BUILTINS[name]().to_csv(path, index=False)
        return path
    path = (root / source).resolve()
    if not path.is_file():
        raise DataValidationError(
            f"[data].source {source!r} does not exist (looked for {path}); fix the path in mlops.toml"
        )
    return path


def load_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

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
    source = config.data.source
    if source.startswith(BUILTIN_PREFIX):
        # A bundled data set is fixed by the version of the package that bundles it.
        identity = f"{source}@scikit-learn=={metadata.version('scikit-learn')}"
    else:
        path = (config.root / source).resolve()
        if not path.is_file():
            raise DataValidationError(
                f"[data].source {source!r} does not exist (looked for {path}); fix the path in mlops.toml"
            )
        identity = file_sha256(path)
    schema_dir = Path(schema.__file__).parent
    code = [file_sha256(path) for path in (Path(__file__), schema_dir / "schema.py", schema_dir / "validation.py")]
    return json_sha256([identity, config.data.model_dump(), code])


def run(ctx: Context) -> DataResult:
    key = cache_key(ctx)
    cache = ctx.config.state_dir / "cache" / "data" / f"{key}.json"
    if cache.exists():
        cached = DataResult(**json.loads(cache.read_text()))
        artifacts = ctx.backends.artifacts
        if artifacts.exists(cached.train_uri) and artifacts.exists(cached.test_uri):
            ctx.console.print("[green]unchanged[/] data source: reusing the split validated before")
            return replace(cached, reused=True)
    result = _validate_and_split(ctx)
    atomic.write_text(cache, json.dumps(asdict(result)))
    return result


def _validate_and_split(ctx: Context) -> DataResult:
    from sklearn.model_selection import train_test_split

    from ml import validation

    config = ctx.config
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        raw = read_source(config.data.source, config.root, workdir)
        frame = load_csv(raw)
        builtin = config.data.source.startswith(BUILTIN_PREFIX)
        report = validation.validate(frame, config.data.source if builtin else str(raw))
        columns = [*schema.FEATURES, schema.LABEL]
        frame = frame[columns].astype({schema.LABEL: int})
        try:
            train, test = train_test_split(
                frame,
                test_size=config.data.test_fraction,
                random_state=config.data.seed,
                stratify=frame[schema.LABEL],
            )
        except ValueError as exc:
            raise DataValidationError(
                f"cannot split {report.rows} rows with test_fraction={config.data.test_fraction}: "
                f"{exc}. Add rows for every label, or change [data].test_fraction."
            ) from None
        train_path, test_path = workdir / "train.csv", workdir / "test.csv"
        train.to_csv(train_path, index=False)
        test.to_csv(test_path, index=False)
        return DataResult(
            source=config.data.source,
            data_hash=file_sha256(raw),
            split_hash=combine(file_sha256(train_path), file_sha256(test_path)),
            train_uri=ctx.backends.artifacts.put(train_path),
            test_uri=ctx.backends.artifacts.put(test_path),
            rows=report.rows,
            train_rows=len(train),
            test_rows=len(test),
            class_counts={str(k): v for k, v in report.class_counts.items()},
            ignored_columns=list(report.ignored_columns),
        )

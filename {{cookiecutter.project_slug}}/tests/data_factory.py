"""Build valid and deliberately broken data sets for the tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml.steps.data import builtin_breast_cancer


def good_frame(rows: int = 120) -> pd.DataFrame:
    frame = builtin_breast_cancer()
    # Both labels, in a stable order, so the tests do not depend on sampling.
    halves = [frame[frame.malignant == label].head(rows // 2) for label in (1, 0)]
    return pd.concat(halves, ignore_index=True)


def write_csv(frame: pd.DataFrame, directory: Path, name: str = "data.csv") -> Path:
    path = directory / name
    frame.to_csv(path, index=False)
    return path

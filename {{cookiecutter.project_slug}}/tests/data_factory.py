"""Build valid and deliberately broken data sets for the tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml.config import load_config


def example_frame() -> pd.DataFrame:
    """The data set mlops.toml names, as the data step reads it."""
    config = load_config()
    return pd.read_csv(config.root / config.data.source)


def good_frame(rows: int = 120) -> pd.DataFrame:
    frame = example_frame()
    # Both labels, in a stable order, so the tests do not depend on sampling.
    halves = [frame[frame.malignant == label].head(rows // 2) for label in (1, 0)]
    return pd.concat(halves, ignore_index=True)


def write_csv(frame: pd.DataFrame, directory: Path, name: str = "data.csv") -> Path:
    path = directory / name
    frame.to_csv(path, index=False)
    return path

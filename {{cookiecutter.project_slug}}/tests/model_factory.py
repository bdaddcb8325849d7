"""Real models, trained in-process by the project's own train.py, packed as model.tar.gz.

For tests that need a servable model without running the pipeline: the same train() and
save_model() the training job calls, the same archive layout the job runner packs. By default
the model is the project's own ([train].estimator on its data and schema); a test can pass
another schema and frame (tests/data_factory.py) to get a model of another task.
"""

from __future__ import annotations

import argparse
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd

from ml import train
from ml.backends.base import ModelPackage, ModelVersion
from ml.backends.local_artifacts import LocalArtifactStore
from ml.config import load_config
from ml.schema import Schema, Task
from tests.data_factory import good_frame, project_schema, write_csv, write_schema

# Small and fast stand-ins by task, for a schema that is not the project's.
SMALL_ESTIMATORS = {
    Task.BINARY: "sklearn.ensemble.RandomForestClassifier",
    Task.MULTICLASS: "sklearn.ensemble.RandomForestClassifier",
    Task.REGRESSION: "sklearn.ensemble.RandomForestRegressor",
}


def training_parameters(estimator: str, **small: Any) -> dict[str, Any]:
    """The project's [train.hyperparameters] for its estimator, with the small settings it accepts."""
    config = load_config()
    params: dict[str, Any] = dict(config.train.hyperparameters) if estimator == config.train.estimator else {}
    accepted = train.build_estimator(estimator, {}, 1).get_params(deep=False)
    params |= {name: value for name, value in small.items() if name in accepted}
    return params


def model_tarball(
    directory: Path,
    n_estimators: int = 20,
    max_depth: int = 4,
    seed: int = 0,
    contract: Schema | None = None,
    frame: pd.DataFrame | None = None,
) -> Path:
    contract = contract or project_schema()
    frame = good_frame() if frame is None else frame
    estimator = load_config().train.estimator if contract == project_schema() else SMALL_ESTIMATORS[contract.task]
    write_csv(frame, directory / "train", "train.csv")
    write_schema(contract, directory / "schema")
    args = argparse.Namespace(
        train=str(directory / "train"), schema=str(directory / "schema"), label="", estimator=estimator, n_jobs=1,
    )  # fmt: skip
    params = training_parameters(estimator, n_estimators=n_estimators, max_depth=max_depth, random_state=seed)
    model_dir = directory / "model"
    train.save_model(train.train(args, params), model_dir)
    tarball = directory / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for item in sorted(model_dir.iterdir()):
            archive.add(item, arcname=item.name)
    return tarball


def approved_version(store: LocalArtifactStore, directory: Path, version: int, **training: Any) -> ModelVersion:
    """A model version as the registry would hand it to the endpoint (not registered anywhere)."""
    tarball = model_tarball(directory / f"v{version}", **training)
    evaluation = directory / f"v{version}" / "evaluation.json"
    evaluation.write_text("{}")
    package = ModelPackage(store.put(tarball), store.put(evaluation), f"fingerprint-{version}", "Approved", {}, {})
    return ModelVersion(version, "tests-local", "2026-01-01T00:00:00+00:00", package)

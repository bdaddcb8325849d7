"""Real models, trained in-process by the project's own train.py, packed as model.tar.gz.

For tests that need a servable model without running the pipeline: the same train() and
save_model() the training job calls, the same archive layout the job runner packs.
"""

from __future__ import annotations

import argparse
import tarfile
from pathlib import Path

from ml import schema, train
from ml.backends.base import ModelPackage, ModelVersion
from ml.backends.local_artifacts import LocalArtifactStore
from tests.data_factory import good_frame, write_csv


def model_tarball(directory: Path, n_estimators: int = 20, max_depth: int = 4, seed: int = 0) -> Path:
    channel = directory / "train"
    channel.mkdir(parents=True, exist_ok=True)
    write_csv(good_frame(), channel, "train.csv")
    args = argparse.Namespace(
        train=str(channel), label=schema.LABEL, n_estimators=n_estimators, max_depth=max_depth,
        min_samples_leaf=1, random_state=seed, n_jobs=1,
    )  # fmt: skip
    model_dir = directory / "model"
    train.save_model(train.train(args), schema.LABEL, model_dir)
    tarball = directory / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for item in sorted(model_dir.iterdir()):
            archive.add(item, arcname=item.name)
    return tarball


def approved_version(store: LocalArtifactStore, directory: Path, version: int, **training: int) -> ModelVersion:
    """A model version as the registry would hand it to the endpoint (not registered anywhere)."""
    tarball = model_tarball(directory / f"v{version}", **training)
    evaluation = directory / f"v{version}" / "evaluation.json"
    evaluation.write_text("{}")
    package = ModelPackage(store.put(tarball), store.put(evaluation), f"fingerprint-{version}", "Approved", {}, {})
    return ModelVersion(version, "tests-local", "2026-01-01T00:00:00+00:00", package)

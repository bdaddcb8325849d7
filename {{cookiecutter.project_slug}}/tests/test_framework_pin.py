"""What trains on a laptop must unpickle in the serving container: one scikit-learn version."""

from __future__ import annotations

import tomllib
from importlib import metadata

from ml.config import PROJECT_ROOT, load_config


def test_pyproject_pins_the_framework_version_named_in_mlops_toml() -> None:
    pinned = load_config().framework.scikit_learn
    dependencies = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"scikit-learn=={pinned}" in dependencies


def test_the_installed_framework_is_the_pinned_one() -> None:
    assert metadata.version("scikit-learn") == load_config().framework.scikit_learn


def test_the_container_tag_carries_the_same_major_and_minor() -> None:
    framework = load_config().framework
    major, minor, _ = framework.scikit_learn.split(".")
    assert framework.sagemaker_image_version.startswith(f"{major}.{minor}-")

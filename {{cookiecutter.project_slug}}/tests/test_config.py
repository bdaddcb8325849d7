from __future__ import annotations

from pathlib import Path

import pytest

from ml.config import load_config
from ml.errors import ConfigError
from tests.conftest import MakeConfig


def test_the_committed_config_loads() -> None:
    config = load_config()
    assert config.env == "local"
    assert config.gate.thresholds
    assert config.project.resource_prefix


@pytest.mark.parametrize(
    ("sections", "named"),
    [
        ({"gate": {"primary_metric": "Speed!"}}, "gate.primary_metric"),
        ({"gate": {"max_regression": -0.1}}, "gate.max_regression"),
        ({"train": {"estimator": "RandomForest"}}, "train.estimator"),
        ({"gate": {"thresholds": {}}}, "gate.thresholds"),
        ({"data": {"test_fraction": 0}}, "data.test_fraction"),
        ({"train": {"max_runtime_seconds": -1}}, "train.max_runtime_seconds"),
        ({"serve": {"host": "0.0.0.0"}}, "serve.host"),
        ({"train": {"epochs": 3}}, "train.epochs"),
        ({"project": {"aws_account_id": "12345"}}, "project.aws_account_id"),
        # The per-environment layout needs an account for each of staging and prod, all different.
        ({"project": {"account_layout": "per-environment", "accounts": {"staging": "234567890123"}}},
         "needs prod"),
        ({"project": {"account_layout": "per-environment",
                      "accounts": {"staging": "234567890123", "prod": "234567890123"}}}, "share accounts"),
        ({"project": {"account_layout": "single", "accounts": {"prod": "345678901234"}}}, "set account_layout"),
        ({"project": {"account_layout": "hub"}}, "project.account_layout"),
    ],
)  # fmt: skip
def test_a_bad_value_names_its_key(make_config: MakeConfig, sections: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as error:
        make_config(**sections)
    assert named in str(error.value)
    assert "mlops.toml" in str(error.value)


def test_an_unknown_environment_lists_the_valid_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_ENV", "qa")
    with pytest.raises(ConfigError, match="local, dev, staging, prod"):
        load_config()


def test_broken_toml_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "mlops.toml"
    bad.write_text("[project\nname = 1")
    monkeypatch.setenv("MLOPS_CONFIG", str(bad))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config()


def test_an_aws_environment_without_stack_outputs_says_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ml.backends import make_backends

    monkeypatch.setenv("MLOPS_ENV", "dev")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("MLOPS_STACK_OUTPUTS", raising=False)
    with pytest.raises(ConfigError, match="make stack-outputs MLOPS_ENV=dev"):
        make_backends(load_config())

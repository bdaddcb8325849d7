from __future__ import annotations

import pytest

from infra import preview_offline


def test_preview_prints_inventory_outputs_and_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert preview_offline.main(["staging", "--model-version", "4"]) == 0
    out = capsys.readouterr().out
    assert "stack staging" in out
    assert "aws:sagemaker/endpoint:Endpoint" in out
    assert "model_version=4" in out
    assert "offline policies" in out and "fail" not in out


def test_preview_without_a_model_shows_no_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert preview_offline.main(["dev"]) == 0
    out = capsys.readouterr().out
    assert "unset: no endpoint" in out
    assert "aws:sagemaker/endpoint:Endpoint" not in out

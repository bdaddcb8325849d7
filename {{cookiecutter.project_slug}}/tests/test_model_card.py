"""The model card of every registered version, checked against AWS's own schema for it.

sagemaker-core (AWS's SDK) ships the model card content schema as pydantic shapes
(sagemaker.core.shapes.model_card_shapes); a card that round-trips through them unchanged has no
field the schema lacks and no value it refuses. A model package model card is the simplified
schema: no model_package_details, and model_overview holds model_creator and model_artifact only.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sagemaker.core.shapes.model_card_shapes import ModelCardContent

from ml import model_card
from ml.config import load_config
from ml.errors import PipelineError

PACKAGE_OVERVIEW = {"model_creator", "model_artifact"}  # AWS's model package model card schema


def assert_in_aws_schema(content: dict[str, Any]) -> None:
    parsed = ModelCardContent.model_validate(content)
    assert parsed.model_dump(mode="json", exclude_unset=True) == content  # nothing dropped, nothing coerced
    assert set(content["model_overview"]) <= PACKAGE_OVERVIEW
    assert "model_package_details" not in content
    assert len(model_card.serialised(content)) <= model_card.CONTENT_LIMIT
    assert documented_limits_broken(content) == []


def documented_limits_broken(content: dict[str, Any]) -> list[str]:
    """The limits of AWS's model package model card schema (model-registry-details.html#model-card-schema)
    that sagemaker-core's shapes leave out: they would pass a card SageMaker refuses."""
    broken = []
    training = content.get("training_details", {})
    if "objective_function" in training:  # documented nested, generated flat: sent in neither shape
        broken.append("training_details.objective_function")
    if len(training.get("training_observations", "")) > 1024:
        broken.append("training_details.training_observations longer than 1024")
    for parameter in training.get("training_job_details", {}).get("hyper_parameters", []):
        if not 1 <= len(parameter["name"]) <= 255 or not 1 <= len(parameter["value"]) <= 255:
            broken.append(f"hyper_parameters {parameter['name'][:40]!r}: name and value must be 1 to 255 characters")
    for item in content.get("evaluation_details", []):
        for group in item.get("metric_groups", []):
            for metric in group["metric_data"]:
                if metric["type"] == "bar_chart" and any(len(x) > 63 for x in metric["x_axis_name"]):
                    broken.append(f"{group['name']}: a bar chart label longer than 63")
    return broken


REPORT: dict[str, Any] = {
    "candidate": {"metrics": {"roc_auc": 0.97, "accuracy": 0.93}, "rows": 142},
    "champion": {"metrics": {"roc_auc": 0.96, "accuracy": 0.92}, "rows": 142},
    "baselines": {
        "trivial": {"estimator": "DummyClassifier()", "metrics": {"roc_auc": 0.5, "accuracy": 0.63}},
        "simple": {"estimator": "LogisticRegression()", "metrics": {"roc_auc": 0.99, "accuracy": 0.97}},
    },
    "slices": {
        "size": {
            "column": "mean_radius",
            "groups": [
                {"group": "< 12", "rows": 36, "metrics": {"roc_auc": None, "accuracy": 1.0}},
                {"group": ">= 12", "rows": 106, "metrics": {"roc_auc": 0.95, "accuracy": 0.9}},
                {"group": "missing", "rows": 0, "metrics": {}},
            ],
        }
    },
    "importance": {
        "metric": "roc_auc",
        "features": [{"feature": "worst_area", "mean": 0.02, "std": 0.004}, {"feature": "id", "mean": 0.0, "std": 0.0}],
        "no_contribution": ["id"],
    },
}
CHECKS: list[dict[str, Any]] = [
    {"name": "roc_auc", "value": 0.97, "required": 0.95, "passed": True},
    {"name": "roc_auc vs simple baseline", "value": 0.97, "required": 0.965, "passed": True},
    {"name": "accuracy on size = missing", "value": None, "required": 0.85, "passed": True,
     "not_judged": "0 test rows, fewer than min_rows = 30"},
    {"name": "recall disparity across size", "value": 0.05, "required": 0.2, "passed": True, "higher_is_better": False},
]  # fmt: skip
LINEAGE = {"git_sha": "abc123", "git_dirty": "false", "data_source": "data/x.csv", "data_hash": "d" * 64,
           "split_hash": "s" * 64, "code_hash": "c" * 64, "fingerprint": "f" * 64, "task": "binary",
           "estimator": "sklearn.ensemble.RandomForestClassifier"}  # fmt: skip


def card(approval: str = "Approved", report: dict[str, Any] = REPORT) -> dict[str, Any]:
    return model_card.content(load_config(), report, CHECKS, LINEAGE, "s3://b/sha256/x/model.tar.gz", approval)


def test_the_card_is_in_the_model_package_card_schema() -> None:
    content = card()
    assert_in_aws_schema(content)
    assert content["additional_information"]["custom_details"] == LINEAGE
    groups = {g["name"] for g in content["evaluation_details"][0]["metric_groups"]}
    assert groups == {"candidate", "champion", "trivial baseline", "simple baseline", "slice size = < 12",
                      "slice size = >= 12", "slice size = missing", "feature importance"}  # fmt: skip


def test_long_feature_names_and_empty_values_stay_within_the_documented_limits() -> None:
    long_name = "a_feature_name_far_longer_than_the_sixty_three_characters_a_bar_chart_label_may_have"
    importance = {
        "metric": "roc_auc",
        "features": [{"feature": long_name, "mean": 0.1, "std": 0.0}],
        "no_contribution": [],
    }
    config = load_config()
    empty = config.model_copy(
        update={"train": config.train.model_copy(update={"hyperparameters": {"class_weight": ""}})}
    )
    content = model_card.content(
        empty, {**REPORT, "importance": importance}, CHECKS, LINEAGE, "s3://b/m.tar.gz", "Approved"
    )
    assert documented_limits_broken(content) == []
    chart = content["evaluation_details"][0]["metric_groups"][-1]["metric_data"][0]
    assert chart["x_axis_name"] == [long_name[:63]]


def test_a_metric_a_slice_cannot_define_is_left_out_not_sent_as_null() -> None:
    """The schema's SimpleMetric needs a value: None would be refused by SageMaker."""
    groups = {g["name"]: g for g in card()["evaluation_details"][0]["metric_groups"]}
    assert [m["name"] for m in groups["slice size = < 12"]["metric_data"]] == ["accuracy"]
    assert groups["slice size = missing"]["metric_data"] == []


def test_the_card_states_the_limits_the_evaluation_found() -> None:
    extra = card()["additional_information"]
    assert "No drop beyond noise when shuffled alone: id." in extra["caveats_and_recommendations"]
    assert "accuracy on size = missing (0 test rows" in extra["caveats_and_recommendations"]
    assert "recall disparity across size = 0.0500 (at most 0.2000: pass)" in extra["ethical_considerations"]


def test_a_rejected_version_says_which_checks_it_failed() -> None:
    checks: list[dict[str, Any]] = [
        *CHECKS[:1],
        {"name": "roc_auc vs simple baseline", "value": 0.97, "required": 0.99, "passed": False},
    ]
    content = model_card.content(load_config(), REPORT, checks, LINEAGE, "s3://b/m.tar.gz", "Rejected")
    assert content["evaluation_details"][0]["evaluation_observation"].startswith(
        "Gate Rejected: failed roc_auc vs simple baseline."
    )


def test_a_card_longer_than_sagemaker_takes_is_refused_with_the_fix() -> None:
    many = {f"s{i}": {"column": "c", "groups": [{"group": f"g{j}", "rows": 50, "metrics": {"accuracy": 0.9, "roc_auc": 0.9}}
                                               for j in range(60)]} for i in range(20)}  # fmt: skip
    with pytest.raises(PipelineError, match="more than SageMaker's 100000: declare fewer slices"):
        model_card.serialised(card(report={**REPORT, "slices": many}))


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_markdown_and_html_cards_hold_every_section(tmp_path: Path) -> None:
    text = model_card.markdown(card(), 7, "tumor-classifier-local", "Approved")
    for heading in ("# Model card: tumor-classifier-local v7", "## Intended use", "## Training", "## Evaluation",
                    "### Slices", "## Fairness", "## Limits", "## Lineage"):  # fmt: skip
        assert heading in text
    assert "| size = < 12 | 36 | n/a | 1.0000 |" in text
    page = _Page()
    page.feed(model_card.html(text, "Model card v7"))
    assert page.tags.count("table") == 5  # parameters, models, slices, importance, lineage
    assert "size = < 12" in "".join(page.text)  # "<" escaped in the page, read back as text
    assert "<script" not in model_card.html("<script>alert(1)</script>", "x")


def assert_card_beside(report_dir: Path, version: int, approval: str) -> None:
    """What the register step leaves beside the evaluation for a person (the e2e tests call this)."""
    text = (report_dir / "model_card.md").read_text()
    assert f" v{version}\n" in text and f"**Approval:** {approval}" in text
    assert (report_dir / "model_card.html").read_text().startswith("<!doctype html>")


def registered_card(journal: Path, version: int) -> dict[str, Any]:
    content: dict[str, Any] = json.loads((journal / "model-cards" / f"v{version}.json").read_text())
    return content

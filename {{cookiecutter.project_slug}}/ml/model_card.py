"""One model card per registered version: what it is, how it was trained and judged, its limits.

The content follows SageMaker's model package model card schema (a model card that lives inside
the model package: no model_package_details, and model_overview holds model_creator and
model_artifact only), so the same dictionary is the card the register step sends with
CreateModelPackage in AWS and the source of the Markdown and HTML files written beside the
evaluation locally (tests check it against sagemaker-core's ModelCardContent shapes).

What people know and the pipeline cannot (purpose, intended uses, caveats, owner, risk) comes
from [model_card] in mlops.toml; every number comes from the evaluation and the lineage.
"""

from __future__ import annotations

import json
from typing import Any

from ml import schema
from ml.config import Config
from ml.errors import PipelineError
from ml.tasks import metric

CONTENT_LIMIT = 100_000  # characters: ModelCardContent's maximum in SageMaker's API
NAME_LIMIT = 63  # a metric group's name, in the model card schema
TEXT_LIMIT = 2048  # the schema's longest free-text fields
OBSERVATIONS_LIMIT = 1024  # training_observations, a shorter one
AXIS_LIMIT = 63  # each bar chart label
IMPORTANCE_SHOWN = 30  # features in the importance chart; the evaluation keeps them all


def content(config: Config, report: dict[str, Any], checks: list[dict[str, Any]], lineage: dict[str, str],
            model_uri: str, approval: str) -> dict[str, Any]:  # fmt: skip
    """The card's content in the model package model card schema."""
    card = config.model_card
    gate = config.gate
    primary = metric(schema.for_config(config).task, gate.primary_metric)
    candidate = report["candidate"]
    failed = [c["name"] for c in checks if not c.get("passed", True)]
    unjudged = [f"{c['name']} ({c['not_judged']})" for c in checks if c.get("not_judged")]
    importance = report.get("importance") or {}
    idle = importance.get("no_contribution") or []
    caveats = [card.caveats] if card.caveats else []
    if idle:
        caveats.append(f"No drop beyond noise when shuffled alone: {', '.join(idle)}.")
    if unjudged:
        caveats.append(f"Not judged: {'; '.join(unjudged)}.")
    return {
        "model_overview": {"model_creator": card.owner or config.project.name, "model_artifact": [model_uri]},
        "intended_uses": {
            "purpose_of_model": _text(card.purpose or f"{lineage.get('task', '')} model of {config.project.name}"),
            "intended_uses": _text(card.intended_uses),
            "risk_rating": card.risk_rating,
        },
        # No objective_function: AWS documents it nested ({"function": {...}, "notes"}) while the schema
        # sagemaker-core generates from has it flat; the objective is stated in the observations instead.
        "training_details": {
            "training_observations": _text(
                f"{lineage.get('estimator', config.train.estimator)} on {lineage.get('data_source', '')}; "
                f"data {lineage.get('data_hash', '')[:12]}, split {lineage.get('split_hash', '')[:12]}, "
                f"code {lineage.get('code_hash', '')[:12]}, git {lineage.get('git_sha', '')[:12]}"
                + (" (dirty working tree)" if lineage.get("git_dirty") == "true" else "")
                + f". Judged on {'maximising' if primary.higher_is_better else 'minimising'} "
                f"{gate.primary_metric} on the held-out test set.",
                OBSERVATIONS_LIMIT,
            ),
            "training_job_details": {
                "training_datasets": [lineage.get("data_source", "")],
                "hyper_parameters": [
                    {"name": name[:255], "value": (str(value) or '""')[:255]}
                    for name, value in sorted(config.train.hyperparameters.items())
                ],
            },
        },
        "evaluation_details": [
            {
                "name": "held-out test set",
                "evaluation_observation": _text(
                    f"Gate {approval}: "
                    + (f"failed {', '.join(failed)}." if failed else "every check passed.")
                    + f" {candidate['rows']} test rows."
                ),
                "datasets": [lineage.get("data_source", "")],
                "metric_groups": _metric_groups(report),
            }
        ],
        "additional_information": {
            "ethical_considerations": _text(_fairness(report, checks)),
            "caveats_and_recommendations": _text(" ".join(caveats)),
            "custom_details": {key: str(value)[:1024] for key, value in sorted(lineage.items())},
        },
    }


def _metric_groups(report: dict[str, Any]) -> list[dict[str, Any]]:
    groups = [_simple("candidate", report["candidate"]["metrics"])]
    if report.get("champion"):
        groups.append(_simple("champion", report["champion"]["metrics"]))
    for role, part in (report.get("baselines") or {}).items():
        groups.append(_simple(f"{role} baseline", part["metrics"], part.get("estimator", "")))
    for name, part in (report.get("slices") or {}).items():
        for group in part["groups"]:
            label = f"slice {name} = {group['group']}"[:NAME_LIMIT]
            groups.append(_simple(label, group["metrics"], f"{group['rows']} test rows of {part['column']}"))
    ranked = (report.get("importance") or {}).get("features") or []
    if ranked:
        shown = ranked[:IMPORTANCE_SHOWN]
        chart = {
            "name": f"permutation importance ({report['importance']['metric']})"[:255],
            "type": "bar_chart",
            "value": [round(item["mean"], 6) for item in shown],
            "x_axis_name": [item["feature"][:AXIS_LIMIT] for item in shown],
            "y_axis_name": "drop when shuffled",
        }
        groups.append({"name": "feature importance", "metric_data": [chart]})
    return groups


def _simple(name: str, values: dict[str, float | None], notes: str = "") -> dict[str, Any]:
    data = [
        {"name": metric, "type": "number", "value": round(value, 6), **({"notes": notes[:1024]} if notes else {})}
        for metric, value in values.items()
        if value is not None
    ]
    return {"name": name[:NAME_LIMIT], "metric_data": data}


def _fairness(report: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    disparities = [c for c in checks if " disparity across " in c["name"]]
    if not disparities:
        return "No fairness groups are configured ([gate.fairness] in mlops.toml)."
    parts = [
        f"{c['name']}: not judged ({c['not_judged']})"
        if c.get("not_judged")
        else f"{c['name']} = {c['value']:.4f} (at most {c['required']:.4f}: {'pass' if c['passed'] else 'fail'})"
        for c in disparities
    ]
    return "Largest difference between the best and worst judged group: " + "; ".join(parts) + "."


def _text(value: str, limit: int = TEXT_LIMIT) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def serialised(card: dict[str, Any]) -> str:
    """The content as SageMaker takes it, refused here rather than by the API when it is too long."""
    text = json.dumps(card, sort_keys=True)
    if len(text) > CONTENT_LIMIT:
        raise PipelineError(
            f"the model card is {len(text)} characters, more than SageMaker's {CONTENT_LIMIT}: "
            "declare fewer slices or groups in [gate.slices]"
        )
    return text


def markdown(card: dict[str, Any], version: int, group: str, approval: str) -> str:
    """The card for people, in Markdown: what the SageMaker console shows, as a file."""
    overview = card["model_overview"]
    uses = card["intended_uses"]
    training = card["training_details"]
    evaluation = card["evaluation_details"][0]
    extra = card["additional_information"]
    lines = [
        f"# Model card: {group} v{version}",
        "",
        f"**Approval:** {approval} (the gate, at registration; promotion to staging and prod is a reviewed pull request).",
        f"**Owner:** {overview['model_creator']}  ",
        f"**Risk rating:** {uses['risk_rating']}  ",
        f"**Artifact:** `{overview['model_artifact'][0]}`",
        "",
        "## Intended use",
        "",
        uses["purpose_of_model"],
        "",
        uses["intended_uses"] or "_Not stated: set [model_card].intended_uses in mlops.toml._",
        "",
        "## Training",
        "",
        training["training_observations"],
        "",
        "| hyperparameter | value |",
        "|---|---|",
        *(f"| {p['name']} | {p['value']} |" for p in training["training_job_details"]["hyper_parameters"]),
        "",
        "## Evaluation",
        "",
        evaluation["evaluation_observation"],
        "",
    ]
    lines += _evaluation_tables(evaluation["metric_groups"])
    lines += [
        "## Fairness",
        "",
        extra["ethical_considerations"],
        "",
        "## Limits",
        "",
        extra["caveats_and_recommendations"] or "_None stated: set [model_card].caveats in mlops.toml._",
        "",
        "## Lineage",
        "",
        "| key | value |",
        "|---|---|",
        *(f"| {key} | `{value}` |" for key, value in extra["custom_details"].items()),
        "",
    ]
    return "\n".join(lines)


def _evaluation_tables(metric_groups: list[dict[str, Any]]) -> list[str]:
    """The metric groups as three tables: the models side by side, the slices, the importance."""
    models = [g for g in metric_groups if not g["name"].startswith("slice ") and g["name"] != "feature importance"]
    slices = [g for g in metric_groups if g["name"].startswith("slice ")]
    charts = [m for g in metric_groups if g["name"] == "feature importance" for m in g["metric_data"]]
    names = list(dict.fromkeys(m["name"] for g in models for m in g["metric_data"]))
    lines = ["| metric | " + " | ".join(g["name"] for g in models) + " |", "|---|" + "---|" * len(models)]
    for name in names:
        cells = [next((f"{m['value']:.4f}" for m in g["metric_data"] if m["name"] == name), "") for g in models]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    described = [
        f"{g['name']}: {g['metric_data'][0]['notes']}"
        for g in models
        if g["metric_data"] and "notes" in g["metric_data"][0]
    ]
    lines += ["", *(f"- {text}" for text in described), ""]
    if slices:
        lines += [
            "### Slices",
            "",
            "| slice group | rows | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(names),
        ]
        for group in slices:
            values = {m["name"]: m["value"] for m in group["metric_data"]}
            rows = next((m["notes"].split(" ", 1)[0] for m in group["metric_data"] if "notes" in m), "0")
            cells = [f"{values[n]:.4f}" if n in values else "n/a" for n in names]
            lines.append(f"| {group['name'].removeprefix('slice ')} | {rows} | " + " | ".join(cells) + " |")
        lines.append("")
    for chart in charts:
        lines += [f"### {chart['name'].capitalize()}", "", "| feature | drop when shuffled |", "|---|---|"]
        lines += [f"| {x} | {v:+.6f} |" for x, v in zip(chart["x_axis_name"], chart["value"], strict=True)]
        lines.append("")
    return lines


def html(text: str, title: str) -> str:
    """The Markdown card as one self-contained HTML page (raw HTML in any text is escaped)."""
    from markdown_it import MarkdownIt  # rich's own Markdown parser, already installed

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}"
        "code{font-size:.9em}"
    )
    escaped_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escaped_title}</title>'
        f"<style>{style}</style></head><body>\n{body}</body></html>\n"
    )

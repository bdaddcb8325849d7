"""The template's own workflows follow the rules it gives generated projects, with zero findings."""

from __future__ import annotations

import re
import subprocess

import yaml

from scripts.bakery import TEMPLATE

WORKFLOWS = TEMPLATE / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def test_template_ci_runs_the_tests_on_pull_requests_and_pushes() -> None:
    workflow = yaml.safe_load((WORKFLOWS / "template.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"pull_request", "push"} and triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {}
    runs = {job: [s["run"] for s in spec["steps"] if "run" in s] for job, spec in workflow["jobs"].items()}
    assert runs == {"test": ["make test-all"], "workflows": ["make lint-workflows"]}
    for spec in workflow["jobs"].values():
        assert spec["permissions"] == {"contents": "read"}
        for step in spec["steps"]:
            if "uses" in step:
                assert PINNED.match(step["uses"]), step["uses"]
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_every_action_carries_its_version_comment() -> None:
    for line in (WORKFLOWS / "template.yml").read_text().splitlines():
        if "uses:" in line:
            assert re.search(r"# v\d+\.\d+\.\d+$", line), line


def test_zizmor_reports_no_findings_on_the_template_workflows() -> None:
    result = subprocess.run(
        ["zizmor", "--offline", "--min-severity", "low", str(WORKFLOWS)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr

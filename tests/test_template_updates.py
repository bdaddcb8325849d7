"""Projects generated with cruft take later template changes, keeping their own edits.

Everything runs against local git repositories: a copy of this template, committed, is the
"upstream"; the project is created from it, edited, and then updated after the template moves.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.bakery import TEMPLATE, default_answers

CRUFT = str(Path(sys.executable).with_name("cruft"))
IGNORED = (".git", ".venv", ".tools", "build", "bench.json", "__pycache__", ".pytest_cache", ".ruff_cache",
           ".mypy_cache", "node_modules")  # fmt: skip


def run(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def commit(repo: Path, message: str) -> None:
    for args in (("add", "--all"), ("commit", "--quiet", "--message", message)):
        result = run("git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args, cwd=repo)
        assert result.returncode == 0, result.stderr


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template, ignore=shutil.ignore_patterns(*IGNORED))
    assert run("git", "init", "--quiet", "--initial-branch=main", cwd=template).returncode == 0
    commit(template, "template v1")
    return template


def test_cruft_update_brings_in_a_template_change_and_keeps_local_edits(upstream: Path, tmp_path: Path) -> None:
    created = run(CRUFT, "create", str(upstream), "--no-input", "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    project = tmp_path / "out" / default_answers()["project_slug"]
    assert json.loads((project / ".cruft.json").read_text())["template"] == str(upstream)
    commit(project, "generated")
    assert run(CRUFT, "check", cwd=project).returncode == 0

    # The team tunes its model; the template, meanwhile, improves its README.
    config = project / "mlops.toml"
    config.write_text(config.read_text().replace("n_estimators = 200", "n_estimators = 300"))
    commit(project, "more trees")
    readme = upstream / "{{cookiecutter.project_slug}}" / "README.md"
    readme.write_text(readme.read_text() + "\n## Added by a later template version\n")
    commit(upstream, "template v2")

    stale = run(CRUFT, "check", cwd=project)
    assert stale.returncode != 0 and "out of date" in (stale.stdout + stale.stderr).lower()
    updated = run(CRUFT, "update", "--skip-apply-ask", cwd=project)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "## Added by a later template version" in (project / "README.md").read_text()
    assert "n_estimators = 300" in config.read_text()
    commit(project, "template update")
    assert run(CRUFT, "check", cwd=project).returncode == 0

"""pre-commit's hooks run outside make, from `git commit`, with whatever PATH the shell has.

They once called `uv` from PATH while the Makefile installs uv into .tools/bin, so five of six
hooks failed and the installed git hook blocked every commit. Here they run with a PATH that
holds no uv, as on a machine where only `make install` has run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ml.config import PROJECT_ROOT

# The system's directories and the base interpreter's (uv finds the Python `.python-version` names
# there), but no uv.
NO_UV_PATH = f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin"


def hooks() -> list[dict[str, str]]:
    config = yaml.safe_load((PROJECT_ROOT / ".pre-commit-config.yaml").read_text())
    return [hook for repo in config["repos"] for hook in repo["hooks"]]


def real_uv() -> str:
    # `uv run` (and so `make test`) sets UV to its own path.
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.fail("no uv to copy: run the tests through `make test` or `uv run pytest`")
    return found


@pytest.fixture
def bootstrapped(tmp_path: Path) -> Path:
    """The files the uv-lock hook reads, with uv where `make install` puts it, and nowhere else."""
    project = tmp_path / "project"
    for name in ("pyproject.toml", "uv.lock", ".python-version", "tools/uv"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, project / name)
    (project / ".tools/bin").mkdir(parents=True)
    (project / ".tools/bin/uv").symlink_to(real_uv())
    return project


def no_uv_environment() -> dict[str, str]:
    assert shutil.which("uv", path=NO_UV_PATH) is None, f"{NO_UV_PATH} holds a uv; the test would prove nothing"
    environment = {key: value for key, value in os.environ.items() if key not in {"UV", "VIRTUAL_ENV"}}
    return {**environment, "PATH": NO_UV_PATH}


def test_every_hook_command_is_found_without_uv_on_path() -> None:
    for hook in hooks():
        command = hook["entry"].split()[0]
        found = (PROJECT_ROOT / command).is_file() or shutil.which(command, path=NO_UV_PATH)
        assert found, f"hook {hook['id']!r} runs {command!r}, which a shell without uv on PATH cannot find"


def test_the_uv_lock_hook_runs_with_the_uv_make_install_put_in_tools(bootstrapped: Path) -> None:
    (entry,) = [hook["entry"] for hook in hooks() if hook["id"] == "uv-lock"]
    result = subprocess.run(entry.split(), cwd=bootstrapped, env=no_uv_environment(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_without_any_uv_the_wrapper_says_what_to_run(bootstrapped: Path) -> None:
    (bootstrapped / ".tools/bin/uv").unlink()
    result = subprocess.run(
        ["tools/uv", "--version"], cwd=bootstrapped, env=no_uv_environment(), capture_output=True, text=True
    )
    assert result.returncode == 127
    assert "run 'make install'" in result.stderr

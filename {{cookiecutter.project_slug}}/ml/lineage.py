"""Where a model came from: git commit, data, code and parameters."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ml.config import PROJECT_ROOT, Config
from ml.hashing import combine, files_sha256, json_sha256

# The files whose content shapes the model. They ship to the training container, so a
# change to any of them means a new model; other modules (reports, CLI) do not.
MODEL_CODE = ("train.py", "inference.py", "evaluate.py")
# Extra libraries for train.py and inference.py: the SageMaker container pip-installs this file
# from the source directory before training, and from the model's code/ before serving.
REQUIREMENTS = "requirements.txt"


def model_code_files() -> tuple[Path, ...]:
    requirements = PROJECT_ROOT / "ml" / REQUIREMENTS
    extra = (requirements,) if requirements.is_file() else ()
    return (*(PROJECT_ROOT / "ml" / name for name in MODEL_CODE), *extra)


def code_hash() -> str:
    return files_sha256(model_code_files(), PROJECT_ROOT)


def params_hash(config: Config) -> str:
    return json_sha256(config.parameters())


def fingerprint(split_hash: str, config: Config) -> str:
    """Same data, code and parameters give the same fingerprint, hence the same model."""
    return combine(split_hash, code_hash(), params_hash(config))


def git_revision(root: Path = PROJECT_ROOT) -> tuple[str, bool]:
    """The commit being built and whether the tree differs from it.

    In GitHub Actions GITHUB_SHA names the commit even in a shallow checkout.
    """
    try:
        sha = os.environ.get("GITHUB_SHA") or _git(root, "rev-parse", "HEAD")
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return sha, dirty


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True, timeout=10
    ).stdout.strip()


RELEASE_BRANCH = "main"  # what the GitOps workflows deploy from (.github/workflows/pipeline.yml)


def git_branch(root: Path = PROJECT_ROOT) -> str:
    """The branch being built: GitHub's for a pushed branch, the pull request's head for a pull
    request (its GITHUB_REF is refs/pull/N/merge), else the checkout's ("HEAD" when detached)."""
    if os.environ.get("GITHUB_ACTIONS") == "true":
        ref = os.environ.get("GITHUB_REF", "")
        if ref.startswith("refs/heads/"):
            return ref.removeprefix("refs/heads/")
        return os.environ.get("GITHUB_HEAD_REF") or ref or "unknown"
    try:
        return _git(root, "rev-parse", "--abbrev-ref", "HEAD") or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def release_doubts(facts: dict[str, str]) -> list[str]:
    """Why a registered version may not be what main holds, from its recorded lineage."""
    doubts = []
    if facts.get("git_dirty") == "true":
        doubts.append(
            f"it was trained from a working tree with uncommitted changes (git {facts.get('git_sha', '')[:12]})"
        )
    branch = facts.get("git_branch")
    if branch is not None and branch != RELEASE_BRANCH:
        doubts.append(f"it was trained from {branch!r}, not {RELEASE_BRANCH!r}")
    return doubts

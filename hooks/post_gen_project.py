"""After generation: start a git repository (lineage records its commits) and print next steps."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path.cwd()
SLUG = {{cookiecutter.project_slug | quoted}}
ACCOUNT = {{cookiecutter.aws_account_id | quoted}}
PLACEHOLDER_ACCOUNT = "123456789012"


def init_git() -> str:
    if shutil.which("git") is None:
        return "git is not installed: lineage will record git_sha=unknown until you add it."
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=PROJECT, capture_output=True, text=True)
    if inside.returncode == 0:
        return "the project sits inside an existing git repository; left it as it is."
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main"], cwd=PROJECT, check=True)
    return "initialised an empty git repository on branch main."


def main() -> int:
    note = init_git()
    print(f"\nCreated {PROJECT} ({note})\n")
    print("Next steps:")
    print(f"  cd {SLUG}")
    print("  make pipeline   # the whole loop on your laptop: no AWS account needed")
    print("  make test       # ruff, mypy and pytest")
    if ACCOUNT == PLACEHOLDER_ACCOUNT:
        print(
            "\nNote: aws_account_id is the placeholder 123456789012. Set [project].aws_account_id "
            "in mlops.toml to your account before you deploy to AWS."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

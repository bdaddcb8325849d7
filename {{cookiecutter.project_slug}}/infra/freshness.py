"""`make check-fresh`: refuse to apply a stack from a commit main has moved past for that stack.

A re-run of a workflow run uses the commit of the original event (docs.github.com, "Re-running
workflows and jobs"), so re-running last week's deploy would apply last week's stack file over
everything merged since: a silent rollback. Every deploy job runs this first. It asks GitHub
what changed on main since the checked-out commit (the compare API, with the job's read-only
GITHUB_TOKEN: actions/checkout points the local origin/main at the run's own commit, and keeps no
credentials to fetch the real one) and fails when any file that touches the stack changed
(infra/changed_stacks.py). Outside Actions it compares HEAD with the local origin/main.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from infra.changed_stacks import STACKS, stacks_for

COMPARE_FILES_MAX = 300  # the compare API lists at most this many files


def changed_on_main() -> tuple[str, list[str] | None]:
    """main's head, and the files changed there since this commit (None: more than the API lists)."""
    repository, sha = os.environ.get("GITHUB_REPOSITORY"), os.environ.get("GITHUB_SHA")
    if repository and sha:
        result = subprocess.run(
            ["gh", "api", f"repos/{repository}/compare/{sha}...main"], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise SystemExit(f"error: cannot ask GitHub what changed on main since {sha[:12]}: {result.stderr.strip()}")
        compare = json.loads(result.stdout)
        if compare["status"] not in ("ahead", "identical"):
            raise SystemExit(
                f"error: {sha[:12]} is not on main (compare status {compare['status']}); only main is applied"
            )
        files = [entry["filename"] for entry in compare.get("files", [])]
        head = compare["commits"][-1]["sha"] if compare.get("commits") else sha
        return head, None if len(files) >= COMPARE_FILES_MAX else files
    head = subprocess.run(
        ["git", "rev-parse", "origin/main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    diff = subprocess.run(["git", "diff", "--name-only", "HEAD", head], capture_output=True, text=True, check=True)
    return head, diff.stdout.split()


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1 or args[0] not in STACKS:
        print(f"usage: python -m infra.freshness <{'|'.join(STACKS)}>", file=sys.stderr)
        return 2
    stack = args[0]
    head, changed = changed_on_main()
    if changed is None:
        print(f"error: more than {COMPARE_FILES_MAX} files changed on main since this commit; re-run the newest deploy "
              "of main instead", file=sys.stderr)  # fmt: skip
        return 1
    behind = [path for path in changed if stack in stacks_for([path])]
    if behind:
        print(
            f"error: {stack}'s files changed on main since this commit ({', '.join(behind)}); applying it would roll "
            f"{stack} back. Re-run the newest deploy of main instead (main is at {head[:12]}).",
            file=sys.stderr,
        )
        return 1
    print(f"{stack}: nothing that touches it changed on main since this commit (main is at {head[:12]}); fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())

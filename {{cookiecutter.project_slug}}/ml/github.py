"""The GitHub side of a promotion: push its branch and keep one pull request and one comment up to date.

Through `git` and the `gh` CLI, with the token in GH_TOKEN. In the workflows that is the promotion
App's installation token: events caused by GITHUB_TOKEN start no workflow, so a pull request it
opened would never get the checks branch protection requires (docs.github.com, "Triggering a
workflow from a workflow"); the App's do. `gh auth setup-git` lets git push with the same token.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ml.errors import PipelineError
from ml.promotion import GitIdentity


def _run(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise PipelineError(f"`{' '.join(command[:3])} ...` failed: {detail}")
    return result.stdout.strip()


def bot_identity(slug: str) -> GitIdentity:
    """The App's bot user as git author, as actions/create-github-app-token's README sets it up."""
    login = f"{slug}[bot]"
    user = json.loads(_run(["gh", "api", f"/users/{login}"]))
    return GitIdentity(login, f"{user['id']}+{login}@users.noreply.github.com")


def push(repo: Path, branch: str, stack_file: Path) -> tuple[str, bool]:
    """Push HEAD to the branch, unless the branch already proposes the same stack file; return the
    commit the branch holds, and whether this pushed it.

    The branch is rebuilt on every promotion, so the push is forced, with a lease on what this job
    just fetched: a fresh checkout (a re-run job) has no remote-tracking ref to lease on, and a
    bare --force-with-lease refuses forever; a promotion that pushed in between fails this one.
    """
    _run(["gh", "auth", "setup-git"])
    listed = _run(["git", "ls-remote", "origin", f"refs/heads/{branch}"], cwd=repo)
    remote = listed.split()[0] if listed else ""
    if remote:
        _run(["git", "fetch", "--quiet", "--depth=1", "origin", remote], cwd=repo)
        same = subprocess.run(["git", "diff", "--quiet", remote, "HEAD", "--", str(stack_file.resolve())], cwd=repo)
        if same.returncode == 0:
            return remote, False
    lease = f"--force-with-lease=refs/heads/{branch}:{remote}"
    _run(["git", "push", "--quiet", lease, "origin", f"HEAD:refs/heads/{branch}"], cwd=repo)
    return _run(["git", "rev-parse", "HEAD"], cwd=repo), True


def open_pull_request(branch: str) -> int | None:
    pulls = json.loads(_run(["gh", "pr", "list", "--head", branch, "--state", "open", "--json", "number"]))
    return int(pulls[0]["number"]) if pulls else None


def propose(branch: str, title: str, body_file: Path) -> int:
    """Open the branch's pull request, or retitle the one already open (a newer model supersedes it)."""
    number = open_pull_request(branch)
    if number is None:
        _run(
            ["gh", "pr", "create", "--base", "main", "--head", branch, "--title", title, "--body-file", str(body_file)]
        )
        number = open_pull_request(branch)
        if number is None:
            raise PipelineError(f"gh reported no open pull request for {branch} after creating it")
    else:
        _run(["gh", "pr", "edit", str(number), "--title", title, "--body-file", str(body_file)])
    return number


def comment(number: int, comment_file: Path) -> None:
    """The promotion comment: the bot's last comment on the pull request, edited in place."""
    _run(["gh", "pr", "comment", str(number), "--edit-last", "--create-if-none", "--body-file", str(comment_file)])


def close_superseded(branch: str, reason: str) -> int | None:
    number = open_pull_request(branch)
    if number is not None:
        _run(["gh", "pr", "close", str(number), "--comment", reason])
    return number

"""The rehearsal's GitHub: repository settings, tokens, pull requests, comments and the events they
cause, in one JSON file that the test, the `gh` stand-in and the origin's git hooks share.

Standard library only: the stand-in and the hooks run it with the runner's own python3.

The rules applied here are GitHub's documented ones:

- Events caused by GITHUB_TOKEN start no workflow, except workflow_dispatch and
  repository_dispatch; events caused by a GitHub App's installation token do ("Triggering a
  workflow from a workflow", docs.github.com/en/actions/using-workflows/triggering-a-workflow).
- GITHUB_TOKEN has exactly the permissions its job's `permissions:` grants ("Controlling
  permissions for GITHUB_TOKEN"), and it creates pull requests only when the repository allows
  it (Settings > Actions > General > "Allow GitHub Actions to create and approve pull requests").
- A pull request for a head branch that already has an open one is refused (as `gh pr create`
  reports it), and a pushed head branch updates its open pull request (a `synchronize` event).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STATE_VARIABLE = "REHEARSAL_GITHUB"  # where the state file is, in every sandboxed process
UNTRIGGERING = "github_token"  # the token kind whose events start no workflow
DISPATCH_EVENTS = {"workflow_dispatch", "repository_dispatch"}


class GitHubError(Exception):
    """What GitHub's API would answer with an error status."""


def new_state(repository: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "repository": repository,
        "settings": settings,
        "tokens": {},
        "pulls": [],
        "comment_ids": 0,
        "events": [],
        "log": [],
        "check_runs": {},
    }


@contextmanager
def locked(path: Path) -> Iterator[dict[str, Any]]:
    """The state, read and written back under an exclusive lock (the stand-ins run as processes)."""
    with (path.parent / f"{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text())
        yield state
        path.write_text(json.dumps(state, indent=1))


def read(path: Path) -> dict[str, Any]:
    with locked(path) as state:
        return state


def state_path() -> Path:
    return Path(os.environ[STATE_VARIABLE])


def token_info(state: dict[str, Any], token: str | None) -> dict[str, Any]:
    if not token:
        raise GitHubError(
            "gh: no GH_TOKEN set (To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN environment variable)"
        )
    info = state["tokens"].get(token)
    if info is None or info.get("revoked"):
        raise GitHubError("HTTP 401: Bad credentials")
    return dict(info)


def require(state: dict[str, Any], token: str | None, scope: str, level: str = "write") -> dict[str, Any]:
    """The token's owner, if it holds scope at level; otherwise GitHub's 403."""
    info = token_info(state, token)
    granted = info["permissions"].get(scope, "none")
    order = {"none": 0, "read": 1, "write": 2}
    if order.get(granted, 0) < order[level]:
        raise GitHubError(
            f"HTTP 403: Resource not accessible by integration ({scope}: {level} needed, token has {granted})"
        )
    return info


def emit(state: dict[str, Any], name: str, payload: dict[str, Any], actor: dict[str, Any]) -> None:
    """Record an event; those caused by GITHUB_TOKEN are marked as starting no workflow."""
    starts = actor["kind"] != UNTRIGGERING or name in DISPATCH_EVENTS
    state["events"].append({"name": name, "payload": payload, "actor": actor, "starts_workflows": starts})


def open_pull(state: dict[str, Any], head: str) -> dict[str, Any] | None:
    return next((p for p in state["pulls"] if p["head"] == head and p["state"] == "open"), None)


def find_pull(state: dict[str, Any], selector: str) -> dict[str, Any]:
    """A pull request by number, or the open one whose head is the branch, as gh resolves it."""
    if selector.isdigit():
        pull: dict[str, Any] | None = next((p for p in state["pulls"] if p["number"] == int(selector)), None)
    else:
        pull = open_pull(state, selector)
    if pull is None:
        raise GitHubError(f'no pull requests found for branch "{selector}"')
    return pull


def pull_payload(state: dict[str, Any], pull: dict[str, Any], action: str) -> dict[str, Any]:
    owner, _, name = state["repository"].partition("/")
    repo = {"full_name": state["repository"], "name": name, "owner": {"login": owner}}
    return {
        "action": action,
        "number": pull["number"],
        "pull_request": {
            "number": pull["number"],
            "title": pull["title"],
            "head": {"ref": pull["head"], "sha": pull["head_sha"], "repo": repo},
            "base": {"ref": pull["base"], "sha": pull["base_sha"], "repo": repo},
            "merged": pull["state"] == "merged",
        },
        "repository": repo,
    }


SCOPES = ("actions", "checks", "contents", "deployments", "id-token", "issues", "packages", "pull-requests", "statuses")


def expand_permissions(permissions: Any) -> dict[str, str]:
    """A `permissions:` value as the token gets it: `{}` grants nothing, read-all/write-all everything."""
    if permissions in ("read-all", "write-all"):
        return dict.fromkeys(SCOPES, str(permissions).removesuffix("-all"))
    if permissions is None:  # no permissions: anywhere; the repository's restricted default
        return {"contents": "read", "packages": "read"}
    return {str(k): str(v) for k, v in dict(permissions).items()}

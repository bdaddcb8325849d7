"""The rehearsal origin's git hooks: who may push, and the events a push causes.

A push over the local transport runs these with the pushing process's environment, so they see
what GitHub would: the credentials git would send. actions/checkout with persist-credentials:
false leaves none, and `gh auth setup-git` makes git ask gh, which answers with GH_TOKEN
(cli.github.com/manual/gh_auth_setup-git). No credential is an authentication failure; a
token without contents: write is GitHub's 403; main only changes through a merged pull request
(the branch rule README.md's GitHub set-up asks for). A push then emits `push`, and
`pull_request` `synchronize` for an open pull request whose head it moved, with the pusher as
the actor: a GITHUB_TOKEN push starts no workflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

if TYPE_CHECKING:
    from tests.workflows.rehearsal import github_state as gh
else:
    import github_state as gh  # run as a hook script, beside the module

ZERO = "0" * 40
ACTOR_VARIABLE = "REHEARSAL_ACTOR"  # set only when a person pushes: the maintainer, or GitHub's merge button


def pusher(state: dict[str, Any]) -> dict[str, Any]:
    person = os.environ.get(ACTOR_VARIABLE)
    if person:
        return {"kind": "user", "login": person, "permissions": {"contents": "write"}}
    helper = subprocess.run(
        ["git", "config", "--global", "--get", "credential.https://github.com.helper"], capture_output=True, text=True
    ).stdout.strip()
    if "gh auth git-credential" not in helper:
        raise gh.GitHubError(
            "fatal: could not read Username for 'https://github.com': No such device or address "
            "(no credentials: the checkout did not persist any, and `gh auth setup-git` did not run)"
        )
    return gh.require(state, os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN"), "contents")


def pre_receive(updates: list[tuple[str, str, str]]) -> None:
    with gh.locked(gh.state_path()) as state:
        actor = pusher(state)
        protected = state["settings"].get("protected_branches", [])
        for _, _, ref in updates:
            branch = ref.removeprefix("refs/heads/")
            if branch in protected and actor.get("login") != "merge-button":
                raise gh.GitHubError(
                    f"remote: error: GH006: Protected branch update failed for {ref}: changes must be made through a pull request"
                )


def post_receive(updates: list[tuple[str, str, str]]) -> None:
    with gh.locked(gh.state_path()) as state:
        actor = pusher(state)
        for before, after, ref in updates:
            if not ref.startswith("refs/heads/"):
                continue
            branch = ref.removeprefix("refs/heads/")
            payload = {
                "ref": ref,
                "before": before,
                "after": after,
                "created": before == ZERO,
                "deleted": after == ZERO,
                "repository": {"full_name": state["repository"]},
                "head_commit": None if after == ZERO else {"id": after},
            }
            gh.emit(state, "push", payload, actor)
            pull = gh.open_pull(state, branch)
            if pull is not None and after != ZERO:
                pull["head_sha"] = after
                gh.emit(state, "pull_request", gh.pull_payload(state, pull, "synchronize"), actor)


def _update(line: str) -> tuple[str, str, str]:
    """One line of a hook's stdin: <old-sha> <new-sha> <ref> (githooks(5))."""
    old, new, ref = line.split()
    return old, new, ref


def main(hook: str) -> int:
    updates = [_update(line) for line in sys.stdin.read().splitlines() if line.strip()]
    try:
        (pre_receive if hook == "pre-receive" else post_receive)(updates)
    except gh.GitHubError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

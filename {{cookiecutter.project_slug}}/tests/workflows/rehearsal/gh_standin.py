"""The `gh` CLI in the rehearsal's sandbox: the commands the Makefile calls, against the shared state.

It records pull requests, comments and dispatches, and applies GitHub's rules (github_state.py):
the token decides who acts, what it may do, and whether the event it causes starts workflows.
Anything it does not know fails loudly, so a new `gh` call in the Makefile cannot pass unseen.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

if TYPE_CHECKING:
    from tests.workflows.rehearsal import github_state as gh
else:
    import github_state as gh  # this file runs as a script, beside the module


def token() -> str | None:
    # gh reads GH_TOKEN, then GITHUB_TOKEN (gh help environment).
    return os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")


def origin() -> Path:
    return Path(os.environ["REHEARSAL_ORIGIN"])


def remote_sha(branch: str) -> str | None:
    result = subprocess.run(
        ["git", "--git-dir", str(origin()), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() or None


def body_of(args: argparse.Namespace) -> str:
    if getattr(args, "body_file", None):
        return Path(args.body_file).read_text()
    return str(getattr(args, "body", "") or "")


def auth(argv: list[str]) -> None:
    if argv[:1] != ["setup-git"]:
        raise gh.GitHubError(f"gh auth {' '.join(argv)}: not known to the rehearsal")
    # What `gh auth setup-git` writes: git asks gh for github.com credentials, and gh answers with
    # GH_TOKEN. The origin's hook reads this helper from the pushing process's global config.
    config = Path(os.environ["HOME"]) / ".gitconfig"
    parser = configparser.ConfigParser()
    parser.read(config)
    section = 'credential "https://github.com"'
    if not parser.has_section(section):
        parser.add_section(section)
    parser.set(section, "helper", "!gh auth git-credential")
    with config.open("w") as handle:
        parser.write(handle)


def pr(argv: list[str]) -> None:
    command, rest = argv[0], argv[1:]
    parser = argparse.ArgumentParser(prog=f"gh pr {command}")
    parser.add_argument("selector", nargs="?")
    for flag in ("--base", "--head", "--title", "--body", "--body-file", "--comment", "--state", "--json"):
        parser.add_argument(flag)
    parser.add_argument("-F", dest="body_file")
    parser.add_argument("--edit-last", action="store_true")
    parser.add_argument("--create-if-none", action="store_true")
    args = parser.parse_args(rest)
    with gh.locked(gh.state_path()) as state:
        if command == "list":
            gh.require(state, token(), "pull-requests", "read")
            pulls = [
                p
                for p in state["pulls"]
                if (not args.head or p["head"] == args.head) and p["state"] == (args.state or "open")
            ]
            fields = (args.json or "number").split(",")
            print(json.dumps([{field: pull_field(p, field) for field in fields} for p in pulls]))
            return
        actor = gh.require(state, token(), "pull-requests")
        if command == "create":
            create(state, actor, args)
        elif command == "edit":
            pull = gh.find_pull(state, args.selector)
            if args.title:
                pull["title"] = args.title
            if args.body_file or args.body:
                pull["body"] = body_of(args)
            gh.emit(state, "pull_request", gh.pull_payload(state, pull, "edited"), actor)
        elif command == "comment":
            comment(
                state, actor, gh.find_pull(state, args.selector), body_of(args), args.edit_last, args.create_if_none
            )
        elif command == "close":
            pull = gh.find_pull(state, args.selector)
            if args.comment:
                comment(state, actor, pull, args.comment, False, False)
            pull["state"] = "closed"
            gh.emit(state, "pull_request", gh.pull_payload(state, pull, "closed"), actor)
        else:
            raise gh.GitHubError(f"gh pr {command}: not known to the rehearsal")


def pull_field(pull: dict[str, Any], field: str) -> Any:
    fields = {
        "number": pull["number"],
        "title": pull["title"],
        "headRefName": pull["head"],
        "state": pull["state"].upper(),
    }
    if field not in fields:
        raise gh.GitHubError(f"gh pr list --json {field}: not known to the rehearsal")
    return fields[field]


def create(state: dict[str, Any], actor: dict[str, Any], args: argparse.Namespace) -> None:
    if actor["kind"] == gh.UNTRIGGERING and not state["settings"]["actions_can_create_prs"]:
        raise gh.GitHubError(
            "pull request create failed: GraphQL: GitHub Actions is not permitted to create or approve pull requests"
        )
    head_sha = remote_sha(args.head)
    if head_sha is None:
        raise gh.GitHubError(
            f"pull request create failed: GraphQL: Head sha can't be blank, head ref {args.head} missing"
        )
    if gh.open_pull(state, args.head) is not None:
        raise gh.GitHubError(f'a pull request for branch "{args.head}" into branch "{args.base}" already exists')
    pull = {
        "number": len(state["pulls"]) + 1,
        "head": args.head,
        "base": args.base,
        "title": args.title,
        "body": body_of(args),
        "state": "open",
        "author": actor["login"],
        "head_sha": head_sha,
        "base_sha": remote_sha(args.base),
        "comments": [],
    }
    state["pulls"].append(pull)
    gh.emit(state, "pull_request", gh.pull_payload(state, pull, "opened"), actor)
    print(f"https://github.com/{state['repository']}/pull/{pull['number']}")


def comment(
    state: dict[str, Any], actor: dict[str, Any], pull: dict[str, Any], body: str, edit_last: bool, create: bool
) -> None:
    mine = [c for c in pull["comments"] if c["author"] == actor["login"]]
    if edit_last and mine:
        mine[-1]["body"] = body
        mine[-1]["edits"] += 1
        return
    if edit_last and not create:
        raise gh.GitHubError("no comments found for current user")
    state["comment_ids"] += 1
    pull["comments"].append({"id": state["comment_ids"], "author": actor["login"], "body": body, "edits": 0})


def workflow(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="gh workflow")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("workflow")
    parser.add_argument("--ref", default="main")
    parser.add_argument("-f", "--raw-field", action="append", default=[])
    args = parser.parse_args(argv)
    with gh.locked(gh.state_path()) as state:
        actor = gh.require(state, token(), "actions")
        inputs = dict(item.split("=", 1) for item in args.raw_field)
        payload = {"workflow": args.workflow, "ref": f"refs/heads/{args.ref}", "inputs": inputs}
        gh.emit(state, "workflow_dispatch", payload, actor)


def git(*args: str) -> str:
    result = subprocess.run(["git", "--git-dir", str(origin()), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise gh.GitHubError(f"HTTP 404: Not Found ({result.stderr.strip()})")
    return result.stdout.strip()


def compare(base: str, head: str) -> dict[str, Any]:
    """GET /repos/{owner}/{repo}/compare/{base}...{head}: the status, the commits and the files changed."""
    base_sha, head_sha = git("rev-parse", base), git("rev-parse", head)
    merge_base = git("merge-base", base_sha, head_sha)
    if base_sha == head_sha:
        status = "identical"
    elif merge_base == base_sha:
        status = "ahead"
    elif merge_base == head_sha:
        status = "behind"
    else:
        status = "diverged"
    commits = git("rev-list", "--reverse", f"{base_sha}..{head_sha}").split()
    files = git("diff", "--name-only", merge_base, head_sha).split()
    return {"status": status, "commits": [{"sha": c} for c in commits], "files": [{"filename": f} for f in files]}


def api(argv: list[str]) -> None:
    path = argv[0].lstrip("/")
    with gh.locked(gh.state_path()) as state:
        gh.token_info(state, token())
        if path.startswith("users/") and path.endswith("[bot]"):
            login = path.removeprefix("users/")
            print(json.dumps({"login": login, "id": 40_000_000 + sum(map(ord, login)), "type": "Bot"}))
            return
        if path.startswith(f"repos/{state['repository']}/compare/"):
            gh.require(state, token(), "contents", "read")
            base, _, head = path.rsplit("/", 1)[1].partition("...")
            print(json.dumps(compare(base, head)))
            return
    raise gh.GitHubError(f"gh api {path}: not known to the rehearsal")


def main(argv: list[str]) -> int:
    commands = {"auth": auth, "pr": pr, "workflow": workflow, "api": api}
    try:
        if not argv or argv[0] not in commands:
            raise gh.GitHubError(f"gh {' '.join(argv)}: not known to the rehearsal")
        commands[argv[0]](argv[1:])
    except gh.GitHubError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        with gh.locked(gh.state_path()) as state:
            state["log"].append(["gh", *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Which stacks a change touches: `python -m infra.changed_stacks <base>` prints a JSON list.

The paths that touch the stacks are defined once, as deploy.yml's `on.push.paths`: GitHub starts
deploy.yml for exactly those, and this module reads the same list, so a change is never previewed
without being applied or applied without being previewed. A stack file (infra/Pulumi.<env>.yaml)
touches its own stack; any other path on the list (the program, the ml modules it imports, its
configuration and lockfiles, the Pulumi CLI version) touches every stack. deploy.yml applies the
result, ci.yml previews it.

The list holds two kinds of pattern, which GitHub and this module read alike: a path, and a
directory (`dir/**`), either of them excluded with a leading `!` (later patterns win).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

from ml.names import GITHUB_ENVIRONMENTS

# infra/settings.py's STACKS, by the mapping every stack has an entry in (tests/workflows check they
# agree): importing the settings would import Pulumi, a quarter of a second of every CI job that asks.
STACKS = tuple(GITHUB_ENVIRONMENTS)

DEPLOY_WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "deploy.yml"
# git's empty tree: what the first push to a repository (an all-zero `before`) is compared with.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ZERO = "0" * 40


def trigger_paths(workflow: Path = DEPLOY_WORKFLOW) -> list[str]:
    document = yaml.safe_load(workflow.read_text())
    on = document.get("on", document.get(True))  # YAML 1.1 reads the key `on` as True
    patterns = list(on["push"]["paths"])
    for pattern in patterns:
        body = pattern.removeprefix("!")
        if "*" in body.removesuffix("/**") or "?" in body or "[" in body:
            raise ValueError(
                f"{workflow.name}: on.push.paths entry {pattern!r} is neither a path nor `dir/**`; "
                "infra/changed_stacks.py reads only those two forms"
            )
    return patterns


def _matches(pattern: str, path: str) -> bool:
    if pattern.endswith("/**"):
        return path.startswith(pattern.removesuffix("**"))
    return path == pattern


def deploys(path: str, patterns: list[str]) -> bool:
    """GitHub's path filter for these forms: the last matching pattern decides."""
    included = False
    for pattern in patterns:
        if _matches(pattern.removeprefix("!"), path):
            included = not pattern.startswith("!")
    return included


def stacks_for(paths: Iterable[str], patterns: list[str] | None = None) -> list[str]:
    patterns = trigger_paths() if patterns is None else patterns
    touched: set[str] = set()
    for path in paths:
        if not deploys(path, patterns):
            continue
        name = path.rsplit("/", 1)[-1]
        if path.startswith("infra/Pulumi.") and name != "Pulumi.yaml":
            env = name.removeprefix("Pulumi.").removesuffix(".yaml")
            if env in STACKS:
                touched.add(env)
        else:
            touched.update(STACKS)
    return [env for env in STACKS if env in touched]


def changed_paths(base: str) -> list[str]:
    if base == ZERO:
        base = EMPTY_TREE  # the first push: everything is new
        command = ["git", "diff", "--name-only", base, "HEAD"]
    else:
        command = ["git", "diff", "--name-only", f"{base}...HEAD"]
    # Run from the repository root, as make does.
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        # A repository of one commit has no HEAD~1; a shallow clone lacks older commits.
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "git diff failed"
        raise SystemExit(
            f"changed-stacks: cannot compare {base!r} with HEAD ({reason}). Pass BASE=<an existing commit>, "
            "or fetch more history (actions/checkout with fetch-depth: 0)."
        )
    return [line for line in result.stdout.splitlines() if line]


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    base = args[0] if args else "HEAD~1"
    chosen = os.environ.get("STACKS", "").split()  # a manual run names its stacks (deploy.yml's input)
    unknown = sorted(set(chosen) - set(STACKS))
    if unknown:
        print(f"error: STACKS names {', '.join(unknown)}; use {', '.join(STACKS)}", file=sys.stderr)
        return 2
    stacks = [env for env in STACKS if env in chosen] if chosen else stacks_for(changed_paths(base))
    print(json.dumps(stacks))
    output = os.environ.get("GITHUB_OUTPUT")
    if output:  # step outputs deploy.yml's and ci.yml's jobs read
        with Path(output).open("a", encoding="utf-8") as handle:
            handle.write(f"stacks={json.dumps(stacks)}\n")
            # Pull-request previews skip prod: its preview environment admits only main, so prod's
            # plan is made and reviewed in deploy.yml, before its gated apply.
            handle.write(f"preview={json.dumps([env for env in stacks if env != 'prod'])}\n")
            for env in STACKS:
                handle.write(f"{env}={'true' if env in stacks else 'false'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which stacks a change touches: `python -m infra.changed_stacks <base>` prints a JSON list.

A stack file (infra/Pulumi.<env>.yaml) touches its own stack; any other change under infra/
(the program, its components, the lockfile it runs with) touches every stack. deploy.yml uses
the list to run `pulumi up` for exactly those stacks, and ci.yml to preview them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from infra.settings import STACKS

PROGRAM_FILES = ("pyproject.toml", "uv.lock", "mlops.toml")


def stacks_for(paths: Iterable[str]) -> list[str]:
    touched: set[str] = set()
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        if path.startswith("infra/bootstrap/"):
            continue  # applied by an administrator, never by CI
        if path.startswith("infra/Pulumi.") and path.endswith(".yaml") and name != "Pulumi.yaml":
            env = name.removeprefix("Pulumi.").removesuffix(".yaml")
            if env in STACKS:
                touched.add(env)
        elif path.startswith("infra/") or path in PROGRAM_FILES or path.startswith("ml/names.py"):
            touched.update(STACKS)
    return [env for env in STACKS if env in touched]


def changed_paths(base: str) -> list[str]:
    result = subprocess.run(
        ["git", "diff", "--name-only", f"{base}...HEAD"], capture_output=True, text=True, check=False
    )  # run from the repository root, as make does
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
    stacks = stacks_for(changed_paths(base))
    print(json.dumps(stacks))
    output = os.environ.get("GITHUB_OUTPUT")
    if output:  # a step output deploy.yml's jobs can read
        with Path(output).open("a", encoding="utf-8") as handle:
            handle.write(f"stacks={json.dumps(stacks)}\n")
            # Pull-request previews skip prod: its GitHub environment (`production`) only admits main,
            # so prod's plan is reviewed where it is applied, in deploy.yml's gated job.
            handle.write(f"preview={json.dumps([env for env in stacks if env != 'prod'])}\n")
            for env in STACKS:
                handle.write(f"{env}={'true' if env in stacks else 'false'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

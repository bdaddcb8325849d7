"""The Pulumi CLI in the rehearsal's sandbox: records what it is asked to preview and apply.

Per stack it keeps the configuration last applied (the stack's state) and the outputs the AWS
set-up created. It refuses what the real CLI or AWS would: no backend URL in a non-interactive
session, no AWS credentials, `up` with a read-only preview role, and `up --plan` with a plan
made from another configuration or against another state (Pulumi's update plans fail on any
discrepancy: pulumi.com/docs/iac/guides/basics/update-plans). After an `up` it reconciles the
stack's endpoint (sandbox/rehearsal_cloud.py) to the model version the stack file names, as
Pulumi reconciles the SageMaker endpoint. Every call is logged with the CLI version that ran.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

CLOUD = Path(os.environ.get("REHEARSAL_CLOUD", "."))
STATE = CLOUD / "pulumi"


def fail(message: str, code: int = 255) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def stack_config(stack: str) -> dict[str, Any]:
    path = Path.cwd() / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise SystemExit(fail(f"no stack file {path.name} in {Path.cwd()}"))
    config: dict[str, Any] = yaml.safe_load(path.read_text()).get("config") or {}
    return {key: str(value) for key, value in config.items()}


def model_version(config: dict[str, Any]) -> int | None:
    value = next((v for k, v in config.items() if k.endswith(":model_version")), "")
    return int(value) if value else None


def load(stack: str) -> dict[str, Any]:
    path = STATE / f"{stack}.json"
    if not path.is_file():
        raise SystemExit(fail(f"no stack named '{stack}' found (run `pulumi stack init {stack}`)"))
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def save(stack: str, state: dict[str, Any]) -> None:
    (STATE / f"{stack}.json").write_text(json.dumps(state, indent=1))


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            lines.append(f"    ~ {key}: {before.get(key, '<unset>')!r} => {after.get(key, '<unset>')!r}")
    return lines


def role(stack: str) -> str:
    assumed = os.environ.get("REHEARSAL_AWS_ROLE", "")
    if not assumed or not os.environ.get("AWS_ACCESS_KEY_ID"):
        raise SystemExit(fail("no valid AWS credentials found (configure-aws-credentials did not run in this job)"))
    return assumed


def main(argv: list[str]) -> int:
    version = os.environ.get("REHEARSAL_PULUMI_VERSION", "image")
    with (STATE / "calls.jsonl").open("a") as log:
        log.write(
            json.dumps({"argv": argv, "version": version, "role": os.environ.get("REHEARSAL_AWS_ROLE", "")}) + "\n"
        )
    if argv[:1] == ["version"]:
        print(f"v{version}")
        return 0
    if not os.environ.get("PULUMI_BACKEND_URL"):
        return fail("PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions")
    parser = argparse.ArgumentParser(prog="pulumi")
    parser.add_argument("command", nargs="+")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--diff", action="store_true")
    parser.add_argument("--non-interactive", action="store_true")
    parser.add_argument("--yes", action="store_true")
    parser.add_argument("--skip-preview", action="store_true")
    parser.add_argument("--save-plan")
    parser.add_argument("--plan")
    args = parser.parse_args(argv)
    assumed = role(args.stack)
    state = load(args.stack)
    if args.command == ["stack", "output"]:
        print(json.dumps(state["outputs"]))
        return 0
    config = stack_config(args.stack)
    if args.command == ["preview"]:
        changes = diff(state["config"], config)
        print(f"Previewing update ({args.stack}):")
        print("\n".join(changes) if changes else "    (no changes)")
        print(f"Resources: {'1 to update' if changes else 'unchanged'}")
        if args.save_plan:
            Path(args.save_plan).write_text(
                json.dumps({"stack": args.stack, "base": state["config"], "config": config})
            )
        return 0
    if args.command == ["up"]:
        if "preview" in assumed:
            return fail(f"AccessDenied: {assumed} is a read-only preview role; it cannot apply")
        if (failure := STATE / f"fail-up-{args.stack}").exists():
            return fail(failure.read_text().strip() or "update failed")
        if not args.yes:
            return fail("--yes must be passed in to proceed when running in non-interactive mode")
        if args.plan:
            plan = json.loads(Path(args.plan).read_text())
            if plan["config"] != config or plan["base"] != state["config"]:
                return fail("the update differs from the plan: the program or the stack's state changed since preview")
        state["config"] = config
        state["history"].append({"config": config, "sha": os.environ.get("GITHUB_SHA", ""), "plan": bool(args.plan)})
        save(args.stack, state)
        sys.path.insert(0, str(Path.cwd().parent))
        if TYPE_CHECKING:
            from tests.workflows.rehearsal.sandbox import rehearsal_cloud
        else:
            import rehearsal_cloud  # the sandbox's site directory (sandbox/), on PYTHONPATH

        rehearsal_cloud.reconcile(args.stack, model_version(config))
        print(f"Update succeeded ({args.stack})")
        return 0
    return fail(f"pulumi {' '.join(args.command)}: not known to the rehearsal")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

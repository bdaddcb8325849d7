"""`make preview-offline`: what `pulumi up` would create, with no credentials and no Pulumi CLI.

Runs the program for each stack under Pulumi's mocks, prints the resources with their key
properties, and the result of every offline policy. Exits 1 if a policy fails or a stack
file is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from infra import policies
from infra.mocks import Captured, run_stack
from infra.settings import STACKS, StackConfigError

# The properties a reviewer reads first, per resource type (provider names, camelCase).
KEY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "aws:s3/bucket:Bucket": ("bucket",),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": ("rules",),
    "aws:s3/bucketVersioning:BucketVersioning": ("versioningConfiguration",),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ("rules",),
    "aws:kms/key:Key": ("enableKeyRotation", "deletionWindowInDays"),
    "aws:kms/alias:Alias": ("name",),
    "aws:iam/role:Role": ("name",),
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": ("modelPackageGroupName",),
    "aws:sagemaker/model:Model": ("primaryContainer", "enableNetworkIsolation"),
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": ("productionVariants", "kmsKeyArn"),
    "aws:sagemaker/endpoint:Endpoint": ("name", "deploymentConfig"),
    "aws:appautoscaling/target:Target": ("minCapacity", "maxCapacity"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("name", "metricName", "threshold"),
    "aws:cloudwatch/dashboard:Dashboard": ("dashboardName",),
    "aws:budgets/budget:Budget": ("limitAmount", "timeUnit"),
}


def describe(resource: Captured) -> str:
    if resource.type == "aws:iam/rolePolicy:RolePolicy":
        statements = json.loads(resource.inputs.get("policy", "{}")).get("Statement", [])
        return "statements=" + ",".join(str(s.get("Sid", "?")) for s in statements)
    keys = KEY_PROPERTIES.get(resource.type, ())
    shown = {key: _compact(resource.inputs[key]) for key in keys if key in resource.inputs}
    return ", ".join(f"{key}={value}" for key, value in shown.items())


def _compact(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= 160 else text[:157] + "..."


def preview(stack: str, model_version: int | None, console: Console) -> bool:
    overrides = {"model_version": model_version} if model_version is not None else None
    run = run_stack(stack, overrides)
    version = run.settings.model_version
    table = Table(
        title=f"stack {stack}: {len(run.resources)} resources "
        f"({run.settings.endpoint_type}, model_version={version if version else 'unset: no endpoint'})"
    )
    for column in ("type", "name", "key properties"):
        table.add_column(column, overflow="fold")
    for resource in sorted(run.resources, key=lambda r: (r.type.startswith("mlops:"), r.type, r.name), reverse=True):
        table.add_row(resource.type, resource.name, describe(resource))
    console.print(table)
    outputs = Table(title=f"stack {stack}: outputs (the contract ml/ reads)", show_header=False)
    for key, value in sorted(run.outputs.items()):
        outputs.add_row(key, str(value))
    console.print(outputs)
    results = policies.evaluate(run.resources, run.settings)
    checks = Table(title=f"stack {stack}: offline policies")
    for column in ("policy", "result"):
        checks.add_column(column, overflow="fold")
    for policy in policies.POLICIES:
        violations = results[policy.name]
        checks.add_row(policy.description, "[green]pass[/]" if not violations else "[red]" + "; ".join(violations))
    console.print(checks)
    return not any(results.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    # No `choices` here: with nargs="*", argparse checks the empty default against them and exits 2.
    parser.add_argument("stacks", nargs="*", metavar="stack", help=f"one or more of {', '.join(STACKS)} (default: all)")
    parser.add_argument("--model-version", type=int, help="preview as if this version were promoted")
    args = parser.parse_args(argv)
    unknown = [stack for stack in args.stacks if stack not in STACKS]
    if unknown:
        parser.error(f"unknown stack {', '.join(unknown)}: use {', '.join(STACKS)} (STACK=prod, or none for all)")
    console = Console() if sys.stdout.isatty() else Console(width=200)
    ok = True
    for stack in args.stacks or STACKS:
        try:
            ok = preview(stack, args.model_version, console) and ok
        except StackConfigError as error:
            console.print(f"[bold red]error:[/] {error}", highlight=False)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

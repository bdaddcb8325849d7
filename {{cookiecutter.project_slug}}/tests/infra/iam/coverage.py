"""Resources -> actions -> a verdict: may a role apply what a promotion changes?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.mocks import Captured, StackRun
from tests.infra.iam import aws_data
from tests.infra.iam.evaluate import allowed, role
from tests.infra.iam.resources import key_context, spec_of


@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    context: dict[str, Any]
    why: str  # "<operation> <pulumi type> <name>"


def needs(resource: Captured, run: StackRun, operations: tuple[str, ...]) -> list[Need]:
    """Every (action, ARN) applying the resource takes, per AWS's schemas and authorization reference."""
    spec = spec_of(resource)
    project = run.settings.project
    region, account = project.aws_region, project.account(run.settings.stack)
    own_values = {"Partition": "aws", "Region": region, "Account": account, **spec.identity(resource.inputs)}
    found: list[Need] = []
    for operation in operations:
        if spec.cfn is not None:
            actions = aws_data.handler_permissions(spec.cfn, operation, region)
        else:
            actions = list(spec.actions.get(operation, []))
        actions += spec.extra.get(operation, [])
        why = f"{operation} {resource.type} {resource.name}"
        for action in dict.fromkeys(actions):
            if action in spec.not_needed:
                continue
            if action in spec.related:
                related = spec.related[action]
                for arn in related.arns(resource.inputs, run):
                    context = {**related.context, **(key_context(run, arn) if action.startswith("kms:") else {})}
                    found.append(Need(action, arn, context, why))
                continue
            arn = _own_arn(action, spec.own, own_values, resource)
            # Only the keys AWS puts in this action's request: a condition on any other would not match.
            known = aws_data.condition_keys(action)
            context = {k: v for k, v in spec.own_context(resource.inputs).items() if k.lower() in known}
            found.append(Need(action, arn, context, why))
    return found


def _own_arn(action: str, own: tuple[str, str], values: dict[str, str], resource: Captured) -> str:
    """The ARN the request names: the resource's own, as its service spells it.

    Where the reference lists the action for other resource types only (cloudwatch:TagResource on
    a dashboard, say), AWS still evaluates the request against the resource it names: the own ARN.
    """
    targets = aws_data.resource_arns(action)
    service = action.split(":")[0]
    if not targets:
        return "*"  # the action takes no resource (Service Authorization Reference)
    template = next((t for r, t in targets if (service, r) == own), None)
    if template is None:
        if service != own[0]:
            raise LookupError(
                f"{action} (for {resource.type} {resource.name}) applies to {[t for t, _ in targets]} of another "
                "service: add a Related rule, or a not_needed reason, in tests/infra/iam/resources.py"
            )
        template = aws_data.resource_arn_template(*own)
    arn = aws_data.fill(template, values)
    if arn is None:
        raise LookupError(f"{resource.type}: cannot name the ARN {template} from {values}")
    return arn


def refused(policy_document: str, role_arn: str, needed: list[Need]) -> list[Need]:
    principal = role(role_arn, policy_document)
    return [n for n in needed if not allowed(principal, n.action, n.resource, n.context)]


def describe(stack: str, role_name: str, missing: list[Need]) -> str:
    return "\n".join(
        f"  {stack}: {role_name} may not {n.action} on {n.resource}{f' ({n.context})' if n.context else ''}, "
        f"which {n.why} needs"
        for n in missing
    )

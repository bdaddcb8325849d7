"""The deploy role may apply everything a promotion changes, and the preview role only reads.

For every stack in both account layouts, the program runs under Pulumi's mocks without a model
and with two successive promotions. Each resource a promotion creates, changes or removes is
mapped to the IAM actions AWS's CloudFormation schemas list for its operations, each action to
its resource's ARN per the Service Authorization Reference, and the role's policy is asked,
through principalmapper's evaluator, whether it allows each. The administrator applies the rest.
"""

from __future__ import annotations

import json

import pytest

from ml import names
from tests.infra.iam import aws_data
from tests.infra.iam.coverage import Need, describe, needs, refused
from tests.infra.iam.evaluate import allowed, role
from tests.infra.iam.resources import SPECS, spec_of
from tests.infra.iam.scenarios import LAYOUTS, SCENARIOS, scenario

pytestmark = pytest.mark.xdist_group("iam")
IDS = [f"{stack}-{layout}" for stack, layout in SCENARIOS]


def deploy_needs(stack: str, layout: str) -> list[Need]:
    found = []
    for resource, run, operations in scenario(stack, layout).changed():
        found += needs(resource, run, operations)
    return found


def deploy_role(stack: str, layout: str) -> tuple[str, str]:
    project = LAYOUTS[layout]
    arn = f"arn:aws:iam::{project.account(stack)}:role/{names.deploy_role_name(project.resource_prefix, stack)}"
    return arn, scenario(stack, layout).policy_of(f"{stack}-github-deploy-policy")


@pytest.mark.parametrize(("stack", "layout"), SCENARIOS, ids=IDS)
def test_the_deploy_role_may_apply_everything_a_promotion_changes(stack: str, layout: str) -> None:
    needed = deploy_needs(stack, layout)
    assert needed, "a promotion changes nothing?"
    arn, document = deploy_role(stack, layout)
    missing = refused(document, arn, needed)
    assert not missing, (
        f"the deploy role lacks what a promotion applies:\n{describe(stack, 'the deploy role', missing)}"
    )


def test_a_deploy_role_missing_one_action_fails_naming_the_action_the_resource_and_the_stack() -> None:
    arn, document = deploy_role("prod", "single")
    policy = json.loads(document)
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        statement["Action"] = [a for a in actions if a != "sagemaker:CreateEndpoint"] or ["sagemaker:ListTags"]
    missing = refused(json.dumps(policy), arn, deploy_needs("prod", "single"))
    message = describe("prod", "the deploy role", missing)
    endpoint = names.endpoint_name(LAYOUTS["single"].resource_prefix, "prod")
    assert [n.action for n in missing] == ["sagemaker:CreateEndpoint"]
    assert "prod: the deploy role may not sagemaker:CreateEndpoint on arn:aws:sagemaker:" in message
    assert f":endpoint/{endpoint}, which create aws:sagemaker/endpoint:Endpoint" in message


def test_what_a_promotion_changes_is_what_the_table_knows() -> None:
    # A type the program declares at promotion and the table lacks fails here, naming the file to edit.
    for stack, layout in SCENARIOS:
        for resource, _, _ in scenario(stack, layout).changed():
            spec_of(resource)


def test_every_action_the_table_names_is_an_iam_action() -> None:
    for pulumi_type, spec in SPECS.items():
        named = [*spec.related, *(a for ops in spec.extra.values() for a in ops)]
        named += [a for ops in spec.actions.values() for a in ops]
        for action in named:
            assert aws_data.action_exists(action), (
                f"{pulumi_type}: {action} is not in the Service Authorization Reference"
            )
        if spec.cfn is not None:
            listed = {a for op in aws_data.OPERATIONS for a in aws_data.handler_permissions(spec.cfn, op, "us-east-1")}
            stale = sorted(set(spec.not_needed) - listed)
            assert not stale, f"{pulumi_type}: not_needed names {stale}, which {spec.cfn}'s handlers no longer list"


# ---- state and secrets: each role its own stack's ----


def state_object(layout: str, stack: str, of: str, kind: str = "stacks") -> str:
    """An object of stack `of`'s state in the bucket `stack`'s account keeps (Pulumi's DIY layout)."""
    project = LAYOUTS[layout]
    bucket = names.state_bucket_name(project.resource_prefix, project.account(stack))
    name = names.pulumi_project(project.resource_prefix)
    where = {
        "stacks": f".pulumi/stacks/{name}/{of}.json",
        "locks": f".pulumi/locks/organization/{name}/{of}/1f2e3d4c.json",
        "history": f".pulumi/history/{name}/{of}/{of}-1764576000.history.json",
    }[kind]
    return f"arn:aws:s3:::{bucket}/{where}"


def secrets_key(layout: str, stack: str) -> tuple[str, dict[str, list[str]]]:
    project = LAYOUTS[layout]
    arn = f"arn:aws:kms:{project.aws_region}:{project.account(stack)}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    return arn, {"kms:ResourceAliases": [names.secrets_key_alias(project.resource_prefix, stack)]}


@pytest.mark.parametrize(("stack", "layout"), SCENARIOS, ids=IDS)
def test_each_role_reads_and_writes_only_its_own_stacks_state_and_secrets(stack: str, layout: str) -> None:
    project = LAYOUTS[layout]
    deploy = role(*deploy_role(stack, layout))
    preview_arn = (
        f"arn:aws:iam::{project.account(stack)}:role/{names.preview_role_name(project.resource_prefix, stack)}"
    )
    preview = role(preview_arn, scenario(stack, layout).policy_of(f"{stack}-github-preview-policy"))
    own, (key, aliases) = state_object(layout, stack, stack), secrets_key(layout, stack)
    for principal in (deploy, preview):
        assert allowed(principal, "s3:GetObject", own)
        assert allowed(principal, "kms:Decrypt", key, aliases)
    for kind in ("stacks", "locks", "history"):
        assert allowed(deploy, "s3:PutObject", state_object(layout, stack, stack, kind)), kind
    assert allowed(deploy, "s3:DeleteObject", state_object(layout, stack, stack, "locks"))
    assert not allowed(preview, "s3:PutObject", own), "the preview role may write state"
    for other in (s for s in ("dev", "staging", "prod") if s != stack):
        other_state = state_object(layout, stack, other)
        other_key, other_aliases = secrets_key(layout, other)
        for principal in (deploy, preview):
            # Reading dev's checkpoint is the registry's StackReference, one account only.
            may_read = other == "dev" and not project.per_environment
            assert allowed(principal, "s3:GetObject", other_state) is may_read, f"{principal.arn} reads {other}'s state"
            assert not allowed(principal, "s3:PutObject", other_state), f"{principal.arn} writes {other}'s state"
            assert not allowed(principal, "s3:PutObject", state_object(layout, stack, other, "locks"))
            assert not allowed(principal, "kms:Decrypt", other_key, other_aliases), f"decrypts {other}'s secrets"

"""No path from GitHub to administrator, or to another environment's roles.

Two analyses, as the security reviewer would run them:

- cloudsplaining (Salesforce) over every role policy: privilege escalation, permissions
  management, writes, data exfiltration and credential exposure allowed on Resource "*". It
  only looks at "*" grants.
- principalmapper (NCC Group) over the roles created in moto: its graph of who can become whom
  (assume-role trust, trust-policy edits, passing a role to a SageMaker job, ...). Its SageMaker
  edges only test job creation on "*", and its administrator test only a principal editing itself,
  so two resource-scoped rules are added on its evaluator: passing a role to a job whose ARN the
  source's policy names, and editing any role's permissions or trust (which lets the editor grant
  that role anything and then reach it). A fixture with the deploy role this template had, which
  could edit the execution role and pass it to a job, must be flagged.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.session
import pytest
from cloudsplaining.scan.policy_document import PolicyDocument
from moto import mock_aws
from principalmapper.common import Graph, Node
from principalmapper.graphing import gathering
from principalmapper.querying.query_interface import local_check_authorization_full

from infra.mocks import Captured, StackRun
from ml import names
from tests.infra.iam.scenarios import LAYOUTS, scenario

pytestmark = pytest.mark.xdist_group("iam")
SINGLE = LAYOUTS["single"]
PREFIX, ACCOUNT = SINGLE.resource_prefix, SINGLE.aws_account_id
ENVIRONMENTS = ("dev", "staging", "prod")
# What a principal may do to another role's permissions or trust, any of which hands it that role.
POLICY_WRITES = (
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
)
JOB_ACTIONS = ("sagemaker:CreateTrainingJob", "sagemaker:CreateProcessingJob")
# cloudsplaining's credential-exposure findings reviewed and kept, with the reason.
CREDENTIALS_ACCEPTED = {
    "ecr:GetAuthorizationToken": "ECR's login for the execution role; the token pulls only what its "
    "ecr:BatchGetImage allows, the scikit-learn image",
}
# The deploy role this template had before: it could rewrite the execution role, then pass it on.
TODAYS_PATH = {
    "Sid": "ManageExecutionRole",
    "Effect": "Allow",
    "Action": ["iam:GetRole", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:TagRole"],
    "Resource": f"arn:aws:iam::{ACCOUNT}:role/{names.execution_role_name(PREFIX, 'dev')}",
}


def stack_runs() -> list[StackRun]:
    # The most each role ever holds: every stack, promoted (the policies do not change with the version).
    return [scenario(stack, "single").runs[-1] for stack in ENVIRONMENTS]


def role_policies(run: StackRun) -> dict[str, tuple[Captured, list[Captured]]]:
    roles: dict[str, tuple[Captured, list[Captured]]] = {
        r.inputs["name"]: (r, []) for r in run.of_type("aws:iam/role:Role")
    }
    ids = {r.id: r.inputs["name"] for r in run.of_type("aws:iam/role:Role")}
    for item in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        roles[ids.get(item.inputs["role"], item.inputs["role"])][1].append(item)
    return roles


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_cloudsplaining_finds_no_escalation_and_no_unconstrained_write(stack: str) -> None:
    run = scenario(stack, "single").runs[-1]
    for item in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        document = PolicyDocument(json.loads(item.inputs["policy"]))
        assert document.allows_privilege_escalation == [], item.name
        assert document.permissions_management_without_constraints == [], item.name
        assert document.write_actions_without_constraints == [], item.name
        assert document.allows_data_exfiltration_actions == [], item.name
        assert sorted(set(document.credentials_exposure) - set(CREDENTIALS_ACCEPTED)) == [], item.name


def build_graph(extra_deploy_statements: list[dict[str, Any]] | None = None) -> Graph:
    """Create every stack's roles in one moto account (the single layout), plus an administrator
    role, and let principalmapper gather its graph from IAM as it would from a real account."""
    with mock_aws():
        iam = boto3.client("iam", region_name=SINGLE.aws_region)
        for run in stack_runs():
            for name, (created, policies) in role_policies(run).items():
                iam.create_role(RoleName=name, AssumeRolePolicyDocument=created.inputs["assumeRolePolicy"])
                for item in policies:
                    document = json.loads(item.inputs["policy"])
                    if extra_deploy_statements and name == names.deploy_role_name(PREFIX, run.settings.stack):
                        document["Statement"] += extra_deploy_statements
                    iam.put_role_policy(RoleName=name, PolicyName=item.name, PolicyDocument=json.dumps(document))
        admin_trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                       "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}  # fmt: skip
        everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.create_role(RoleName="administrator", AssumeRolePolicyDocument=json.dumps(admin_trust))
        iam.put_role_policy(RoleName="administrator", PolicyName="everything", PolicyDocument=json.dumps(everything))
        # The graph is principalmapper's own, in memory: the moto account can go once it is built.
        return gathering.create_graph(botocore.session.Session(), ["iam", "sts", "sagemaker"], [SINGLE.aws_region])


@pytest.fixture(scope="module")
def today() -> Graph:
    return build_graph()


@pytest.fixture(scope="module")
def before() -> Graph:
    return build_graph([TODAYS_PATH])


def may(node: Node, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    return bool(local_check_authorization_full(node, action, resource, dict(context or {})))


def job_arns(node: Node) -> list[str]:
    """The job ARNs a node's own policies name for creating jobs, made concrete."""
    arns = []
    for policy in node.attached_policies:
        for statement in policy.policy_doc.get("Statement", []):
            actions = statement.get("Action", [])
            actions = actions if isinstance(actions, list) else [actions]
            if statement.get("Effect") == "Allow" and set(actions) & set(JOB_ACTIONS):
                resources = statement.get("Resource", [])
                arns += [r.replace("*", "x") for r in (resources if isinstance(resources, list) else [resources])]
    return arns


def reachable(graph: Graph, start: Node) -> tuple[set[str], list[str]]:
    """Every role start can become (principalmapper's edges and the resource-scoped job edge), and
    the role-permission edits any of them may make."""
    roles = [n for n in graph.nodes if ":role/" in n.arn]
    seen, todo, edits = {start.arn}, [start], []
    while todo:
        node = todo.pop()
        targets = [e.destination for e in graph.edges if e.source.arn == node.arn]
        for job in job_arns(node):
            # A job runs its code as the role passed to it, if SageMaker may assume that role.
            targets += [
                r for r in roles
                if "sagemaker.amazonaws.com" in json.dumps(r.trust_policy)
                and may(node, "iam:PassRole", r.arn, {"iam:PassedToService": "sagemaker.amazonaws.com"})
                and any(may(node, action, job) for action in JOB_ACTIONS)
            ]  # fmt: skip
        for other in roles:
            edits += [
                f"{node.arn} may {action} on {other.arn}" for action in POLICY_WRITES if may(node, action, other.arn)
            ]
        for target in targets:
            if target.arn not in seen:
                seen.add(target.arn)
                todo.append(target)
    return seen, edits


def github_roles(graph: Graph) -> list[Node]:
    wanted = {names.deploy_role_name(PREFIX, e) for e in ENVIRONMENTS}
    wanted |= {names.preview_role_name(PREFIX, e) for e in ENVIRONMENTS}
    return [n for n in graph.nodes if n.arn.rsplit("/", 1)[-1] in wanted]


def environment_of(arn: str) -> str | None:
    name = arn.rsplit("/", 1)[-1]
    return next((e for e in ENVIRONMENTS if name.startswith(f"{PREFIX}-{e}-")), None)


def findings_of(built: Graph) -> list[str]:
    findings = []
    admins = {n.arn for n in built.nodes if n.is_admin}
    for start in github_roles(built):
        seen, edits = reachable(built, start)
        env = environment_of(start.arn)
        findings += [f"{start.arn} reaches administrator {arn}" for arn in seen & admins]
        findings += [
            f"{start.arn} reaches {arn} of another environment"
            for arn in seen
            if environment_of(arn) not in (env, None)
        ]
        findings += [f"escalation: {edit}" for edit in edits]
    return findings


def test_principalmapper_sees_the_roles_and_the_administrator(today: Graph) -> None:
    assert [n.arn for n in today.nodes if n.is_admin] == [f"arn:aws:iam::{ACCOUNT}:role/administrator"]
    assert len(github_roles(today)) == 6


def test_no_role_github_can_assume_reaches_administrator_or_another_environment(today: Graph) -> None:
    findings = findings_of(today)
    assert findings == [], "\n".join(findings)


def test_the_old_deploy_roles_path_to_administrator_is_flagged(before: Graph) -> None:
    findings = findings_of(before)
    execution = f"arn:aws:iam::{ACCOUNT}:role/{names.execution_role_name(PREFIX, 'dev')}"
    deploy = f"arn:aws:iam::{ACCOUNT}:role/{names.deploy_role_name(PREFIX, 'dev')}"
    # It rewrote the execution role's policy and trust, then could pass it to a job: flagged, by name.
    assert f"escalation: {deploy} may iam:PutRolePolicy on {execution}" in findings
    assert f"escalation: {deploy} may iam:UpdateAssumeRolePolicy on {execution}" in findings
    # principalmapper's own edge: editing the trust policy hands the deploy role the execution role.
    assert (deploy, execution) in {(e.source.arn, e.destination.arn) for e in before.edges}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_deploy_role_reaches_only_its_own_execution_role_and_a_preview_role_nothing(today: Graph, env: str) -> None:
    start = next(n for n in github_roles(today) if n.arn.endswith(names.deploy_role_name(PREFIX, env)))
    expected = {start.arn}
    if env == "dev":  # only dev's deploy role starts jobs (the pipeline trains there)
        expected.add(f"arn:aws:iam::{ACCOUNT}:role/{names.execution_role_name(PREFIX, env)}")
    assert reachable(today, start)[0] == expected
    preview = next(n for n in github_roles(today) if n.arn.endswith(names.preview_role_name(PREFIX, env)))
    assert reachable(today, preview)[0] == {preview.arn}

"""infra/bootstrap: per account, the state bucket, each environment's secrets key, the GitHub OIDC
provider, the service-linked roles and job log retention; one stack per account in either layout."""

from __future__ import annotations

import pytest

from infra import policies
from infra.mocks import run_bootstrap
from infra.settings import StackConfigError
from ml import names
from ml.config import load_config

PROJECT = load_config().project
PER_ENVIRONMENT = PROJECT.model_copy(
    update={"account_layout": "per-environment", "accounts": {"staging": "234567890123", "prod": "345678901234"}}
)
SINGLE = PROJECT.model_copy(update={"account_layout": "single", "accounts": {}})


def by_type(resources: list) -> dict[str, list]:  # type: ignore[type-arg]
    found: dict[str, list] = {}  # type: ignore[type-arg]
    for resource in resources:
        found.setdefault(resource.type, []).append(resource)
    return found


def test_one_account_gets_one_state_bucket_and_a_secrets_key_per_environment() -> None:
    resources, outputs = run_bootstrap("bootstrap", SINGLE)
    state_bucket = names.state_bucket_name(SINGLE.resource_prefix, SINGLE.aws_account_id)
    assert outputs["state_bucket"] == state_bucket
    assert outputs["login_url"] == f"s3://{state_bucket}?region={SINGLE.aws_region}"
    assert outputs["secrets_providers"] == {
        env: f"awskms://alias/{SINGLE.resource_prefix}-{env}-pulumi-secrets?region={SINGLE.aws_region}"
        for env in ("dev", "staging", "prod")
    }
    aliases = {a.inputs["name"] for a in by_type(resources)["aws:kms/alias:Alias"]}
    assert aliases == {names.secrets_key_alias(SINGLE.resource_prefix, e) for e in ("dev", "staging", "prod")} | {
        names.state_key_alias(SINGLE.resource_prefix)
    }
    oidc = by_type(resources)["aws:iam/openIdConnectProvider:OpenIdConnectProvider"][0].inputs
    assert oidc["url"] == "https://token.actions.githubusercontent.com"
    assert oidc["clientIdLists"] == ["sts.amazonaws.com"]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_each_account_of_the_per_environment_layout_has_its_own_bootstrap(env: str) -> None:
    resources, outputs = run_bootstrap(f"bootstrap-{env}", PER_ENVIRONMENT)
    account = PER_ENVIRONMENT.account(env)
    assert outputs["state_bucket"] == names.state_bucket_name(PER_ENVIRONMENT.resource_prefix, account)
    assert list(outputs["secrets_providers"]) == [env]
    provider = by_type(resources)["pulumi:providers:aws"][0].inputs
    assert account in provider["allowedAccountIds"]


def test_a_bootstrap_stack_for_the_other_layout_is_refused_by_name() -> None:
    with pytest.raises(StackConfigError, match="bootstrap-dev, bootstrap-staging or bootstrap-prod"):
        run_bootstrap("bootstrap", PER_ENVIRONMENT)
    with pytest.raises(StackConfigError, match="the bootstrap stack is `bootstrap`"):
        run_bootstrap("bootstrap-prod", SINGLE)


def test_the_service_linked_roles_exist_before_any_stack_needs_them() -> None:
    # So no deploy role needs iam:CreateServiceLinkedRole (tests/infra/iam/).
    resources, _ = run_bootstrap("bootstrap", SINGLE)
    services = {r.inputs["awsServiceName"] for r in by_type(resources)["aws:iam/serviceLinkedRole:ServiceLinkedRole"]}
    assert services == {"sagemaker.application-autoscaling.amazonaws.com", "apidestinations.events.amazonaws.com"}
    retention = {
        r.inputs["name"]: r.inputs["retentionInDays"] for r in by_type(resources)["aws:cloudwatch/logGroup:LogGroup"]
    }
    assert retention == {g: 90 for g in ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/ProcessingJobs",
                                          "/aws/sagemaker/TransformJobs")}  # fmt: skip


def test_the_state_bucket_meets_the_bucket_policies() -> None:
    resources, _ = run_bootstrap("bootstrap", SINGLE)
    settings_free = [policies.public_access_blocked, policies.buckets_encrypted, policies.tls_only,
                     policies.versioning, policies.kms_rotation, policies.no_access_keys]  # fmt: skip
    for check in settings_free:
        assert check(resources, None) == [], check.__name__  # type: ignore[arg-type]

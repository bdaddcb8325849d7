"""infra/bootstrap: state bucket, secrets key and GitHub OIDC provider, once per account."""

from __future__ import annotations

from infra import policies
from infra.mocks import run_bootstrap
from ml import names
from ml.config import load_config

PROJECT = load_config().project


def test_bootstrap_creates_the_state_backend_and_the_oidc_provider() -> None:
    resources, outputs = run_bootstrap()
    by_type = {r.type: r for r in resources}
    state_bucket = names.state_bucket_name(PROJECT.resource_prefix, PROJECT.aws_account_id)
    assert outputs["state_bucket"] == state_bucket
    assert outputs["login_url"] == f"s3://{state_bucket}"
    assert outputs["secrets_provider"] == (
        f"awskms://alias/{PROJECT.resource_prefix}-pulumi-secrets?region={PROJECT.aws_region}"
    )
    assert by_type["aws:kms/key:Key"].inputs["enableKeyRotation"] is True
    oidc = by_type["aws:iam/openIdConnectProvider:OpenIdConnectProvider"].inputs
    assert oidc["url"] == "https://token.actions.githubusercontent.com"
    assert oidc["clientIdLists"] == ["sts.amazonaws.com"]


def test_the_state_bucket_meets_the_bucket_policies() -> None:
    resources, _ = run_bootstrap()
    settings_free = [policies.public_access_blocked, policies.buckets_encrypted, policies.tls_only,
                     policies.versioning, policies.kms_rotation, policies.no_access_keys]  # fmt: skip
    for check in settings_free:
        assert check(resources, None) == [], check.__name__  # type: ignore[arg-type]

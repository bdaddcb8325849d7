from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from ml import names

# The pre-generation hook allows prefixes up to this length; every name must still fit.
MAX_PREFIX = "a" * 28


@pytest.mark.parametrize("env", ["local", "dev", "staging", "prod"])
def test_the_longest_allowed_prefix_fits_every_name(env: str) -> None:
    for purpose in names.BUCKET_PURPOSES:
        assert len(names.bucket_name(MAX_PREFIX, env, purpose, "123456789012")) <= 63
    assert len(names.endpoint_name(MAX_PREFIX, env)) <= 63
    assert len(names.model_package_group_name(MAX_PREFIX, env)) <= 63
    assert len(names.execution_role_name(MAX_PREFIX, env)) <= 64
    assert len(names.deploy_role_name(MAX_PREFIX, env)) <= 64
    assert len(names.state_bucket_name(MAX_PREFIX, "123456789012")) <= 63
    for kind in ("train", "eval"):
        assert len(names.job_name(MAX_PREFIX, env, kind)) <= 63


def test_job_names_are_unique_and_sortable() -> None:
    now = datetime(2026, 11, 22, 14, 30, tzinfo=UTC)
    first, second = names.job_name("p", "local", "train", now), names.job_name("p", "local", "train", now)
    assert first != second
    assert re.fullmatch(r"p-local-train-20261122-143000-[0-9a-f]{4}", first)


def test_a_name_over_the_limit_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="shorten resource_prefix"):
        names.bucket_name("a" * 40, "staging", "access-logs", "123456789012")

"""Entry point for `pulumi up` in infra/bootstrap/ (local state; see README)."""

import sys
from pathlib import Path

import pulumi

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from infra.bootstrap.program import build
from ml.config import load_config

# An account where these service-linked roles already exist sets `create_service_linked_roles: false`.
create_roles = pulumi.Config().get_bool("create_service_linked_roles")
for key, value in build(load_config().project, pulumi.get_stack(), create_roles is not False).items():
    pulumi.export(key, value)

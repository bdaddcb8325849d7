"""Entry point for `pulumi up` in infra/bootstrap/ (local state; see README)."""

import sys
from pathlib import Path

import pulumi

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from infra.bootstrap.program import build
from ml.config import load_config

for key, value in build(load_config().project).items():
    pulumi.export(key, value)

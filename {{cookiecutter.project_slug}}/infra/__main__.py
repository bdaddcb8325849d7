"""Entry point for `pulumi up` in infra/. All logic lives in infra/program.py."""

import sys
from pathlib import Path

import pulumi

# Pulumi runs this file from infra/; the project root holds the ml and infra packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.program import build, load_settings

for key, value in build(load_settings()).items():
    pulumi.export(key, value)

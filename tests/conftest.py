"""Fixtures for baking the template. All helpers live in scripts/bakery.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scripts.bakery import Baked, bake

Bake = Callable[..., Baked]


@pytest.fixture
def bake_in(tmp_path: Path) -> Bake:
    """Bake into this test's temporary directory, with answers overriding the defaults."""

    def _bake(**answers: Any) -> Baked:
        return bake(tmp_path, **answers)

    return _bake


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Baked:
    """One project baked with the default answers, shared by the read-only tests."""
    return bake(tmp_path_factory.mktemp("default"))

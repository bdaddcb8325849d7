"""Every ComponentResource has the house shape, checked on the code and on what it declares."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import pulumi
import pytest

from infra.mocks import run_bootstrap, run_stack

INFRA = Path(__file__).resolve().parents[2] / "infra"
MODULES = ["infra.components.storage", "infra.components.roles", "infra.components.registry",
           "infra.components.endpoint", "infra.components.monitoring", "infra.components.tracking",
           "infra.bootstrap.program"]  # fmt: skip


def components() -> list[tuple[str, type[pulumi.ComponentResource]]]:
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, pulumi.ComponentResource) and cls.__module__ == name:
                found.append((name, cls))
    return found


def test_there_is_one_component_per_concern() -> None:
    assert {cls.__name__ for _, cls in components()} == {
        "Storage", "Roles", "Registry", "Endpoint", "Monitoring", "Tracking", "StateBackend"
    }  # fmt: skip


@pytest.mark.parametrize(("module", "cls"), components(), ids=lambda c: getattr(c, "__name__", c))
def test_component_takes_dataclass_args_and_a_typed_token(module: str, cls: type) -> None:
    args = inspect.signature(cls).parameters["args"].annotation
    args_class = getattr(importlib.import_module(module), str(args))
    assert dataclasses.is_dataclass(args_class)
    source = inspect.getsource(cls)
    token = f'"mlops:{module.split(".")[-1] if "bootstrap" not in module else "bootstrap"}:{cls.__name__}"'
    assert token in source
    assert "self.register_outputs(" in source


def test_every_resource_is_parented_by_a_component() -> None:
    runs = [run_stack("prod", {"model_version": 2, "endpoint_type": "real-time", "instance_count": 2}).resources,
            run_stack("dev", {"model_version": 2}).resources,
            run_stack("staging", {"model_version": 2}).resources, run_bootstrap()[0]]  # fmt: skip
    for resources in runs:
        for resource in resources:
            # Every AWS resource; the provider ("pulumi:providers:aws") and stack references are not children.
            if resource.type.startswith("aws:"):
                assert resource.parent_types[-1].startswith("mlops:"), resource.urn


def test_no_resource_is_created_inside_apply() -> None:
    offenders = []
    for path in INFRA.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "apply":
                inner = ast.unparse(node)
                if "aws." in inner:
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []

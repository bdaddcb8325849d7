"""A request checked against every limit botocore's model of the API declares.

botocore's own ParamValidator checks types, required members and minimum lengths, but not maximum
lengths, ranges or enums (the service does, on arrival): a 30-column InputFilter passed it and
SageMaker allows 63 characters. This walks the same shapes and reports each limit a value breaks.
"""

from __future__ import annotations

from typing import Any

from botocore.model import Shape
from botocore.session import get_session
from botocore.validate import ParamValidator


def refusals(service: str, operation: str, request: dict[str, Any]) -> list[str]:
    """What botocore's model of the API refuses in a request: ParamValidator's report (types,
    required members, minimum lengths), then every other limit it declares (limit_violations)."""
    shape = input_shape(service, operation)
    report = ParamValidator().validate(request, shape)
    return ([report.generate_report()] if report.has_errors() else []) + limit_violations(request, shape)


def input_shape(service: str, operation: str) -> Shape:
    return get_session().get_service_model(service).operation_model(operation).input_shape


def limit_violations(value: Any, shape: Shape, path: str = "") -> list[str]:
    """Every max/min length, range and enum of `shape` (botocore's metadata) that `value` breaks."""
    found: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        for name, item in value.items():
            if name in members:
                found += limit_violations(item, members[name], f"{path}.{name}" if path else name)
    elif kind == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            found += limit_violations(item, shape.member, f"{path}[{index}]")
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            found += limit_violations(key, shape.key, f"{path} key {key!r}")
            found += limit_violations(item, shape.value, f"{path}[{key!r}]")
    if kind in ("string", "list", "map") and hasattr(value, "__len__"):
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"{path}: length {len(value)} is over the maximum {meta['max']} ({value!r})")
        if "min" in meta and len(value) < meta["min"]:
            found.append(f"{path}: length {len(value)} is under the minimum {meta['min']}")
    if kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
        if "max" in meta and value > meta["max"]:
            found.append(f"{path}: {value} is over the maximum {meta['max']}")
        if "min" in meta and value < meta["min"]:
            found.append(f"{path}: {value} is under the minimum {meta['min']}")
    if kind == "string" and shape.enum and isinstance(value, str) and value not in shape.enum:
        found.append(f"{path}: {value!r} is not one of {shape.enum}")
    return found

"""The data contract: the one schema object everything downstream reads.

It lives in schema.toml beside mlops.toml ([data].schema names it), written by
`make infer-schema DATA=<file> LABEL=<column>` for you to review and commit. It declares the
task (binary, multiclass or regression), the label and, per feature, its kind (numeric or
categorical), whether it may be missing, its range or its categories. Validation (ml/validation.py,
with pandera), training, serving, evaluation, the gate and monitoring all follow it; no code lists
feature names.

The training and serving containers cannot import this module (they run ml/train.py and
ml/inference.py alone), so the data step hands them the same schema as JSON (as_json()).
"""

from __future__ import annotations

import enum
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.errors import ConfigError
from ml.hashing import json_sha256

if TYPE_CHECKING:
    from ml.config import Config


class Task(enum.StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"

    @property
    def is_classification(self) -> bool:
        return self is not Task.REGRESSION


class Kind(enum.StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


Label = int | float | str


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    nullable: bool = False
    minimum: float | None = None  # numeric: the range the data must stay in
    maximum: float | None = None
    categories: tuple[str, ...] = ()  # categorical: the values the data may take


@dataclass(frozen=True)
class Schema:
    label: str
    task: Task
    features: tuple[Feature, ...]
    classes: tuple[Label, ...] = ()  # classification: every label value, sorted; binary's positive is the last
    path: Path = field(default=Path("schema.toml"), compare=False)

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def feature(self, name: str) -> Feature:
        return next(feature for feature in self.features if feature.name == name)

    def of_kind(self, kind: Kind) -> list[str]:
        return [feature.name for feature in self.features if feature.kind is kind]

    def as_dict(self) -> dict[str, Any]:
        """The schema as plain data: what the containers read (train.py, inference.py, evaluate.py)."""
        features = []
        for feature in self.features:
            item: dict[str, Any] = {"name": feature.name, "kind": str(feature.kind), "nullable": feature.nullable}
            if feature.kind is Kind.NUMERIC:
                item |= {k: v for k, v in (("min", feature.minimum), ("max", feature.maximum)) if v is not None}
            else:
                item["categories"] = list(feature.categories)
            features.append(item)
        label: dict[str, Any] = {"name": self.label, "task": str(self.task)}
        if self.task.is_classification:
            label["classes"] = list(self.classes)
        return {"label": label, "features": features}

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def signature(self) -> str:
        """What makes two models comparable: label, task, classes, feature names and kinds.

        Ranges and categories may move as data grows; a model still scores the other's test set.
        A different signature starts a new lineage (the gate then compares with thresholds only).
        """
        return json_sha256(
            {
                "label": self.label,
                "task": str(self.task),
                "classes": [str(c) for c in self.classes],
                "features": [[f.name, str(f.kind)] for f in self.features],
            }
        )


def _error(path: Path, key: str, problem: str) -> ConfigError:
    return ConfigError(
        f"{path}: {key} {problem}. Fix it in the file, or write it again with `make infer-schema DATA=<file> LABEL=<column>`."
    )


def from_dict(raw: dict[str, Any], path: Path) -> Schema:
    """Check and build a schema from schema.toml's content (or the JSON the containers get)."""
    label = raw.get("label")
    if not isinstance(label, dict) or not isinstance(label.get("name"), str) or not label["name"]:
        raise _error(path, "[label].name", "is missing: name the column the model predicts")
    try:
        task = Task(str(label.get("task")))
    except ValueError:
        raise _error(path, "[label].task", f"is {label.get('task')!r}; use binary, multiclass or regression") from None
    classes: tuple[Label, ...] = ()
    if task.is_classification:
        values = label.get("classes")
        if not isinstance(values, list) or len(values) < 2 or len(set(map(str, values))) != len(values):
            raise _error(path, "[label].classes", "must list at least two distinct label values")
        if task is Task.BINARY and len(values) != 2:
            raise _error(
                path, "[label].classes", f"has {len(values)} values; binary takes two (or set task = 'multiclass')"
            )
        classes = tuple(values)
    elif "classes" in label:
        raise _error(path, "[label].classes", "is set, but a regression label has no classes")
    features_raw = raw.get("features")
    if not isinstance(features_raw, list) or not features_raw:
        raise _error(path, "[[features]]", "is missing: the model needs at least one feature")
    features = []
    for number, item in enumerate(features_raw):
        where = f"[[features]] #{number + 1}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise _error(path, f"{where} name", "is missing")
        name = item["name"]
        try:
            kind = Kind(str(item.get("kind")))
        except ValueError:
            raise _error(
                path, f"{where} ({name!r}) kind", f"is {item.get('kind')!r}; use numeric or categorical"
            ) from None
        unknown = set(item) - {"name", "kind", "nullable", "min", "max", "categories"}
        if unknown:
            raise _error(path, f"{where} ({name!r})", f"has unknown key(s) {', '.join(sorted(unknown))}")
        if kind is Kind.CATEGORICAL:
            categories = item.get("categories")
            if not isinstance(categories, list) or not categories:
                raise _error(path, f"{where} ({name!r}) categories", "must list the values the column may take")
            features.append(
                Feature(name, kind, bool(item.get("nullable", False)), categories=tuple(str(c) for c in categories))
            )
        else:
            bounds = [item.get(key) for key in ("min", "max")]
            if any(b is not None and (isinstance(b, bool) or not isinstance(b, int | float)) for b in bounds):
                raise _error(path, f"{where} ({name!r}) min/max", "must be numbers")
            features.append(Feature(name, kind, bool(item.get("nullable", False)), bounds[0], bounds[1]))
    names = [feature.name for feature in features]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _error(path, "[[features]]", f"names {', '.join(duplicates)} more than once")
    if label["name"] in names:
        raise _error(path, "[label].name", f"{label['name']!r} is also a feature; a model cannot read its own label")
    return Schema(label["name"], task, tuple(features), classes, path)


def load(path: Path) -> Schema:
    if not path.is_file():
        raise ConfigError(
            f"the schema {path} does not exist ([data].schema in mlops.toml names it). Write it from your data with "
            "`make infer-schema DATA=<file> LABEL=<column>`, then review it."
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}. Fix the syntax, or run `make infer-schema` again."
        ) from None
    return from_dict(raw, path)


def for_config(config: Config) -> Schema:
    """The schema [data].schema names, read once per file version."""
    path = config.schema_path
    stamp = path.stat().st_mtime_ns if path.is_file() else 0
    cached = _loaded.get(path)
    if cached is None or cached[0] != stamp:
        cached = (stamp, load(path))
        _loaded[path] = cached
    return cached[1]


_loaded: dict[Path, tuple[int, Schema]] = {}


def to_toml(schema: Schema, source: str) -> str:
    """schema.toml's text: the schema, with comments a reviewer needs."""
    import tomli_w

    header = (
        f"# The data contract, inferred by `make infer-schema` from {source}. Review it and commit it:\n"
        "# the data step validates every row against it (ml/validation.py) and training, serving,\n"
        "# evaluation and monitoring all follow it.\n"
        "#   [label].task: binary, multiclass or regression. Classes are sorted; binary's positive class is the last.\n"
        "#   [[features]]: kind numeric (min, max: the range the data must stay in) or categorical (categories:\n"
        "#   the values the data may take); nullable = true lets values be missing (the model imputes them).\n"
        "# A changed label, task, class list or feature list starts a new lineage: the gate then compares the\n"
        "# candidate with [gate.thresholds] only, not with the champion.\n\n"
    )
    return header + tomli_w.dumps(schema.as_dict())

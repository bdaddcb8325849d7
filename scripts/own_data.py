"""The README's "Your data, your model" steps, scripted: switch a baked project to another data set.

tests/test_own_data.py runs them for scikit-learn's wine (multiclass, a column named with '/') and
diabetes (regression) data and for a generated churn table with categories and missing values,
then the project's own `make pipeline` and `make test`. Each step is one the README tells a person
to take: put the file under data/, `make infer-schema DATA=... LABEL=...`, then set the keys
infer-schema names in mlops.toml ([data].source, [train].estimator, [gate], [monitor].quality_metrics,
the slices and fairness groups of the new data's columns) and [gate].min_gain_over_simple.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scripts.bakery import Baked


@dataclass(frozen=True)
class DataSet:
    name: str
    label: str
    estimator: str
    primary_metric: str
    thresholds: dict[str, float]
    quality_metric: str
    # Python run in the baked project's environment, writing the CSV to the path in argv[1].
    writer: str
    # [gate.slices.*] and [gate.fairness] for the data's columns, as a person writes them from what
    # `make infer-schema` suggests (tests/test_own_data.py checks it suggested these tables).
    slices: str = ""
    # How much the forest must beat the linear baseline by, from what the first run showed: the
    # diabetes forest trails Ridge by 0.017 r2 on its test set, and the churn forest leads by 0.002.
    min_gain_over_simple: float = 0.0


WINE = DataSet(
    "wine",
    "target",
    "sklearn.ensemble.RandomForestClassifier",
    "f1_macro",
    {"accuracy": 0.8, "f1_macro": 0.8},
    "accuracy",
    "import sys\nfrom sklearn.datasets import load_wine\n"
    "load_wine(as_frame=True).frame.to_csv(sys.argv[1], index=False)",
    # 45 test rows: thirds of 15, so min_rows is 10 for the groups to be judged.
    slices="""[gate.slices.alcohol]
column = "alcohol"
bins = [12.5, 13.5]
min_rows = 10
thresholds = { accuracy = 0.7 }

[gate.fairness]
groups = ["alcohol"]
metrics = ["recall_macro"]
max_disparity = 0.3
""",
)
DIABETES = DataSet(
    "diabetes",
    "target",
    "sklearn.ensemble.RandomForestRegressor",
    "r2",
    {"r2": 0.2, "rmse": 80.0},
    "r2",
    "import sys\nfrom sklearn.datasets import load_diabetes\n"
    "load_diabetes(as_frame=True).frame.to_csv(sys.argv[1], index=False)",
    slices="""[gate.slices.age]
column = "age"
bins = [-0.02, 0.0235]
min_rows = 30
thresholds = { mae = 80.0 }

[gate.fairness]
groups = ["age"]
metrics = ["mae"]
max_disparity = 19.3
""",
    min_gain_over_simple=-0.05,
)
CHURN = DataSet(
    "churn",
    "churned",
    "sklearn.ensemble.RandomForestClassifier",
    "roc_auc",
    {"roc_auc": 0.7, "accuracy": 0.6},
    "accuracy",
    """import sys
import numpy as np, pandas as pd
rng = np.random.default_rng(0)
n = 400
colour = rng.choice(["red", "green", "blue, dark"], n)
size = rng.normal(10, 3, n)
plan = rng.choice(["basic", "pro"], n)
churned = np.where(size + (colour == "red") * 4 + rng.normal(0, 1, n) > 12, "yes", "no")
frame = pd.DataFrame({"colour": colour, "size": size, "plan": plan, "churned": churned})
frame.loc[rng.choice(n, 30, replace=False), "size"] = np.nan
frame.loc[rng.choice(n, 20, replace=False), "colour"] = np.nan
frame.to_csv(sys.argv[1], index=False)
""",
    slices="""[gate.slices.colour]
column = "colour"
values = ["blue, dark", "green", "red"]
min_rows = 20
thresholds = { accuracy = 0.6 }

[gate.fairness]
groups = ["colour"]
metrics = ["recall"]
max_disparity = 0.3
""",
    min_gain_over_simple=-0.01,
)
DATA_SETS = (WINE, DIABETES, CHURN)


def set_key(text: str, section: str, key: str, value: str) -> str:
    """mlops.toml with `key = value` set inside [section], as a person edits it (comments kept)."""
    pattern = re.compile(rf"(^\[{re.escape(section)}\]\n(?:(?!^\[).*\n)*?)^{re.escape(key)} = .*$", re.MULTILINE)
    if not pattern.search(text):
        raise AssertionError(f"mlops.toml has no {key} in [{section}]")
    return pattern.sub(lambda match: f"{match.group(1)}{key} = {value}", text, count=1)


def set_thresholds(text: str, thresholds: dict[str, float]) -> str:
    body = "".join(f"{name} = {value}\n" for name, value in thresholds.items())
    return re.sub(r"^\[gate\.thresholds\]\n(?:[^\[\n][^\n]*\n)*", f"[gate.thresholds]\n{body}\n", text, flags=re.M)


def switch(project: Baked, data: DataSet, env: dict[str, str]) -> str:
    """Bring data into the project by the README's steps; returns what `make infer-schema` printed."""
    relative = f"data/{data.name}.csv"
    project.run_check("make", "install", env=env)
    project.run_check(env.get("UV", "uv"), "run", "--no-sync", "python", "-c", data.writer, relative, env=env)
    printed = project.run_check("make", "infer-schema", f"DATA={relative}", f"LABEL={data.label}", env=env)
    config = project.path / "mlops.toml"
    text = config.read_text(encoding="utf-8")
    text = set_key(text, "data", "source", f'"{relative}"')
    text = set_key(text, "train", "estimator", f'"{data.estimator}"')
    text = set_key(text, "gate", "primary_metric", f'"{data.primary_metric}"')
    text = set_thresholds(text, data.thresholds)
    text = set_key(text, "monitor", "quality_metrics", f'["{data.quality_metric}"]')
    text = set_key(text, "gate", "min_gain_over_simple", repr(data.min_gain_over_simple))
    text = set_slices(text, data.slices)
    config.write_text(text, encoding="utf-8")
    return printed


def set_slices(text: str, tables: str) -> str:
    """mlops.toml with the example's [gate.slices.*] and [gate.fairness] tables replaced by these
    (the comments between them, which are not the example's, stay)."""
    table = re.compile(r"^\[gate\.(?:slices\.[^\]]+|fairness)\]\n(?:(?![\[#]).*\n)*", re.MULTILINE)
    first = table.search(text)
    if first is None:
        raise AssertionError("mlops.toml has no [gate.slices.*] or [gate.fairness] table")
    return text[: first.start()] + tables + "\n" + table.sub("", text[first.start() :])


def data_set_ids() -> list[str]:
    return [data.name for data in DATA_SETS]


def path_of(project: Baked, data: DataSet) -> Path:
    return project.path / "data" / f"{data.name}.csv"

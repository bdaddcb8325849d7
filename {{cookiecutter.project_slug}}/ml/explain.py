"""SHAP explanations of a tree model, drawn beside the steps that follow evaluation.

Permutation importance (ml/evaluate.py) says how much the test-set metric needs each feature;
SHAP (Lundberg and Lee's Shapley values, computed exactly for trees by shap's TreeExplainer) says
how much each feature moved each prediction, and which way. The evaluation report shows both: the
summary plot over the test set, and the features that decided a few of its predictions.

shap is the `explain` dependency group (it brings numba and llvmlite, about 100 MB, which the
local install for `make pipeline` does without): when it is installed the pipeline explains every
candidate; when it is not, the report says how to install it. MLOPS_EXPLAIN=off skips it.
A model shap cannot explain exactly (not a tree ensemble) is reported as such, and the run goes on.

  python -m ml.explain <model.tar.gz> <test.csv> <directory>   writes shap.json and shap_summary.png
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Any

RESULT = "shap.json"
PLOT = "shap_summary.png"
INPUTS = ".explain-inputs"  # the model and test rows copied for the background process, removed after
EXAMPLES = 3  # predictions explained one by one in the report
TOP = 5  # features shown for each of them


def switched_off() -> bool:
    return os.environ.get("MLOPS_EXPLAIN", "on").lower() in ("off", "0", "false")


def installed() -> bool:
    try:
        return importlib.util.find_spec("shap") is not None  # finds it without importing it
    except ImportError:  # a finder that refuses it outright
        return False


def available() -> bool:
    return not switched_off() and installed()


def install_hint() -> str:
    return (
        "SHAP explanations need the explain group (shap): `make install-explain` adds it; `make test` installs it too"
    )


def owners(prepare: Any) -> list[str]:
    """The schema feature behind each column train.py's preparation makes: a number is one column,
    a category one per value (one-hot); SHAP values add up, so a feature's is the sum of its columns'.
    A feature missing from every training row is dropped by its imputer, and has no column."""
    names: list[str] = []
    for name, transformer, columns in prepare.transformers_:
        if name == "numeric":
            names += [str(column) for column in transformer.get_feature_names_out(columns)]
        elif name == "categorical":
            kept = transformer.named_steps["impute"].get_feature_names_out(columns)
            categories = transformer.named_steps["one_hot"].categories_
            for column, values in zip(kept, categories, strict=True):
                names += [str(column)] * len(values)
    return names


def explain(loaded: dict[str, Any], features: Any, examples: int = EXAMPLES, top: int = TOP) -> dict[str, Any]:
    """SHAP values of every test row, summed per schema feature: their mean size, and the largest of
    the first few rows. For classification, of the probability of the class each row is predicted
    (binary: the positive class); for regression, of the predicted value."""
    import numpy as np
    import shap

    pipeline, task, classes = loaded["model"], loaded["task"], list(loaded["classes"])
    prepare, model = pipeline.named_steps["prepare"], pipeline.named_steps["model"]
    try:
        explainer = shap.TreeExplainer(model)
    except Exception as error:  # shap raises its own InvalidModelError, or TypeError, for other models
        return {"skipped": f"SHAP's TreeExplainer cannot explain this {type(model).__name__} "
                f"({str(error).splitlines()[0][:160]}); permutation importance covers every model"}  # fmt: skip
    matrix = np.asarray(prepare.transform(features), dtype=float)
    raw = np.asarray(explainer.shap_values(matrix, check_additivity=False))
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float))
    if task == "regression":
        values, chosen, base_values = raw, None, np.full(len(matrix), base[0])
        # A log-link loss (poisson, gamma) makes the trees add up to the log of the prediction.
        in_output = bool(np.allclose(base_values + values.sum(axis=1), model.predict(matrix), atol=1e-6))
    else:
        per_class = raw if raw.ndim == 3 else np.stack([-raw, raw], axis=-1)  # (rows, columns, classes)
        probabilities = np.asarray(model.predict_proba(matrix))
        chosen = np.full(len(matrix), 1) if task == "binary" else probabilities.argmax(axis=1)
        values = per_class[np.arange(len(matrix)), :, chosen]
        base_values = base[chosen] if len(base) > 1 else np.full(len(matrix), base[0])
        # A forest's trees vote probabilities; boosted trees add log-odds. SHAP explains what the trees
        # output, so say which: the probability only where the values add up to it.
        outputs = base_values + values.sum(axis=1)
        in_output = bool(np.allclose(outputs, probabilities[np.arange(len(matrix)), chosen], atol=1e-6))
    names = owners(prepare)
    features_order = list(dict.fromkeys(names))
    summed = np.stack([values[:, [i for i, n in enumerate(names) if n == f]].sum(axis=1) for f in features_order], 1)
    mean_abs = np.abs(summed).mean(axis=0)
    ranked = sorted(zip(features_order, mean_abs, strict=True), key=lambda item: -item[1])
    long, short = SCALES[task, in_output]
    explained = []
    for row in range(min(examples, len(matrix))):
        order = np.argsort(-np.abs(summed[row]))[:top]
        explained.append({
            "row": row + 1,
            "explains": short if chosen is None else f"{short}({classes[int(chosen[row])]})",
            "base_value": float(base_values[row]),
            "output": float(base_values[row] + summed[row].sum()),
            "top": [{"feature": features_order[i], "value": _shown(features.iloc[row][features_order[i]]),
                     "shap": float(summed[row, i])} for i in order],
        })  # fmt: skip
    return {
        "explainer": "shap.TreeExplainer",
        "shap_version": shap.__version__,
        "explains": long,
        "rows": len(matrix),
        "features": [{"feature": name, "mean_abs": float(value)} for name, value in ranked],
        "examples": explained,
        "_summed": summed,  # for the plot; not written
        "_order": features_order,
    }  # fmt: skip


# What the SHAP values add up to, by task and by whether that is the model's own answer (see explain).
SCALES = {
    ("binary", True): ("the probability of the positive class", "P"),
    ("binary", False): ("the raw output (log-odds) of the positive class", "log-odds"),
    ("multiclass", True): ("the probability of the predicted class", "P"),
    ("multiclass", False): ("the raw score (before softmax) of the predicted class", "score"),
    ("regression", True): ("the predicted value", "value"),
    ("regression", False): ("the raw output (the log of the predicted value, for a log-link loss)", "log(value)"),
}


def _shown(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):  # NaN: the model imputed it
        return "missing (imputed)"
    return value.item() if hasattr(value, "item") else value


def summary_plot(report: dict[str, Any], features: Any, path: Path) -> Path:
    """shap's own beeswarm summary: one dot per test row and feature, coloured by the feature's value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import shap

    columns = list(features.columns)
    # Colour by the feature's value; a category has no order to colour by (shap draws it grey).
    colours = np.column_stack([
        features[c].to_numpy(dtype=float) if features[c].dtype.kind in "fiu" else np.full(len(features), np.nan)
        for c in columns
    ])  # fmt: skip
    summed = report["_summed"][:, [report["_order"].index(c) for c in columns]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a category's colour column is all NaN: grey
        shap.summary_plot(
            summed, colours, feature_names=columns, show=False, max_display=15, rng=np.random.default_rng(0)
        )
    figure = plt.gcf()
    figure.suptitle(f"SHAP values: each feature's push on {report['explains']}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return path


def run(tarball: Path, test_csv: Path, directory: Path) -> dict[str, Any]:
    """Explain the packaged model on the test rows; write shap.json (and the plot, when explained)."""
    import pandas as pd

    from ml import atomic
    from ml import evaluate as evaluation

    with tempfile.TemporaryDirectory() as scratch:
        _, loaded = evaluation.load_packaged_model(tarball, Path(scratch))
    training = evaluation._sibling("train")
    features = training.features_frame(pd.read_csv(test_csv), loaded["schema"])
    report = explain(loaded, features)
    if "skipped" not in report:
        report["plot"] = summary_plot(report, features, directory / PLOT).name
    report.pop("_summed", None)
    report.pop("_order", None)
    atomic.write_text(directory / RESULT, json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 3:
        print("usage: python -m ml.explain <model.tar.gz> <test.csv> <directory>", file=sys.stderr)
        return 2
    try:
        report = run(Path(args[0]), Path(args[1]), Path(args[2]))
    except Exception as error:  # an explanation that fails never fails the run it explains
        traceback.print_exc()
        from ml import atomic

        report = {"skipped": f"SHAP failed ({type(error).__name__}: {error}); the traceback is in explain.log"}
        atomic.write_text(Path(args[2]) / RESULT, json.dumps(report, indent=2))
    finally:
        copied = Path(args[2]) / INPUTS
        if Path(args[0]).parent == copied:
            shutil.rmtree(copied, ignore_errors=True)
    print(report.get("skipped") or f"explained {report['rows']} rows: {Path(args[2]) / RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SageMaker script-mode training entry point.

Runs unchanged in the prebuilt SageMaker scikit-learn container and in the local job
runner: both set SM_MODEL_DIR, SM_CHANNEL_TRAIN and SM_OUTPUT_DIR and pass hyperparameters
as --name value arguments. Outside either, the defaults below let it run from a shell.
Only the container's libraries may be imported here (scikit-learn, pandas, numpy, joblib).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import traceback
from pathlib import Path

import joblib
import pandas as pd
import sklearn
from sklearn.ensemble import RandomForestClassifier

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n_estimators", type=int, default=200)
    parser.add_argument("--max_depth", type=int, default=0, help="0 means unlimited")
    parser.add_argument("--min_samples_leaf", type=int, default=1)
    parser.add_argument("--random_state", type=int, default=42)
    parser.add_argument("--label", default="malignant")
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "data/train"))
    parser.add_argument("--output-dir", default=os.environ.get("SM_OUTPUT_DIR", "output"))
    return parser.parse_args(argv)


def load_training_data(channel: Path) -> pd.DataFrame:
    files = sorted(channel.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no CSV files in the train channel {channel}")
    return pd.concat([pd.read_csv(path) for path in files], ignore_index=True)


def train(args: argparse.Namespace) -> tuple[RandomForestClassifier, list[str]]:
    frame = load_training_data(Path(args.train))
    if args.label not in frame.columns:
        raise ValueError(f"label column {args.label!r} is not in the training data")
    features = [column for column in frame.columns if column != args.label]
    model = RandomForestClassifier(
        n_estimators=args.n_estimators,
        max_depth=args.max_depth or None,
        min_samples_leaf=args.min_samples_leaf,
        random_state=args.random_state,
        n_jobs=1,  # deterministic and fair on small instances; raise for large data
    )
    model.fit(frame[features], frame[args.label].astype(int))
    print(f"trained {model.__class__.__name__} on {len(frame)} rows, {len(features)} features")
    return model, features


def save_model(model: RandomForestClassifier, features: list[str], label: str, model_dir: Path) -> None:
    """Write what the serving container loads: the model, its metadata and inference.py.

    inference.py goes into model_dir/code so that model.tar.gz serves on its own, the
    layout the SageMaker scikit-learn container reads when SAGEMAKER_PROGRAM is set.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    metadata = {"features": features, "label": label, "scikit_learn": sklearn.__version__}
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    code_dir = model_dir / "code"
    code_dir.mkdir(exist_ok=True)
    shutil.copy2(HERE / "inference.py", code_dir / "inference.py")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model, features = train(args)
        save_model(model, features, args.label, Path(args.model_dir))
    except Exception as exc:
        # SageMaker reports the content of this file as the job's FailureReason.
        output = Path(args.output_dir)
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure").write_text(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every pipeline run in MLflow: the experiment record beside the SageMaker-shaped registry.

The run records in .mlops/runs/*.json are the source of truth; a sync copies each one MLflow does
not have yet (parameters, metrics, lineage tags, the evaluation's files, the run's HTML report and
the model in MLflow's scikit-learn flavour). The pipeline starts the sync in a process of its own
once the run is recorded, so neither MLflow's import (seconds) nor a broken store can slow or fail
a run; a run the sync could not log is logged by the next one, and `make ui` syncs before serving.
The registry stays the record of what may deploy: an MLflow run names its registry version.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml import atomic
from ml.config import Config
from ml.errors import ConfigError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ml.context import Context

# The tag that links an MLflow run to its record, and the one set last: a run without it was cut
# short (a crash half-way through logging), and the next sync deletes and logs it again.
RUN_ID_TAG = "mlops.run_id"
COMPLETE_TAG = "mlops.logged"
PART_OF_TAG = "mlops.part_of"  # a child run (a tuning candidate): the record it belongs to
STATUS = {"succeeded": "FINISHED", "rejected": "FINISHED", "interrupted": "KILLED"}  # otherwise FAILED


def store_dir(config: Config) -> Path:
    return config.state_dir / "mlflow"


def tracking_uri(config: Config) -> str:
    """MLOPS_TRACKING_URI when set (a shared server); in AWS, the stack's MLflow App, by its ARN (the
    sagemaker-mlflow plugin turns it into the app's endpoint and signs each call); locally, the
    embedded default, SQLite under the state directory. Not MLflow's MLFLOW_TRACKING_URI: MLflow sets
    that itself in whatever process logged last."""
    if os.environ.get("MLOPS_TRACKING_URI"):
        return os.environ["MLOPS_TRACKING_URI"]
    if config.env != "local":
        from ml.stack_outputs import load_stack_outputs

        arn = load_stack_outputs(config).mlflow_app_arn
        if not arn:
            raise ConfigError(
                f"the {config.env} stack outputs name no mlflow_app_arn: `pulumi up` the dev stack (it declares the "
                f"MLflow App, infra/components/tracking.py), then `make stack-outputs MLOPS_ENV={config.env}`"
            )
        return arn
    return f"sqlite:///{(store_dir(config) / 'mlflow.db').resolve()}"


def artifact_root(config: Config) -> str:
    return (store_dir(config) / "artifacts").resolve().as_uri()


def installed() -> bool:
    """MLflow is the `tracking` dependency group: `make ui` installs it (`uv sync --group tracking`)."""
    return importlib.util.find_spec("mlflow") is not None


def enabled() -> bool:
    return os.environ.get("MLOPS_TRACKING", "on").lower() not in ("off", "0", "false")


@dataclass
class SyncReport:
    uri: str
    experiment_id: str = ""
    logged: list[str] = field(default_factory=list)
    already: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # run id -> what went wrong and the fix


def after_run(config: Config) -> str:
    """What the run summary says about tracking; starts the sync of this run in the background."""
    notes = []
    failures = last_failures(config)
    if failures:
        run_id, message = next(iter(failures.items()))
        notes.append(f"{len(failures)} earlier run(s) not in MLflow yet (run {run_id}: {message})")
    if not enabled():
        return "; ".join([*notes, "off (MLOPS_TRACKING=off)"])
    if not installed():
        return "; ".join([*notes, "MLflow is not installed: `make ui` installs it and logs every run so far"])
    log = store_dir(config) / "sync.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        # A session of its own: the run's Ctrl-C or the end of `make` must not cut a sync in half.
        subprocess.Popen(
            [sys.executable, "-m", "ml", "track"],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "MLOPS_CONFIG": str(config.path.resolve()), "MLOPS_HOME": str(config.state_dir)},
        )
    return "; ".join([*notes, f"logging to MLflow in the background ({log}); `make ui` shows every run"])


def record_from_steps(ctx: Context) -> Path | None:
    """The run record of a pipeline CI ran one step per job (pipeline.yml), built from the steps'
    results in .mlops/steps/, as `make pipeline` writes its own; None if the steps did not all run."""
    from ml.steps.data import DataResult
    from ml.steps.evaluate import EvaluationResult
    from ml.steps.register import RegisterResult
    from ml.steps.train import TrainResult
    from ml.summary import StepRecord, Summary

    if not all((ctx.steps_dir / f"{step}.json").is_file() for step in ("data", "train", "evaluate", "register")):
        return None
    data, trained = ctx.load("data", DataResult), ctx.load("train", TrainResult)
    evaluation, registered = ctx.load("evaluate", EvaluationResult), ctx.load("register", RegisterResult)
    # One record per workflow run attempt (a re-run is another run); outside Actions, per training job.
    run = os.environ.get("GITHUB_RUN_ID")
    run_id = f"ci-{run}-{os.environ.get('GITHUB_RUN_ATTEMPT', '1')}" if run else trained.job_name
    path = ctx.config.state_dir / "runs" / f"{run_id}.json"
    if path.is_file():
        return path
    summary = Summary(env=ctx.config.env, run_id=run_id)
    summary.status = "succeeded" if registered.approval_status == "Approved" else "rejected"
    summary.steps = [
        StepRecord("data", "ok", 0.0, f"{data.rows} rows, hash {data.data_hash[:12]}"),
        StepRecord("train", "reused" if trained.reused_version else "ok", trained.seconds, trained.job_name),
        StepRecord("evaluate", "ok", 0.0, "gate passed" if evaluation.passed else "gate failed"),
        StepRecord("register", "ok", 0.0, f"v{registered.version} {registered.approval_status}"),
    ]
    summary.evaluated(evaluation)
    # Each job checks out afresh and downloads the one before's .mlops/: the report is this one's copy.
    here = ctx.config.state_dir / "reports" / Path(evaluation.report_dir).name
    if here.is_dir():
        summary.paths["report"] = str(here)
    summary.data = {"hash": data.data_hash, "rows": data.rows}
    summary.params = {"estimator": ctx.config.train.estimator, **ctx.config.train.hyperparameters}
    summary.model = {"fingerprint": trained.fingerprint[:16], "version": registered.version,
                     "approval": registered.approval_status}  # fmt: skip
    atomic.write_text(path, json.dumps(summary.to_json(), indent=2))
    return path


def last_failures(config: Config) -> dict[str, str]:
    path = store_dir(config) / "status.json"
    try:
        failed: dict[str, str] = json.loads(path.read_text())["failed"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return failed


@contextlib.contextmanager
def _sync_lock(config: Config) -> Iterator[None]:
    """One sync at a time (the pipeline's and `make ui`'s): the second waits, then finds the first's work done."""
    path = store_dir(config) / "sync.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def sync(ctx: Context, client: MlflowClient | None = None) -> SyncReport:
    """Log every recorded run MLflow lacks; a failure is reported per run and never raised."""
    config = ctx.config
    try:
        report = SyncReport(tracking_uri(config))
    except ConfigError as exc:
        report = SyncReport("", failed={"*": str(exc)})
        return report
    records = sorted((config.state_dir / "runs").glob("*.json")) + sorted(
        (config.state_dir / "tuning").glob("*/tuning.json")
    )
    with _sync_lock(config), _global_uri(report.uri):
        try:
            client = client or _client(config)
            experiment_id = report.experiment_id = _experiment(client, config)
            logged = _logged(client, experiment_id)
        except Exception as exc:  # the store itself is unusable: every run waits for the next sync
            message = explain(exc, config)
            known = _known(config)
            report.failed = {_record_id(p): message for p in records if _record_id(p) not in known}
            _write_status(config, report)
            return report
        for path in records:
            record_id = _record_id(path)
            if record_id in logged:
                report.already += 1
                continue
            try:
                record = json.loads(path.read_text())
                if path.name == "tuning.json":
                    log_tuning(client, experiment_id, record_id, record, path)
                else:
                    log_run(ctx, client, experiment_id, record)
                report.logged.append(record_id)
            except Exception as exc:
                report.failed[record_id] = explain(exc, config)
        _write_status(config, report)
    return report


def _record_id(path: Path) -> str:
    """A pipeline run's id (its record's name), or 'tune:<job>' for a `make tune` report."""
    return f"tune:{path.parent.name}" if path.name == "tuning.json" else path.stem


def experiment_id(config: Config) -> str:
    """The project's experiment, as the last sync found it ('' before any)."""
    try:
        return str(json.loads((store_dir(config) / "status.json").read_text()).get("experiment_id", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _known(config: Config) -> set[str]:
    """Runs an earlier sync logged to this store, by its status file: not reported again when the store
    breaks later."""
    try:
        status = json.loads((store_dir(config) / "status.json").read_text())
    except (OSError, ValueError):
        return set()
    same = isinstance(status, dict) and status.get("uri") == tracking_uri(config)
    return set(status.get("logged", [])) if same else set()


def _write_status(config: Config, report: SyncReport) -> None:
    known = sorted(_known(config) | set(report.logged))
    atomic.write_text(
        store_dir(config) / "status.json",
        json.dumps(
            {
                "uri": report.uri,
                "experiment_id": report.experiment_id or experiment_id(config),
                "logged": known,
                "failed": report.failed,
            },
            indent=2,
        ),
    )


@contextlib.contextmanager
def _global_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI, for the sync alone. The sagemaker-mlflow plugin routes and
    signs each call for the ARN it reads there (auth_provider.py, set_arn(get_tracking_uri())), not
    for the client's own URI; log_model, too, reads it. Restored afterwards (MLflow's own helper)."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        yield


def _client(config: Config) -> MlflowClient:
    import mlflow

    uri = tracking_uri(config)
    if uri.startswith("sqlite:///"):
        store_dir(config).mkdir(parents=True, exist_ok=True)
    return mlflow.MlflowClient(uri)


def _experiment(client: MlflowClient, config: Config) -> str:
    name = config.project.resource_prefix
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":  # deleted in the UI: runs cannot be created in it until restored
            client.restore_experiment(found.experiment_id)
        return str(found.experiment_id)
    # Locally the artifacts sit beside the database; a remote server keeps its own default.
    local = tracking_uri(config).startswith("sqlite:///")
    return str(client.create_experiment(name, artifact_location=artifact_root(config) if local else None))


def _logged(client: MlflowClient, experiment_id: str) -> set[str]:
    """The record ids MLflow holds in full. A run of ours cut short (no completion tag), and the child
    runs of one, are deleted, to be logged again whole; runs anyone else logged are left alone."""
    runs: list[Any] = []
    token = None
    while True:  # read every page first: deleting while paging by offset would skip runs
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    done = {
        r.data.tags[RUN_ID_TAG] for r in runs if RUN_ID_TAG in r.data.tags and r.data.tags.get(COMPLETE_TAG) == "true"
    }
    for run in runs:
        tags = run.data.tags
        ours = tags.get(RUN_ID_TAG) or tags.get(PART_OF_TAG)
        if ours and ours not in done:
            client.delete_run(run.info.run_id)
    return done


def key(text: str) -> str:
    """A metric or tag key MLflow accepts (letters, digits, _ - . / : and spaces): a slice group such
    as '>= 15' becomes 'ge 15'."""
    for sign, word in (("<=", "le "), (">=", "ge "), ("<", "lt "), (">", "gt "), ("=", "eq ")):
        text = text.replace(sign, word)
    return re.sub(r"[^\w\-./: ]", "_", re.sub(r"\s+", " ", text)).strip()


def metrics(record: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, float]:
    """The candidate's metrics, the champion's, the baselines', each slice group's, and step times."""
    values: dict[str, float] = dict(record.get("metrics") or {})
    champion = (record.get("champion") or {}).get("metrics") or {}
    values.update({f"champion.{name}": value for name, value in champion.items()})
    for role, baseline in (evaluation.get("baselines") or {}).items():
        values.update({f"baseline.{role}.{name}": value for name, value in baseline.get("metrics", {}).items()})
    for slice_name, cut in (evaluation.get("slices") or {}).items():
        for group in cut.get("groups", []):
            prefix = key(f"slice.{slice_name}.{group['group']}")
            values[f"{prefix}.rows"] = group["rows"]
            values.update({f"{prefix}.{name}": v for name, v in group["metrics"].items() if v is not None})
    values.update({f"seconds.{step['name']}": step["seconds"] for step in record.get("steps", [])})
    values["seconds.total"] = record.get("seconds", 0.0)
    return {name: float(value) for name, value in values.items() if isinstance(value, int | float)}


def tags(record: dict[str, Any], lineage: dict[str, str]) -> dict[str, str]:
    model = record.get("model") or {}
    found = {
        RUN_ID_TAG: record["run_id"],
        "mlops.status": record.get("status", ""),
        "mlops.env": record.get("env", ""),
        "mlops.failed_step": record.get("failed_step") or "",
        "registry.version": str(model.get("version", "")),
        "registry.approval": model.get("approval", ""),
        "registry.promoted": str(model.get("promoted", "")),
        "model.fingerprint": model.get("fingerprint", ""),
        "model.reused": str(model.get("reused", "")),
        "data.hash": (record.get("data") or {}).get("hash", ""),
        **{key(f"lineage.{name}"): str(value) for name, value in lineage.items()},
    }
    if record.get("error"):
        found["mlops.error"] = record["error"][:4000]
    return {name: value for name, value in found.items() if value != ""}


def log_run(ctx: Context, client: MlflowClient, experiment_id: str, record: dict[str, Any]) -> str:
    """One run record into one MLflow run; the completion tag is set last."""
    from mlflow.entities import Metric, Param, RunTag

    version = (record.get("model") or {}).get("version")
    registered = _registered(ctx, version)
    lineage = registered.package.lineage if registered is not None else {}
    report_dir = Path(record.get("paths", {}).get("report", "")) if record.get("paths", {}).get("report") else None
    evaluation = _read_json(report_dir / "evaluation.json") if report_dir else {}
    started = int(datetime.fromisoformat(record["started_at"]).timestamp() * 1000)
    name = f"v{version} {record.get('status')}" if version else str(record.get("status"))
    run = client.create_run(experiment_id, start_time=started, run_name=name)
    run_id = run.info.run_id
    params = {str(k): str(v)[:6000] for k, v in (record.get("params") or {}).items()}
    # MlflowClient.log_batch splits these by MLflow's own per-call limits (hundreds of slice groups).
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, started, 0) for k, v in metrics(record, evaluation).items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags(record, lineage).items()],
    )
    if report_dir is not None and report_dir.is_dir():
        client.log_artifacts(run_id, str(report_dir), artifact_path="evaluation")
    runs = ctx.config.state_dir / "runs"
    for suffix in (".json", ".html"):
        if (runs / f"{record['run_id']}{suffix}").is_file():
            client.log_artifact(run_id, str(runs / f"{record['run_id']}{suffix}"))
    if registered is not None and ctx.backends.artifacts.exists(registered.package.model_uri):
        _log_model(ctx, run_id, registered.package.model_uri)
    client.set_tag(run_id, COMPLETE_TAG, "true")
    ended = started + int(float(record.get("seconds", 0)) * 1000)
    client.set_terminated(run_id, STATUS.get(str(record.get("status")), "FAILED"), end_time=ended)
    return str(run_id)


def log_tuning(client: MlflowClient, experiment_id: str, record_id: str, report: dict[str, Any], path: Path) -> str:
    """`make tune`: a parent run with the winner, and one child run per candidate it scored."""
    from mlflow.entities import Metric, Param, RunTag

    started = int(path.stat().st_mtime * 1000 - float(report.get("seconds", 0)) * 1000)
    parent = client.create_run(experiment_id, start_time=started, run_name=f"tune {path.parent.name}")
    parent_id = parent.info.run_id
    metric = str(report["metric"])
    client.log_batch(
        parent_id,
        metrics=[
            Metric(f"best.{metric}", float(report["best_score"]), started, 0),
            Metric("rounds", float(report["rounds"]), started, 0),
            Metric("seconds.total", float(report["seconds"]), started, 0),
        ],
        params=[Param(key(f"best.{k}"), str(v)) for k, v in report["best"].items()],
        tags=[RunTag(RUN_ID_TAG, record_id), RunTag("mlops.kind", "tuning")],
    )
    client.log_artifact(parent_id, str(path))
    for number, candidate in enumerate(report.get("candidates", [])):
        child = client.create_run(
            experiment_id,
            start_time=started,
            run_name=f"candidate {number + 1} (round {candidate['round']})",
            tags={"mlflow.parentRunId": parent_id, "mlops.kind": "tuning candidate", PART_OF_TAG: record_id},
        )
        client.log_batch(
            child.info.run_id,
            metrics=[
                Metric(metric, float(candidate["score"]), started, int(candidate["round"])),
                Metric(f"{metric}.std", float(candidate["std"]), started, int(candidate["round"])),
                Metric("rows", float(candidate["rows"]), started, int(candidate["round"])),
            ],
            params=[Param(key(k), str(v)) for k, v in candidate["params"].items()],
        )
        client.set_terminated(child.info.run_id, "FINISHED")
    client.set_tag(parent_id, COMPLETE_TAG, "true")
    client.set_terminated(parent_id, "FINISHED", end_time=int(path.stat().st_mtime * 1000))
    return str(parent_id)


def _registered(ctx: Context, version: object) -> Any:
    if not isinstance(version, int):
        return None
    try:
        return ctx.backends.registry.get(version)
    except LookupError:
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found


def _log_model(ctx: Context, run_id: str, model_uri: str) -> None:
    """The registered model, in MLflow's scikit-learn flavour (`mlflow.sklearn.load_model` opens it)."""
    import joblib
    import mlflow
    import sklearn
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with tempfile.TemporaryDirectory() as scratch:
        archive = ctx.backends.artifacts.get(model_uri, Path(scratch) / "model.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(Path(scratch) / "model", filter="data")
        model = joblib.load(Path(scratch) / "model" / "model.joblib")
        metadata = _read_json(Path(scratch) / "model" / "metadata.json")
    # log_model is fluent-only: the store is set for this call alone (MLflow's own context manager),
    # so the process's MLflow settings are as they were afterwards.
    with _use_tracking_uri(tracking_uri(ctx.config)), mlflow.start_run(run_id=run_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            # Named, not inferred: inference imports every module in sight and takes seconds.
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            metadata={"features": metadata.get("features", []), "task": metadata.get("task", "")},
        )
        mlflow.set_tag("model.mlflow_id", info.model_id)


def explain(error: Exception, config: Config) -> str:
    """What went wrong, and what to do: the store's own words are kept at the end."""
    text = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    database = store_dir(config) / "mlflow.db"
    lowered = text.lower()
    if "database is locked" in lowered:
        fix = "another process held the MLflow store; the next run (or `make ui`) logs it"
    elif "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        fix = (
            f"the MLflow store {database} is damaged: move it aside (`mv {database} {database}.broken`) and run "
            "`make ui`, which logs every run in .mlops/runs again"
        )
    elif "connection" in lowered or "max retries" in lowered or "timed out" in lowered:
        fix = f"the tracking server {tracking_uri(config)} did not answer; the next run catches up once it does"
    else:
        fix = "the next run (or `make ui`) tries again"
    return f"{fix} ({text})"

"""Runs the real container scripts when moto records a SageMaker job, so AWS-path tests use real models.

moto accepts CreateTrainingJob, CreateProcessingJob and CreateTransformJob and reports them
Completed, but runs nothing. This emulator hooks the boto3 session's events: when a job is created, it downloads
the job's inputs from (moto's) S3, runs the same train.py or evaluate.py the container would,
with the SageMaker container contract, and uploads the outputs where SageMaker would put them.
Tests can also make a job end Failed or Stopped, a state moto cannot reach on its own.
Each job is forked from a fork server (ml/backends/warm.py), as the local runner's are, except a
job that calls AWS itself (the monitoring job reads S3 and publishes to CloudWatch): it runs in
this process, where moto answers its calls, from the code files the job downloaded.
"""

from __future__ import annotations

import os
import runpy
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto.sagemaker.models import sagemaker_backends

from ml import batch
from ml.backends import job_preload
from ml.backends.warm import ForkServer
from ml.serving import Model, load_program


@dataclass
class Outcome:
    status: str
    reason: str
    secondary: str = ""


@dataclass
class ContainerEmulator:
    session: Any
    region: str
    account: str
    requests: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"training": [], "processing": [], "transform": []}
    )
    training_outcome: Outcome | None = None
    transform_outcome: Outcome | None = None
    forks: ForkServer = field(default_factory=lambda: ForkServer(job_preload()))
    # True while the emulator plays a job: its calls are SageMaker's, made as the execution role.
    running_job: bool = False

    def _run(self, script: Path, arguments: list[str], env: dict[str, str], log: Path) -> None:
        """Run a container script as the container would, forked from a server that imported its libraries."""
        process = self.forks.start(str(script), arguments, cwd=script.parent, env={**os.environ, **env}, log=log)
        if process.wait() != 0:
            raise RuntimeError(f"{script.name} failed in the emulated container:\n{log.read_text()}")

    def _run_in_process(self, script: Path, arguments: list[str]) -> None:
        """Run a script that calls AWS as `python3 script` would, with its own directory first on the path."""
        path, argv = list(sys.path), list(sys.argv)
        sys.path.insert(0, str(script.parent))
        sys.argv = [str(script), *arguments]
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                raise RuntimeError(f"{script.name} exited {exit_.code} in the emulated container") from None
        finally:
            sys.path[:], sys.argv = path, argv
            for name, module in list(sys.modules.items()):  # its flat imports (monitor, ...) go with it
                if str(getattr(module, "__file__", "") or "").startswith(str(script.parent)):
                    del sys.modules[name]

    def close(self) -> None:
        """Nothing to stop: the fork server ends with the test process."""

    def install(self) -> None:
        self.forks.prepare()
        self.session.events.register("before-parameter-build.sagemaker.CreateTrainingJob", self._remember_training)
        self.session.events.register("after-call.sagemaker.CreateTrainingJob", self._run_training)
        self.session.events.register("before-parameter-build.sagemaker.CreateProcessingJob", self._remember_processing)
        self.session.events.register("after-call.sagemaker.CreateProcessingJob", self._run_processing)
        self.session.events.register("before-parameter-build.sagemaker.CreateTransformJob", self._remember_transform)
        self.session.events.register("after-call.sagemaker.CreateTransformJob", self._run_transform)

    def _remember_training(self, params: dict[str, Any], **_: Any) -> None:
        self.requests["training"].append(dict(params))

    def _remember_processing(self, params: dict[str, Any], **_: Any) -> None:
        self.requests["processing"].append(dict(params))

    def _remember_transform(self, params: dict[str, Any], **_: Any) -> None:
        self.requests["transform"].append(dict(params))

    def _download_prefix(self, uri: str, target: Path) -> None:
        s3 = self.session.client("s3")
        bucket, prefix = uri[5:].split("/", 1)
        target.mkdir(parents=True, exist_ok=True)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix) :].lstrip("/") or item["Key"].rsplit("/", 1)[-1]
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(destination))

    def _upload(self, path: Path, uri: str) -> None:
        bucket, key = uri[5:].split("/", 1)
        self.session.client("s3").upload_file(str(path), bucket, key)

    def _run_training(self, **kwargs: Any) -> None:
        self.running_job = True
        try:
            self._train(**kwargs)
        finally:
            self.running_job = False

    def _run_processing(self, **kwargs: Any) -> None:
        self.running_job = True
        try:
            self._process(**kwargs)
        finally:
            self.running_job = False

    def _run_transform(self, **_: Any) -> None:
        request = self.requests["transform"][-1]
        if self.transform_outcome is not None:
            job = sagemaker_backends[self.account][self.region].transform_jobs[request["TransformJobName"]]
            job.transform_job_status = self.transform_outcome.status
            job.failure_reason = self.transform_outcome.reason
            return
        self.running_job = True
        try:
            self._transform(request)
        finally:
            self.running_job = False

    def _transform(self, request: dict[str, Any]) -> None:
        """What Batch Transform does with the model's container: the model's own handlers, over the
        input split by line (SplitType Line), its InputFilter applied, in MultiRecord mini-batches of
        at most MaxPayloadInMB, each answer line joined to its input line (JoinSource Input,
        AssembleWith Line) into <input object>.out under S3OutputPath."""
        # SageMaker resolves the model itself: a session of its own, which the IAM recording does not see.
        control = boto3.session.Session().client("sagemaker", region_name=self.region)
        container = control.describe_model(ModelName=request["ModelName"])["PrimaryContainer"]
        package = control.describe_model_package(ModelPackageName=container["ModelPackageName"])
        model_url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        processing = request.get("DataProcessing", {})
        select = batch.output_filter(processing.get("InputFilter", "$"))
        limit = request["MaxPayloadInMB"] * 1024 * 1024
        transform_input, output = request["TransformInput"], request["TransformOutput"]
        with tempfile.TemporaryDirectory() as scratch, batch.environment(request.get("Environment", {})):
            root = Path(scratch)
            self._download_prefix(model_url, root / "tarball")
            model_dir = root / "model"
            with tarfile.open(next((root / "tarball").iterdir())) as archive:
                archive.extractall(model_dir, filter="data")
            model = Model(load_program(model_dir), model_dir)
            self._download_prefix(transform_input["DataSource"]["S3DataSource"]["S3Uri"], root / "input")
            for source in sorted(p for p in (root / "input").rglob("*") if p.is_file()):
                answered = root / "output" / f"{source.name}.out"
                answered.parent.mkdir(parents=True, exist_ok=True)
                with source.open(newline="") as lines, answered.open("w") as out:
                    for part in batch.mini_batches(lines, limit):
                        body = "".join(batch.csv_text(select(batch.csv_values(text))) for _, text in part)
                        payload, _ = model.invoke(body, transform_input["ContentType"], output["Accept"])
                        answers = payload.decode().splitlines()
                        assert len(answers) == len(part), "the model answered another number of lines"
                        for (_, text), answer in zip(part, answers, strict=True):
                            joined = f"{text},{answer}" if processing.get("JoinSource") == "Input" else answer
                            out.write(joined + "\n")
                self._upload(answered, f"{output['S3OutputPath'].rstrip('/')}/{answered.name}")

    def _train(self, **_: Any) -> None:
        request = self.requests["training"][-1]
        name = request["TrainingJobName"]
        backend = sagemaker_backends[self.account][self.region]
        if self.training_outcome is not None:
            job = backend.training_jobs[name]
            job.training_job_status = self.training_outcome.status
            job.secondary_status = self.training_outcome.secondary or self.training_outcome.status
            vars(job)["failure_reason"] = self.training_outcome.reason  # moto serialises every attribute
            return
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            env = {"SM_MODEL_DIR": str(root / "model"), "SM_OUTPUT_DIR": str(root / "output")}
            for channel in request["InputDataConfig"]:
                local = root / "input" / "data" / channel["ChannelName"]
                self._download_prefix(channel["DataSource"]["S3DataSource"]["S3Uri"], local)
                env[f"SM_CHANNEL_{channel['ChannelName'].upper()}"] = str(local)
            (root / "model").mkdir()
            code = root / "input" / "data" / "code"
            entry = next(p for p in code.rglob("train.py"))
            arguments = [item for k, v in request.get("HyperParameters", {}).items() for item in (f"--{k}", v)]
            self._run(entry, arguments, env, root / "job.log")
            tarball = root / "model.tar.gz"
            with tarfile.open(tarball, "w:gz") as archive:
                for item in (root / "model").iterdir():
                    archive.add(item, arcname=item.name)
            output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
            self._upload(tarball, f"{output}/{name}/output/model.tar.gz")

    def _process(self, **_: Any) -> None:
        request = self.requests["processing"][-1]
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            for item in request["ProcessingInputs"]:
                local = item["S3Input"]["LocalPath"].replace("/opt/ml/processing", str(root))
                self._download_prefix(item["S3Input"]["S3Uri"], Path(local))
            outputs = request["ProcessingOutputConfig"]["Outputs"]
            for item in outputs:
                Path(item["S3Output"]["LocalPath"].replace("/opt/ml/processing", str(root))).mkdir(parents=True)
            entry = request["AppSpecification"]["ContainerEntrypoint"][-1].replace("/opt/ml/processing", str(root))
            # The container's /opt/ml/processing is this folder, in the arguments too.
            arguments = [
                str(a).replace("/opt/ml/processing", str(root), 1) if str(a).startswith("/opt/ml/processing") else a
                for a in [*request["AppSpecification"].get("ContainerArguments", []), "--root", str(root)]
            ]
            # A job that calls AWS (reads S3, publishes metrics) runs here, where moto answers.
            if any(str(a).startswith("s3://") for a in arguments) or "--namespace" in arguments:
                self._run_in_process(Path(entry), arguments)
            else:
                self._run(Path(entry), arguments, {}, root / "job.log")
            for item in outputs:
                local = Path(item["S3Output"]["LocalPath"].replace("/opt/ml/processing", str(root)))
                for path in sorted(p for p in local.rglob("*") if p.is_file()):
                    self._upload(path, f"{item['S3Output']['S3Uri'].rstrip('/')}/{path.relative_to(local)}")

"""Run the Pulumi program offline under Pulumi's own mocks and capture what it declares.

Used by the infra unit tests, the policy check and `make preview-offline`. No credentials,
no Pulumi CLI and no provider plugin are needed: the mocks answer every registration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs, Mocks

from infra import settings as stack_settings
from ml.config import ProjectSection, load_config

INFRA = Path(__file__).resolve().parent
PREBUILT_IMAGE_FUNCTION = "aws:sagemaker/getPrebuiltEcrImage:getPrebuiltEcrImage"


@dataclass(frozen=True)
class Captured:
    type: str
    name: str
    id: str
    inputs: dict[str, Any]
    urn: str
    custom: bool
    # The resource options the engine receives in the registration request.
    protect: bool = False
    retain_on_delete: bool = False

    @property
    def parent_types(self) -> list[str]:
        # urn:pulumi:<stack>::<project>::<parent types joined by $>::<name>
        return self.urn.split("::")[2].split("$")[:-1]


@dataclass(frozen=True)
class StackRun:
    settings: stack_settings.StackSettings
    resources: list[Captured]
    outputs: dict[str, Any]

    def of_type(self, type_: str) -> list[Captured]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Captured:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            raise AssertionError(f"expected one {type_} {name or ''}, found {[r.name for r in found]}")
        return found[0]


class RecordingMocks(Mocks):
    """Answers like AWS would: every resource gets an id, a name if autonamed, and an ARN."""

    def __init__(self, account: str, region: str, registry_outputs: dict[str, Any]) -> None:
        self.account = account
        self.region = region
        self.registry_outputs = registry_outputs
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.registered: list[str] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.registered.append(f"{args.typ}::{args.name}")
        state = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            return f"{args.name}-id", {**state, "outputs": self.registry_outputs}
        suffix = hashlib.sha256(args.name.encode()).hexdigest()[:7]
        resource_id = f"{args.name}-{suffix}"
        service = args.typ.split(":")[1].split("/")[0] if ":" in args.typ else "mock"
        name = (
            state.get("name")
            or state.get("bucket")
            or state.get("modelPackageGroupName")
            or state.get("pipelineName")
            or resource_id
        )
        state.setdefault("name", name)
        state.setdefault("arn", self._arn(args.typ, service, str(name), resource_id))
        if args.typ == "aws:kms/key:Key":
            state["key_id"] = resource_id
        if args.typ == "aws:sqs/queue:Queue":
            state.setdefault("url", f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}")
        return resource_id, state

    def _arn(self, typ: str, service: str, name: str, resource_id: str) -> str:
        if service == "s3":
            return f"arn:aws:s3:::{name}"
        if service == "iam":
            kind = "role" if typ.endswith(":Role") else "policy"
            return f"arn:aws:iam::{self.account}:{kind}/{name}"
        if service == "kms":
            return f"arn:aws:kms:{self.region}:{self.account}:key/{resource_id}"
        where = f"{self.region}:{self.account}"
        # The ARN formats AWS documents for the types whose service or path the type name does not give.
        special = {
            "aws:cloudwatch/eventRule:EventRule": f"arn:aws:events:{where}:rule/{name}",
            "aws:cloudwatch/eventConnection:EventConnection": f"arn:aws:events:{where}:connection/{name}/{resource_id}",
            "aws:cloudwatch/eventApiDestination:EventApiDestination": (
                f"arn:aws:events:{where}:api-destination/{name}/{resource_id}"
            ),
            "aws:cloudwatch/metricAlarm:MetricAlarm": f"arn:aws:cloudwatch:{where}:alarm:{name}",
            "aws:scheduler/schedule:Schedule": f"arn:aws:scheduler:{where}:schedule/default/{name}",
            # The id in an MLflow App's ARN is AWS's, not the name (CreateMlflowApp returns the ARN).
            "aws:sagemaker/mlflowApp:MlflowApp": f"arn:aws:sagemaker:{where}:mlflow-app/app-{resource_id[-12:]}",
            "aws:sns/topic:Topic": f"arn:aws:sns:{where}:{name}",
            "aws:sqs/queue:Queue": f"arn:aws:sqs:{where}:{name}",
        }
        if typ in special:
            return special[typ]
        return f"arn:aws:{service}:{where}:{typ.split(':')[-1].lower()}/{name}"

    def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.calls.append((args.token, dict(args.args)))
        if args.token == PREBUILT_IMAGE_FUNCTION:
            return self._prebuilt_image(dict(args.args)), []
        return {}, []

    def _prebuilt_image(self, request: dict[str, Any]) -> dict[str, Any]:
        """The provider's answer, with the account from the sagemaker SDK's own image table when installed."""
        region = request.get("region") or self.region
        account = prebuilt_images_account(region) or "<SageMaker's image account in the region>"
        repository, tag = request["repositoryName"], request["imageTag"]
        return {
            "registryId": account,
            "registryPath": f"{account}.dkr.ecr.{region}.amazonaws.com/{repository}:{tag}",
            "repositoryName": repository,
            "imageTag": tag,
            "region": region,
        }


def prebuilt_images_account(region: str) -> str | None:
    """The account that publishes the scikit-learn images in a region, per the sagemaker SDK (aws group)."""
    import importlib.util
    import json

    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        table = Path(location) / "core" / "image_uri_config" / "sklearn.json"
        if table.exists():
            versions = json.loads(table.read_text())["inference"]["versions"]
            account = next(iter(versions.values()))["registries"].get(region)
            return str(account) if account else None
    return None


def stack_file(stack: str) -> Path:
    return INFRA / f"Pulumi.{stack}.yaml"


def stack_values(stack: str, namespace: str) -> dict[str, Any]:
    """The project-namespaced config of a committed stack file, keys without the namespace."""
    path = stack_file(stack)
    if not path.exists():
        raise stack_settings.StackConfigError(f"{path} does not exist; the stacks are {stack_settings.STACKS}")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise stack_settings.StackConfigError(f"{path} is not valid YAML: {error}") from None
    config = document.get("config") or {}
    return {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith(f"{namespace}:")}


def registry_stack_outputs(prefix: str, account: str, region: str) -> dict[str, str]:
    """What the registry-owning dev stack exports, as staging and prod read it."""
    from ml import names

    return {
        "artifacts_bucket": names.bucket_name(prefix, "dev", "artifacts", account),
        "kms_key_arn": f"arn:aws:kms:{region}:{account}:key/dev-registry-key",
        "model_package_group": names.model_package_group_name(prefix, "dev"),
    }


class OptionsMonitor(MockMonitor):
    """Pulumi's mock monitor, also keeping what each RegisterResource request asks of the engine."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.options: dict[str, tuple[bool, bool]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        self.options[response.urn] = (bool(request.protect), bool(request.retainOnDelete))
        return response


def capture(
    project: str, stack: str, config: dict[str, Any], mocks: RecordingMocks, program: Callable[[], dict[str, Any]]
) -> tuple[list[Captured], dict[str, Any]]:
    """Run program under mocks with config set, wait for every registration, return what it declared."""
    monitor = OptionsMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config({key: _as_config(value) for key, value in config.items()})
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]  # waits for every registration to finish
    def execute() -> pulumi.Output[None]:
        return pulumi.Output.all(**program()).apply(outputs.update)

    execute()
    resources = []
    for registration in monitor.resources.values():
        types = registration.urn.split("::")[2]
        resources.append(
            Captured(
                type=types.split("$")[-1],
                name=registration.urn.split("::")[-1],
                id=str(registration.id or ""),
                inputs=dict(registration.state or {}),
                urn=registration.urn,
                custom=not types.split("$")[-1].startswith("mlops:"),
                protect=monitor.options.get(registration.urn, (False, False))[0],
                retain_on_delete=monitor.options.get(registration.urn, (False, False))[1],
            )
        )
    return resources, outputs


def default_mocks(project: ProjectSection | None = None, env: str = "dev") -> RecordingMocks:
    """Mocks answering as the account that holds env."""
    project = project or load_config().project
    return RecordingMocks(
        project.account(env),
        project.aws_region,
        registry_stack_outputs(project.resource_prefix, project.aws_account_id, project.aws_region),
    )


def run_stack(stack: str, overrides: dict[str, Any] | None = None, project: ProjectSection | None = None) -> StackRun:
    """Run infra/program.py for stack under mocks; overrides replace stack-file values (None removes one).

    project replaces mlops.toml's [project] (the other account layout, say)."""
    from infra import program

    project = project or load_config().project
    values = {**stack_values(stack, project.resource_prefix), **(overrides or {})}
    config = {f"{project.resource_prefix}:{key}": value for key, value in values.items() if value is not None}
    settings: list[stack_settings.StackSettings] = []

    def declare() -> dict[str, Any]:
        settings.append(program.load_settings(project))
        return program.build(settings[0])

    resources, outputs = capture(project.resource_prefix, stack, config, default_mocks(project, stack), declare)
    return StackRun(settings[0], resources, outputs)


def run_bootstrap(
    stack: str | None = None, project: ProjectSection | None = None
) -> tuple[list[Captured], dict[str, Any]]:
    """infra/bootstrap under mocks; the stack defaults to the layout's first (`bootstrap` or `bootstrap-dev`)."""
    from infra.bootstrap import program

    project = project or load_config().project
    stack = stack or ("bootstrap-dev" if project.per_environment else "bootstrap")
    return capture(
        f"{project.resource_prefix}-bootstrap",
        stack,
        {},
        default_mocks(project, stack.removeprefix("bootstrap-") if project.per_environment else "dev"),
        lambda: program.build(project, stack),
    )


def _as_config(value: Any) -> str:
    # Pulumi config values are strings; booleans and numbers arrive the way the CLI sends them.
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)

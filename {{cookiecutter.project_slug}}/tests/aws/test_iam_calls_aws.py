"""Every call the pipeline makes in AWS is one its role's policy allows (tests/aws/iam_calls.py).

The steps run against moto as CI runs them in dev (data, train, evaluate, register, promote);
botocore's events record each request. The policies are the ones the Pulumi program declares for
dev under Pulumi's mocks: the deploy role for the steps, the execution role for what SageMaker does
for a job (read its inputs, write its outputs).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import tests.infra.iam  # noqa: F401  (principalmapper's import shim)
from infra.mocks import StackRun, run_stack
from ml import names
from ml.__main__ import main
from tests.aws.iam_calls import REFUSAL_HANDLED, Call, Need, Recorder, as_stack, needs_of
from tests.aws.steps import CONFIG, run_steps, serve_in_stack
from tests.aws_fixtures import Account
from tests.conftest import write_config
from tests.data_factory import example_frame, write_csv
from tests.infra.iam.evaluate import allowed, role
from tests.test_tune import tiny_search

pytestmark = pytest.mark.xdist_group("aws-iam-calls")
PREFIX, REGION, ACCOUNT = CONFIG.project.resource_prefix, CONFIG.project.aws_region, CONFIG.project.aws_account_id


@pytest.fixture(scope="module")
def recorded(aws_module: Account, tmp_path_factory: pytest.TempPathFactory) -> tuple[Account, list[Call]]:
    recorder = Recorder.on(aws_module)
    run_steps()
    serve_in_stack(aws_module, 1)  # what deploy.yml's `pulumi up` leaves, then a batch on its model
    assert main(["batch", "--input", str(write_csv(example_frame().head(80), tmp_path_factory.mktemp("batch")))]) == 0
    with pytest.MonkeyPatch.context() as patch:  # `make tune`, as the pipeline's role would run it
        patch.setenv("MLOPS_CONFIG", str(tiny_search(tmp_path_factory.mktemp("tune"))))
        assert main(["tune"]) == 0
    with pytest.MonkeyPatch.context() as patch:  # `make staleness`: another processing job, on the whole data set
        # In a shuffled order: a data set stored by class (wine is) has windows of one class, which
        # the step rightly refuses before any job starts, and there would be no call to record.
        shuffled = example_frame().sample(frac=1.0, random_state=0)
        data = write_csv(shuffled, tmp_path_factory.mktemp("staleness"), "data.csv")
        patch.setenv("MLOPS_CONFIG", str(write_config(data.parent, data={"source": str(data)})))
        assert main(["staleness"]) == 0
    return aws_module, recorder.calls


@pytest.fixture(scope="module")
def dev_stack() -> StackRun:
    return run_stack("dev", {"model_version": None})


def judged(aws: Account, calls: list[Call], stack: StackRun) -> tuple[list[Need], list[Need]]:
    """(needs, the ones refused) of every recorded call, as the policy of its caller's role."""
    policies = {r.name: r.inputs["policy"] for r in stack.of_type("aws:iam/rolePolicy:RolePolicy")}
    # moto made its own key; the program's policies name the stack's. They are the same key.
    moto_key, stack_key = aws.outputs["kms_key_arn"], stack.outputs["kms_key_arn"]
    aliases = [names.kms_key_alias(PREFIX, "dev")]
    keys = {aws.outputs[b]: (stack_key, aliases) for b in ("data_bucket", "artifacts_bucket")}
    deploy = role(
        f"arn:aws:iam::{ACCOUNT}:role/{names.deploy_role_name(PREFIX, 'dev')}", policies["dev-github-deploy-policy"]
    )
    execution = role(stack.outputs["execution_role_arn"], policies["dev-sagemaker-execution-policy"])
    everything, refused = [], []
    for call in calls:
        for need in needs_of(call, REGION, ACCOUNT, keys):
            _, resource, context = as_stack(need, moto_key, stack_key)
            principal = execution if call.as_job else deploy
            everything.append(need)
            if need.action in REFUSAL_HANDLED:
                continue
            if not allowed(principal, need.action, resource, context):
                refused.append(Need(need.action, resource, context, f"{'job' if call.as_job else 'CI'}: {need.call}"))
    return everything, refused


def test_the_recording_saw_the_whole_pipeline(recorded: tuple[Account, list[Call]]) -> None:
    _, calls = recorded
    operations = {(c.service, c.operation, c.as_job) for c in calls}
    for expected in [
        ("sagemaker", "CreateTrainingJob", False),
        ("sagemaker", "CreateProcessingJob", False),
        ("sagemaker", "CreateModelPackage", False),
        ("s3", "PutObject", False),
        ("s3", "ListObjectsV2", True),  # SageMaker reading a job's inputs
        ("sagemaker", "CreateTransformJob", False),  # make batch
        ("sagemaker", "DescribeTransformJob", False),
        ("s3", "PutObject", True),  # the transform job writing its answers
    ]:
        assert expected in operations, expected


def test_every_call_is_allowed_to_the_role_that_makes_it(
    recorded: tuple[Account, list[Call]], dev_stack: StackRun
) -> None:
    aws, calls = recorded
    everything, refused = judged(aws, calls, dev_stack)
    assert len(everything) > 50
    lines = "\n".join(sorted({f"  {n.call}: {n.action} on {n.resource} {n.context or ''}" for n in refused}))
    assert not refused, f"calls the roles' policies refuse:\n{lines}"


def test_a_policy_without_one_action_fails_naming_the_call(
    recorded: tuple[Account, list[Call]], dev_stack: StackRun
) -> None:
    aws, calls = recorded
    broken: dict[str, Any] = json.loads(
        dev_stack.one("aws:iam/rolePolicy:RolePolicy", "dev-github-deploy-policy").inputs["policy"]
    )
    for statement in broken["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        statement["Action"] = [a for a in actions if a != "sagemaker:CreateModelPackage"] or ["sagemaker:ListTags"]
    inputs = {
        **dev_stack.one("aws:iam/rolePolicy:RolePolicy", "dev-github-deploy-policy").inputs,
        "policy": json.dumps(broken),
    }
    resources = [
        r if r.name != "dev-github-deploy-policy" else type(r)(**{**vars(r), "inputs": inputs})
        for r in dev_stack.resources
    ]
    _, refused = judged(aws, calls, StackRun(dev_stack.settings, resources, dev_stack.outputs))
    assert {(n.action, n.call.split("(")[0]) for n in refused} == {
        ("sagemaker:CreateModelPackage", "CI: sagemaker.CreateModelPackage")
    }


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda r: r["TransformResources"].pop("VolumeKmsKeyId"), "no key on its volume"),
        (lambda r: r["TransformOutput"].update(KmsKeyId=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/other"), "another key"),
        (lambda r: r.update(ModelName="someone-elses-model"), "another model"),
    ],
    ids=["no-volume-key", "other-output-key", "other-model"],
)
def test_the_deploy_role_refuses_a_transform_job_off_the_stacks_model_or_key(
    recorded: tuple[Account, list[Call]], dev_stack: StackRun, change: Any, why: str
) -> None:
    aws, calls = recorded
    [batch] = [c for c in calls if c.operation == "CreateTransformJob"]
    assert not judged(aws, [batch], dev_stack)[1], "make batch's own request is allowed"
    request = json.loads(json.dumps(batch.params))
    change(request)
    _, refused = judged(aws, [Call(batch.service, batch.operation, request, False)], dev_stack)
    assert [n.action for n in refused] == ["sagemaker:CreateTransformJob"], why

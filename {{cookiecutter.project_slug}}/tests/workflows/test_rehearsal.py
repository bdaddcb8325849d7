"""The whole GitOps sequence, played the way GitHub runs it (tests/workflows/rehearsal).

One repository's story, told in order on one rehearsal (the tests share it, and run on one worker):
the first push, the pipeline and its promotion pull request, CI on it, the merge, staging, the prod
pull request, prod's plan, the approval, prod; then what goes wrong: an unchanged retrain, new
data, a re-run promotion job, two promotions at once, a revert, a re-run of an old deploy, a dev
deploy that fails, cancelled runs, and a private repository without required reviewers.

Each test names the finding of issue 12 it guards; each failed on the code before its fix.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml.config import PROJECT_ROOT
from tests import mermaid
from tests.workflows.rehearsal.runner import Cancel
from tests.workflows.rehearsal.sandbox import rehearsal_cloud
from tests.workflows.rehearsal.tools import WorkflowTools
from tests.workflows.rehearsal.world import World, project_files

pytestmark = pytest.mark.xdist_group("rehearsal")

PREFIX = tomllib.loads((PROJECT_ROOT / "mlops.toml").read_text())["project"]["resource_prefix"]
VERSION_KEY = f"{PREFIX}:model_version"
APP = "promotions[bot]"


@pytest.fixture(scope="module")
def tools() -> Iterator[WorkflowTools]:
    opened = WorkflowTools()
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def world(tools: WorkflowTools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("rehearsal")
    created = World(root, tools)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REHEARSAL_CLOUD", str(created.cloud))
        try:
            yield created
        finally:
            rehearsal_cloud.stop_all()
            created.close()


def failures(world: World, file: str) -> str:
    run = world.last_run(file)
    return run.describe() + "".join(
        f"\n=== {job.key}\n{job.log[-4000:]}" for jobs in run.jobs.values() for job in jobs if job.result == "failure"
    )


def results(world: World, file: str) -> dict[str, str]:
    run = world.last_run(file)
    return {job.key: job.result for jobs in run.jobs.values() for job in jobs}


def open_promotion(world: World, target: str) -> dict[str, object]:
    pulls = [p for p in world.pulls() if p["head"] == f"promote/{target}"]
    assert len(pulls) == 1, f"open promotion pull requests for {target}: {world.pulls()}"
    return pulls[0]


def comment(pull: dict[str, object]) -> str:
    comments = [c for c in pull["comments"] if c["author"] == APP]  # type: ignore[attr-defined]
    assert len(comments) == 1, f"promotion comments on #{pull['number']}: {pull['comments']}"
    return str(comments[0]["body"])


def stack_version(world: World, stack: str, ref: str = "main") -> str:
    text = world.show(ref, f"infra/Pulumi.{stack}.yaml")
    match = re.search(rf"{re.escape(VERSION_KEY)}: ['\"]?(\d*)['\"]?", text)
    return match.group(1) if match else ""


def waiting(world: World, file: str, job: str) -> None:
    run = world.last_run(file)
    assert run.status == "waiting" and run.job(job).result == "waiting", failures(world, file)


def merge_with_checks(world: World, number: int) -> None:
    world.settle()
    world.merge(number)
    world.settle()


# ---- the sequence ----


def test_first_push_trains_registers_and_opens_a_promotion_pull_request_whose_checks_run(world: World) -> None:
    """Findings 1 (no git identity on the runner), 2 (GITHUB_TOKEN pull requests start no workflow),
    11 (the first push's all-zero `before`)."""
    world.first_push()
    world.settle()
    assert results(world, "pipeline.yml") == {
        "test": "success",
        "train": "success",
        "evaluate": "success",
        "register": "success",
        "promote": "success",
        "preview-promotion": "success",
    }, failures(world, "pipeline.yml")
    pull = open_promotion(world, "staging")
    assert pull["title"] == "Promote model v1 to staging" and pull["author"] == APP
    assert stack_version(world, "staging", "refs/heads/promote/staging") == "1"
    # The App's pull request started ci.yml, and every check branch protection requires reported.
    checks = world.checks(str(pull["head_sha"]))
    assert all(checks.get(name) == "success" for name in world.guide.required_checks), checks
    # The first push deployed the stacks' infrastructure: no model yet, prod after its reviewer.
    assert world.applied_version("dev") == "" and len(world.applied("dev")) == 1, failures(world, "deploy.yml")
    assert world.applied_version("staging") == "" and len(world.applied("staging")) == 1
    waiting(world, "deploy.yml", "deploy-prod")
    world.approve(world.last_run("deploy.yml"), "deploy-prod")
    assert results(world, "deploy.yml")["deploy-prod"] == "success", failures(world, "deploy.yml")


def test_the_pipeline_run_ci_made_is_in_mlflow_with_its_version(world: World) -> None:
    """`make track` after the register job: the run its jobs made, logged with MLflow's own client (to a
    local MLflow server standing in for dev's MLflow App)."""
    from mlflow import MlflowClient

    client = MlflowClient(world.mlflow_url)
    experiment = client.get_experiment_by_name(PREFIX)
    assert experiment is not None, failures(world, "pipeline.yml")
    runs = client.search_runs([experiment.experiment_id])
    first = [r for r in runs if r.data.tags.get("registry.version") == "1"]
    assert len(first) == 1, [r.data.tags for r in runs]
    tags, metrics = first[0].data.tags, first[0].data.metrics
    assert tags["registry.approval"] == "Approved" and tags["mlops.env"] == "dev"
    assert tags["mlops.run_id"].startswith("ci-") and tags["lineage.git_sha"]
    assert metrics and any(name.startswith("baseline.simple.") for name in metrics)
    assert "evaluation/evaluation.json" in {a.path for a in client.list_artifacts(first[0].info.run_id, "evaluation")}


def test_the_promotion_comment_compares_with_what_the_target_serves_and_shows_the_preview(
    world: World, tmp_path: Path
) -> None:
    """Finding 13: the comparison was with the candidate itself (the champion read after registering)."""
    body = comment(open_promotion(world, "staging"))
    assert "staging serves no model yet" in body
    assert re.search(r"^\| \w+ \| -?[0-9.]+ \|$", body, re.MULTILINE), body  # a metric row, whatever the task
    assert "Lineage" in body and "data_hash" in body
    assert f"{VERSION_KEY}: '' => '1'" in body  # the preview of staging with the change
    # The pull request's description carries the evaluation's plots, in a form GitHub draws from the
    # text in a private repository too: the ROC curve or the residuals as Mermaid charts (drawn here by
    # Mermaid itself), a confusion matrix as a table.
    description = str(open_promotion(world, "staging")["body"])
    sources = mermaid.blocks(description)
    assert sources or "| true \\ predicted |" in description, description
    if sources and mermaid.available():
        drawn = mermaid.render(sources, tmp_path)
        assert all(d.svg and not d.error for d in drawn), [d.error for d in drawn]


def test_ci_on_a_pull_request_runs_preview_offline_for_every_stack(world: World) -> None:
    """Finding 3: `make preview-offline` without STACK exited 2, and ci.yml runs it on every pull request."""
    ci = world.last_run("ci.yml")
    assert ci.job("infra").result == "success", failures(world, "ci.yml")
    assert "make preview-offline: success" in ci.job("infra").log


def test_every_job_has_a_timeout_and_ci_pins_uv_and_the_pulumi_cli(world: World) -> None:
    """Findings 10 (uv and the Pulumi CLI unpinned) and 12 (no timeout-minutes)."""
    untimed = [f"{r.file}:{j.key}" for r in world.runs for js in r.jobs.values() for j in js
               if j.result != "skipped" and j.timeout_minutes >= 360]  # fmt: skip
    assert not untimed, f"jobs on GitHub's 6-hour default: {untimed}"
    pinned_uv = re.search(r"^uv (\S+)$", (PROJECT_ROOT / ".tool-versions").read_text(), re.MULTILINE)
    pinned_pulumi = (PROJECT_ROOT / ".pulumi-version").read_text().strip()
    assert pinned_uv, ".tool-versions names no uv version"
    versions = {(tool, version) for _, _, tool, version in world.tool_versions}
    assert versions == {("uv", pinned_uv.group(1)), ("pulumi", pinned_pulumi)}, versions
    assert {call["version"] for call in world.pulumi_calls()} == {pinned_pulumi}


def test_merging_applies_staging_and_opens_the_prod_pull_request(world: World) -> None:
    """Finding 2 again: the App's pull request can be merged under the README's branch rules."""
    merge_with_checks(world, int(open_promotion(world, "staging")["number"]))  # type: ignore[call-overload]
    assert world.applied_version("staging") == "1", failures(world, "deploy.yml")
    assert results(world, "deploy.yml")["deploy-staging"] == "success"
    assert "v1 serving" in world.last_run("deploy.yml").job("deploy-staging").summary
    pull = open_promotion(world, "prod")
    assert pull["title"] == "Promote model v1 to prod" and pull["author"] == APP
    assert "prod serves no model yet" in comment(pull)


def test_prod_applies_exactly_the_plan_its_reviewer_approved(world: World) -> None:
    """Finding 5: prod was approved without a plan, and `pulumi up --skip-preview` applied whatever main held."""
    merge_with_checks(world, int(open_promotion(world, "prod")["number"]))  # type: ignore[call-overload]
    run = world.last_run("deploy.yml")
    assert run.job("plan-prod").result == "success", failures(world, "deploy.yml")
    assert "pulumi preview: prod" in run.job("plan-prod").summary and "=> '1'" in run.job("plan-prod").summary
    plan_call = [c for c in world.pulumi_calls() if c["argv"][:1] == ["preview"] and "--save-plan" in c["argv"]][-1]
    assert plan_call["role"].endswith(f"{PREFIX}-prod-github-preview")
    waiting(world, "deploy.yml", "deploy-prod")
    assert world.applied_version("prod") == ""  # nothing before the approval
    world.approve(run, "deploy-prod")
    assert results(world, "deploy.yml")["deploy-prod"] == "success", failures(world, "deploy.yml")
    assert world.applied("prod")[-1]["plan"] and world.applied_version("prod") == "1"
    up = [c for c in world.pulumi_calls() if c["argv"][:1] == ["up"]][-1]
    assert "--plan" in up["argv"] and "--skip-preview" not in up["argv"]


def test_an_unchanged_retrain_registers_nothing_and_opens_no_pull_request(world: World) -> None:
    """Finding 6: `make train evaluate register` registered an unchanged model again, with a new PR."""
    before = len(world.pulls("open")) + len(world.pulls("closed")) + len(world.pulls("merged"))
    world.schedule()  # the weekly retrain
    world.settle()
    assert results(world, "retrain.yml") == {"retrain": "success"}, failures(world, "retrain.yml")
    assert world.last_run("pipeline.yml").event == "workflow_dispatch"
    assert results(world, "pipeline.yml")["promote"] == "success", failures(world, "pipeline.yml")
    assert "already registered as v1" in world.last_run("pipeline.yml").job("register").log
    assert len(world.pulls("open")) + len(world.pulls("closed")) + len(world.pulls("merged")) == before


def test_new_data_makes_a_drift_retrain_train_a_new_model(world: World) -> None:
    """Finding 14: a retrain read the committed data again, so it could never produce another model."""
    world.add_data(40)  # labelled traffic that arrived since
    world.repository_dispatch("retrain")
    world.settle()
    assert results(world, "pipeline.yml")["register"] == "success", failures(world, "pipeline.yml")
    pull = open_promotion(world, "staging")
    assert pull["title"] == "Promote model v2 to staging"
    body = comment(pull)
    assert "staging serves v1" in body and "| v2 | v1 |" in body.replace("candidate ", "")


def test_a_rerun_promotion_job_updates_its_branch_and_pull_request(world: World) -> None:
    """Finding 7: a re-run push used --force-with-lease with no remote-tracking ref, and was refused forever
    (with that lease the case before already fails: v2's push to the existing promote/staging)."""
    number = open_promotion(world, "staging")["number"]
    world.rerun(world.last_run("pipeline.yml"), "promote")
    assert results(world, "pipeline.yml")["promote"] == "success", failures(world, "pipeline.yml")
    assert open_promotion(world, "staging")["number"] == number


def test_overlapping_promotions_leave_one_pull_request_for_the_newest_model(world: World) -> None:
    """The overlap case: the second pipeline run waits for the first, then supersedes its pull request."""
    world.runner.pause_before.add(("pipeline.yml", "promote"))
    world.add_data(30)
    world.repository_dispatch("retrain")
    world.settle()
    first = world.last_run("pipeline.yml")
    assert first.status == "in_progress", first.describe()
    world.add_data(30)
    world.repository_dispatch("retrain")
    world.settle()
    second = world.last_run("pipeline.yml")
    assert second is not first and second.status == "queued"  # concurrency: pipeline-dev
    world.runner.resume(first)
    world.settle()
    assert second.status == "completed", second.describe()
    pull = open_promotion(world, "staging")
    assert pull["title"] == "Promote model v4 to staging", pull["title"]
    assert "v4" in comment(pull) and "v3" not in comment(pull).split("Lineage")[0]


def test_reverting_a_promotion_rolls_staging_back_and_closes_the_stale_prod_pull_request(world: World) -> None:
    """Rollback: revert the promotion's merge; the prod pull request it had opened is superseded."""
    staging = open_promotion(world, "staging")
    merge_with_checks(world, int(staging["number"]))  # type: ignore[call-overload]
    assert world.applied_version("staging") == "4", (
        "\n".join(r.describe() for r in world.runs[-6:]) + str(world.suppressed[-3:]) + str(staging)
    )
    world.deploy_run_of_v4 = world.last_run("deploy.yml")  # type: ignore[attr-defined]
    assert open_promotion(world, "prod")["title"] == "Promote model v4 to prod"
    revert = world.revert(int(staging["number"]))  # type: ignore[call-overload]
    merge_with_checks(world, revert)
    assert world.applied_version("staging") == "1", failures(world, "deploy.yml")
    assert not [p for p in world.pulls() if p["head"] == "promote/prod"], "the prod promotion of v4 stayed open"


def test_rerunning_an_old_deploy_refuses_to_roll_back(world: World) -> None:
    """Finding 9: a re-run uses the original commit, and applied v4 again over main's revert."""
    old = world.deploy_run_of_v4  # type: ignore[attr-defined]
    world.rerun(old, "deploy-staging")
    assert old.job("deploy-staging").result == "failure"
    assert "changed on main since" in old.job("deploy-staging").log
    assert world.applied_version("staging") == "1"


def test_a_failed_dev_deploy_applies_nothing_after_it(world: World) -> None:
    """Findings 4 (always() gates ran prod when dev failed) and 8 (mlops.toml changes were never applied)."""
    world.fail_pulumi_up("dev", "error: creating SageMaker model: AccessDenied")
    number = world.propose(
        "tune-serving", lambda root: _append(root / "mlops.toml", "# serve tuning\n"), "Tune serving"
    )
    merge_with_checks(world, number)
    outcome = results(world, "deploy.yml")
    assert outcome["deploy-dev"] == "failure", failures(world, "deploy.yml")
    assert {k: v for k, v in outcome.items() if k not in ("changes", "deploy-dev")} == dict.fromkeys(
        [k for k in outcome if k not in ("changes", "deploy-dev")], "skipped"
    ), outcome
    world.fail_pulumi_up("dev", None)


def test_a_cancelled_deploy_starts_nothing_after_it(world: World) -> None:
    """Finding 4: a cancelled run started the always() jobs."""
    world.runner.cancel = Cancel("deploy-dev", "make infra-up", lambda workspace: True)
    world.rerun(world.last_run("deploy.yml"), "deploy-dev")
    outcome = results(world, "deploy.yml")
    assert outcome["deploy-dev"] == "cancelled", outcome
    assert all(v in ("skipped", "success") for k, v in outcome.items() if k not in ("deploy-dev",)), outcome
    assert outcome.get("deploy-staging") == "skipped" and outcome.get("deploy-prod") == "skipped", outcome


def test_cancelling_training_stops_the_sagemaker_job_it_started(world: World) -> None:
    """Finding 12: cancelling left the SageMaker jobs running."""
    world.add_data(30)
    world.hold_jobs(True)
    world.runner.cancel = Cancel("train", "make train", lambda workspace: world.job_in_progress())
    world.repository_dispatch("retrain")
    world.settle()
    world.hold_jobs(False)
    outcome = results(world, "pipeline.yml")
    assert outcome["train"] == "cancelled" and outcome["promote"] == "skipped", outcome
    train = world.last_run("pipeline.yml").job("train")
    assert "make stop-jobs: success" in train.log, train.log
    statuses = {
        job["status"] for job in world.cloud_jobs().values() if job["run"] == str(world.last_run("pipeline.yml").id)
    }
    assert statuses == {"Stopped"}, world.cloud_jobs()


def test_without_required_reviewers_prod_waits_for_a_person_to_dispatch_it(world: World) -> None:
    """Finding 15: on a private repository without required reviewers, prod applied with nobody's approval."""
    world.reviewers_available = False  # the repository went private on GitHub Team (README, plans)
    world.extra_variables["PROD_APPROVAL"] = "dispatch"
    number = world.propose("tune-budget", lambda root: _append(root / "mlops.toml", "# budget\n"), "Tune budget")
    merge_with_checks(world, number)
    before = len(world.applied("prod"))
    run = world.last_run("deploy.yml")
    assert run.job("plan-prod").result == "success" and run.job("deploy-prod").result == "skipped", run.describe()
    assert len(world.applied("prod")) == before
    world.dispatch("deploy.yml", {"stack": "prod"})
    world.settle()
    assert results(world, "deploy.yml")["deploy-prod"] == "success", failures(world, "deploy.yml")
    assert len(world.applied("prod")) == before + 1


def test_no_event_of_github_token_was_expected_to_start_a_workflow(world: World) -> None:
    """Finding 2, the rule itself: every event the workflows' GITHUB_TOKEN caused started nothing, and
    none was one the sequence needed (each promotion pull request came from the App)."""
    assert all(
        e["actor"]["login"] != "github-actions[bot]" or e["name"] == "workflow_dispatch" for e in world.suppressed
    )
    assert not [e for e in world.suppressed if e["name"] == "pull_request"]


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_the_rehearsal_reads_the_readme_set_up() -> None:
    """Done-when: README's GitHub set-up is what the rehearsal assumes (environments, App, checks)."""
    from tests.workflows.rehearsal import setup_guide

    guide = setup_guide.read(PROJECT_ROOT / "README.md")
    assert set(guide.environments) == {
        "dev",
        "staging",
        "production",
        "dev-preview",
        "staging-preview",
        "production-preview",
    }
    assert guide.app_permissions == {"contents": "write", "pull-requests": "write"}
    workflows = "".join(p.read_text() for p in (PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))
    for name in guide.required_checks:
        assert f"name: {name}" in workflows, f"README requires check {name!r}, which no job is called"
    for variable in (*guide.repository_variables, *guide.repository_secrets, "PREVIEW_ROLE_ARN", "DEPLOY_ROLE_ARN"):
        assert variable in workflows, f"README sets {variable}, which no workflow reads"
    assert not guide.actions_can_create_prs
    # Each role variable is set in the environments whose jobs assume that kind of role.
    assert {e.role_variable for e in guide.environments.values() if e.name.endswith("-preview")} == {"PREVIEW_ROLE_ARN"}
    assert {e.role_variable for e in guide.environments.values() if not e.name.endswith("-preview")} == {
        "DEPLOY_ROLE_ARN"
    }
    assert guide.environments["production"].reviewers and guide.environments["production"].branches == ("main",)


def test_the_first_push_takes_the_project_even_inside_a_repository_that_ignores_it(tmp_path: Path) -> None:
    # `make bench` bakes its project under the template's build/, which the template's repository
    # ignores: the rehearsal's first push took no file at all, and every case after it failed.
    outer = tmp_path / "monorepo"
    project = outer / "build" / "project"
    (project / "ml").mkdir(parents=True)
    (outer / ".gitignore").write_text("build/\n")
    (project / ".gitignore").write_text("*.log\n")
    for name in ("mlops.toml", "ml/train.py", "run.log"):
        (project / name).write_text("")
    expected = [".gitignore", "ml/train.py", "mlops.toml"]
    subprocess.run(["git", "init", "--quiet", str(outer)], check=True)
    assert project_files(project, tmp_path / "scratch.git") == expected
    subprocess.run(["git", "init", "--quiet", str(project)], check=True)  # its own repository, as baked
    assert project_files(project, tmp_path / "unused.git") == expected

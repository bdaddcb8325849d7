"""Runs workflow jobs from their YAML as GitHub Actions does, in a runner-like sandbox.

What a run takes from GitHub's documentation (docs.github.com/en/actions):

- Which workflows an event starts: `on` with its branches, paths and types filters (paths
  against the files the push or pull request changed; a new branch against the empty tree).
  The workflow files are the ones at the event's commit.
- Job order and conditions: `needs`, and `if` as GitHub's converter writes it (a condition
  without a status function is `success() && (...)`), evaluated by GitHub's evaluator. At job
  level failure() is true when any ancestor job failed, success() when every ancestor succeeded
  (so a skipped ancestor skips its dependents), cancelled() when the run was cancelled.
- Environments: deployment branch rules, required reviewers (the job waits for an approval),
  their variables and secrets; an environment nobody created is created empty.
- GITHUB_TOKEN: one per job, with the job's `permissions:` (else the workflow's), revoked when
  the job ends; the OIDC token only with `id-token: write`, its subject
  `repo:<owner/repo>:environment:<name>` for a job in an environment.
- Concurrency groups: one run (or job) in progress per group; a newer pending one cancels the
  older pending one; cancel-in-progress cancels the one in progress.
- Re-runs use the original event: the same GITHUB_SHA, GITHUB_REF and payload, a new attempt
  number, and the outputs of the jobs not re-run.
- Cancelling sends SIGINT to the running step (the runner follows with SIGTERM), then runs the
  steps whose `if` holds for a cancelled run (cancelled(), always()).

Each job gets a fresh workspace and a fresh HOME with no git configuration, the GITHUB_*
variables, the event payload, and a PATH with `gh` and, once pulumi/actions ran, `pulumi`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.workflows.rehearsal import actions
from tests.workflows.rehearsal.tools import ParsedWorkflow

if TYPE_CHECKING:
    from tests.workflows.rehearsal.world import World

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree: what a new branch is compared with
ZERO = "0" * 40
DEFAULT_TIMEOUT_MINUTES = 360  # GitHub's, for a job without timeout-minutes
PULL_REQUEST_TYPES = ("opened", "synchronize", "reopened")  # pull_request's default activity types
# The project's own checks. Their result on this commit is this very test run's (the rehearsal is part
# of `make test`), so a step that runs one is checked with `make -n` (the target and everything it
# needs exist) rather than run again inside itself.
SUITE_TARGETS = {"test", "precommit", "unit-fast", "infra-test", "e2e", "pipeline"}
JOBS_AT_ONCE = 4  # GitHub starts every ready job at once; here, this many at a time


@dataclass
class StepRun:
    name: str
    outcome: str  # success, failure, cancelled, skipped
    output: str = ""
    seconds: float = 0.0


@dataclass
class JobRun:
    key: str  # the job id, or "<id> (<matrix values>)" for a matrix instance
    job_id: str
    name: str
    result: str = "pending"  # success, failure, cancelled, skipped, waiting
    outputs: dict[str, str] = field(default_factory=dict)
    steps: list[StepRun] = field(default_factory=list)
    environment: str | None = None
    timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES
    reason: str = ""
    workspace: Path | None = None
    summary: str = ""

    @property
    def log(self) -> str:
        return "\n".join(f"--- {s.name}: {s.outcome}\n{s.output}" for s in self.steps) + (
            f"\n{self.reason}" if self.reason else ""
        )


@dataclass
class Run:
    id: int
    workflow: ParsedWorkflow
    file: str
    event: str
    payload: dict[str, Any]
    sha: str
    ref: str
    actor: dict[str, Any]
    attempt: int = 1
    jobs: dict[str, list[JobRun]] = field(default_factory=dict)
    status: str = "queued"  # queued, in_progress, waiting, completed
    cancelled: bool = False
    group: str | None = None
    approvals: set[str] = field(default_factory=set)
    rerun: set[str] | None = None  # the job ids this attempt runs; None for all

    @property
    def name(self) -> str:
        return str(self.workflow.tree.get("name") or self.file)

    def job(self, job_id: str) -> JobRun:
        runs = self.jobs.get(job_id) or []
        assert len(runs) == 1, f"{self.file}: job {job_id} ran {len(runs)} times"
        return runs[0]

    def result(self, job_id: str) -> str:
        """A job's result as `needs` reports it (a matrix: failure if any failed, and so on)."""
        results = [j.result for j in self.jobs.get(job_id, [])]
        for verdict in ("failure", "cancelled"):
            if verdict in results:
                return verdict
        if not results or all(r == "skipped" for r in results):
            return "skipped" if results else "pending"
        return "success" if all(r in ("success", "skipped") for r in results) else results[0]

    def describe(self) -> str:
        lines = [f"run {self.id} {self.file} ({self.event}, attempt {self.attempt}): {self.status}"]
        for runs in self.jobs.values():
            for job in runs:
                lines.append(f"  {job.key}: {job.result} {job.reason}".rstrip())
        return "\n".join(lines)


class Cancel:
    """Cancel a run while one of its steps runs, once the predicate holds (e.g. a SageMaker job started)."""

    def __init__(self, job_id: str, step_run: str, when: Callable[[Path], bool]) -> None:
        self.job_id, self.step_run, self.when = job_id, step_run, when
        self.fired = False


class Runner:
    def __init__(self, world: World) -> None:
        self.world = world
        self.tools = world.tools
        self.pause_before: set[tuple[str, str]] = set()  # (workflow file, job id): hold the run there
        self.cancel: Cancel | None = None

    # ---- conditions and expressions ----

    def contexts(self, run: Run, **extra: Any) -> dict[str, Any]:
        return {
            "github": self.github_context(run),
            "vars": self.world.variables(None),
            "inputs": run.payload.get("inputs", {}),
            **extra,
        }

    def github_context(self, run: Run, job: str = "", token: str = "") -> dict[str, Any]:
        repository = self.world.repository
        return {
            "event_name": run.event,
            "event": run.payload,
            "sha": run.sha,
            "ref": run.ref,
            "ref_name": run.ref.removeprefix("refs/heads/").removeprefix("refs/"),
            "head_ref": run.payload.get("pull_request", {}).get("head", {}).get("ref", ""),
            "base_ref": run.payload.get("pull_request", {}).get("base", {}).get("ref", ""),
            "repository": repository,
            "repository_owner": repository.split("/")[0],
            "run_id": str(run.id),
            "run_number": str(run.id),
            "run_attempt": str(run.attempt),
            "actor": run.actor.get("login", ""),
            "workflow": run.name,
            "job": job,
            "token": token,
            "server_url": "https://github.com",
            "api_url": "https://api.github.com",
            "workspace": "",
        }

    def value(
        self, node: Any, contexts: dict[str, Any], status: dict[str, bool] | None = None, workspace: str = "."
    ) -> Any:
        """A node of the workflow's token tree with every expression evaluated."""
        if isinstance(node, dict) and set(node) == {"$expr"}:
            return self.tools.evaluate(node["$expr"], contexts, status, workspace)[0]
        if isinstance(node, dict):
            return {k: self.value(v, contexts, status, workspace) for k, v in node.items()}
        if isinstance(node, list):
            return [self.value(v, contexts, status, workspace) for v in node]
        return node

    @staticmethod
    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return value if isinstance(value, str) else json.dumps(value)

    def ancestors(self, run: Run, job_id: str) -> set[str]:
        found: set[str] = set()
        pending = list(run.workflow.jobs[job_id]["needs"])
        while pending:
            need = pending.pop()
            if need not in found:
                found.add(need)
                pending += run.workflow.jobs[need]["needs"]
        return found

    def job_status(self, run: Run, job_id: str) -> dict[str, bool]:
        results = [run.result(a) for a in self.ancestors(run, job_id)]
        return {
            "success": not run.cancelled and all(r == "success" for r in results),
            "failure": "failure" in results,
            "cancelled": run.cancelled,
            "always": True,
        }

    # ---- runs ----

    def start(self, run: Run) -> None:
        run.status = "in_progress"
        self.resume(run)

    def resume(self, run: Run) -> None:
        """Run every job whose needs are done, those that are ready at the same time side by side, as
        GitHub does, until the run completes, waits for a reviewer, or is held (pause_before)."""
        run.status = "in_progress"
        while True:
            ready = [job_id for job_id in run.workflow.jobs if self._ready(run, job_id)]
            held = [job_id for job_id in ready if (run.file, job_id) in self.pause_before]
            if held:
                self.pause_before.discard((run.file, held[0]))
                return  # held here (in progress) until the test resumes it
            if not ready:
                break
            with ThreadPoolExecutor(max_workers=JOBS_AT_ONCE) as pool:
                for future in [pool.submit(self.run_job, run, job_id) for job_id in ready]:
                    future.result()
        if any(j.result == "waiting" for runs in run.jobs.values() for j in runs):
            run.status = "waiting"
            return
        run.status = "completed"
        self.world.run_completed(run)

    def _ready(self, run: Run, job_id: str) -> bool:
        if job_id in run.jobs and run.jobs[job_id][0].result not in ("pending", "waiting"):
            return False
        if any(
            j.result == "waiting" and f"{j.key}@{run.attempt}" not in run.approvals for j in run.jobs.get(job_id, [])
        ):
            return False  # still waiting for its reviewer
        return all(run.result(n) not in ("pending", "waiting") for n in run.workflow.jobs[job_id]["needs"])

    def run_job(self, run: Run, job_id: str) -> None:
        tree = run.workflow.tree["jobs"][job_id]
        converted = run.workflow.jobs[job_id]
        needs = {n: {"result": run.result(n), "outputs": self.needs_outputs(run, n)} for n in converted["needs"]}
        contexts = self.contexts(run, needs=needs)
        verdict, proceed = self.tools.evaluate(converted["if"], contexts, self.job_status(run, job_id))
        if not isinstance(verdict, bool):
            # GitHub runs the job whenever the string is not empty: a multi-line or padded `if`.
            reason = f"`if` is a string ({verdict!r}), which is true whenever it is not empty: {converted['if']}"
            run.jobs[job_id] = [JobRun(job_id, job_id, job_id, "failure", reason=reason)]
            return
        base_name = tree.get("name", job_id)
        if not proceed:
            name = self.text(self.value(base_name, {**contexts, "matrix": {}, "strategy": {}}))
            run.jobs[job_id] = [JobRun(job_id, job_id, name, result="skipped", reason=f"if: {converted['if']}")]
            return
        instances: list[dict[str, Any]] = [{}]
        if "strategy" in tree and "matrix" in tree["strategy"]:
            matrix = self.value(tree["strategy"]["matrix"], contexts)
            instances = [{}]
            for key, values in matrix.items():
                if not values:
                    run.jobs[job_id] = [
                        JobRun(
                            job_id,
                            job_id,
                            job_id,
                            "failure",
                            reason=f"Matrix vector '{key}' does not contain any values",
                        )
                    ]
                    return
                instances = [{**i, key: v} for i in instances for v in values]
        previous = {j.key: j for j in run.jobs.get(job_id, [])}
        runs = []
        for matrix in instances:
            key = job_id + (f" ({', '.join(map(self.text, matrix.values()))})" if matrix else "")
            job = previous.get(key) if previous.get(key) and previous[key].result == "waiting" else None
            job = job or JobRun(key, job_id, "")
            scoped = {**contexts, "matrix": matrix, "strategy": {"job-index": instances.index(matrix)}}
            job.name = self.text(self.value(base_name, scoped)) if "name" in tree else key
            self.execute(run, job_id, job, tree, scoped)
            runs.append(job)
        run.jobs[job_id] = runs

    def needs_outputs(self, run: Run, job_id: str) -> dict[str, str]:
        merged: dict[str, str] = {}
        for job in run.jobs.get(job_id, []):
            merged.update(job.outputs)
        return merged

    # ---- one job ----

    def execute(self, run: Run, job_id: str, job: JobRun, tree: dict[str, Any], contexts: dict[str, Any]) -> None:
        world = self.world
        environment = tree.get("environment")
        if environment is not None:
            value = self.value(environment, contexts)
            job.environment = value["name"] if isinstance(value, dict) else self.text(value)
            refused = world.environment_refuses(job.environment, run)
            if refused:
                job.result, job.reason = "failure", refused
                return
            if world.needs_review(job.environment) and f"{job.key}@{run.attempt}" not in run.approvals:
                job.result, job.reason = "waiting", f"waiting for a reviewer of {job.environment}"
                return
        job.timeout_minutes = float(self.value(tree.get("timeout-minutes", DEFAULT_TIMEOUT_MINUTES), contexts))
        permissions = tree.get("permissions", run.workflow.tree.get("permissions"))
        token = world.mint_token(run, job.key, permissions)
        sandbox = actions.Sandbox.create(world, run, job, token, permissions)
        job.workspace = sandbox.workspace
        variables = world.variables(job.environment)
        secrets = {**world.secrets(job.environment), "GITHUB_TOKEN": token}
        contexts = {
            **contexts,
            "github": {**self.github_context(run, job_id, token), "workspace": str(sandbox.workspace)},
            "vars": variables,
            "secrets": secrets,
            "runner": {"os": "Linux", "arch": "X64", "temp": str(sandbox.temp)},
            "job": {"status": "success"},
        }
        env: dict[str, str] = {}
        for level in (run.workflow.tree.get("env"), tree.get("env")):
            for key, node in (level or {}).items():
                env[key] = self.text(self.value(node, {**contexts, "env": env}))
        steps_context: dict[str, Any] = {}
        failed = False
        for index, step in enumerate(tree.get("steps", [])):
            name = step.get("name") or step.get("uses") or step.get("run", "").strip()
            status = {
                "success": not failed and not run.cancelled,
                "failure": failed,
                "cancelled": run.cancelled,
                "always": True,
            }
            scoped = {**contexts, "env": {**env, **sandbox.exported}, "steps": steps_context}
            condition = run.workflow.jobs[job_id]["steps"][index]["if"]
            _, proceed = self.tools.evaluate(condition, scoped, status, str(sandbox.workspace))
            if not proceed:
                job.steps.append(StepRun(name, "skipped"))
                if "id" in step:
                    steps_context[step["id"]] = {"outcome": "skipped", "conclusion": "skipped", "outputs": {}}
                continue
            step_env = {**env, **sandbox.exported}
            for key, node in (step.get("env") or {}).items():
                step_env[key] = self.text(self.value(node, scoped, status, str(sandbox.workspace)))
            started = time.monotonic()
            outcome, output, outputs = self.step(run, job, sandbox, step, scoped, status, step_env)
            job.steps.append(StepRun(name, outcome, output, time.monotonic() - started))
            if "id" in step:
                steps_context[step["id"]] = {"outcome": outcome, "conclusion": outcome, "outputs": outputs}
            if outcome == "failure" and not step.get("continue-on-error"):
                failed = True
        sandbox.finish()
        job.summary = sandbox.summary()
        if run.cancelled:
            job.result = "cancelled"
        else:
            job.result = "failure" if failed else "success"
        scoped = {**contexts, "env": env, "steps": steps_context}
        job.outputs = {k: self.text(self.value(v, scoped)) for k, v in (tree.get("outputs") or {}).items()}
        world.job_finished(run, job)

    def step(
        self,
        run: Run,
        job: JobRun,
        sandbox: actions.Sandbox,
        step: dict[str, Any],
        contexts: dict[str, Any],
        status: dict[str, bool],
        env: dict[str, str],
    ) -> tuple[str, str, dict[str, str]]:
        if "uses" in step:
            inputs = {
                k: self.text(self.value(v, contexts, status, str(sandbox.workspace)))
                for k, v in (step.get("with") or {}).items()
            }
            try:
                outputs = actions.use(sandbox, step["uses"], inputs, env)
            except actions.ActionFailed as error:
                return "failure", str(error), {}
            return "success", f"{step['uses']} {inputs}", outputs
        script = self.text(self.value(step["run"], contexts, status, str(sandbox.workspace)))
        words = script.split()
        if len(words) == 2 and words[0] == "make" and words[1] in SUITE_TARGETS:
            outcome, output, outputs = self.shell(run, job, sandbox, f"make -n {words[1]} > /dev/null", env)
            return outcome, f"{script}: covered by this test suite (`make -n` found the target)\n{output}", outputs
        return self.shell(run, job, sandbox, script, env)

    def shell(
        self, run: Run, job: JobRun, sandbox: actions.Sandbox, script: str, env: dict[str, str]
    ) -> tuple[str, str, dict[str, str]]:
        path = sandbox.temp / f"step-{len(job.steps)}.sh"
        path.write_text(script + "\n")
        output_file = sandbox.fresh_file("output")
        environment = {**sandbox.environment(), **env, "GITHUB_OUTPUT": str(output_file)}
        log = sandbox.temp / f"step-{len(job.steps)}.log"
        with log.open("w") as handle:
            process = subprocess.Popen(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
                cwd=sandbox.workspace,
                env=environment,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, which a cancellation signals
            )
            code = self.wait(run, job, sandbox, script, process)
        output = log.read_text(errors="replace")
        sandbox.absorb()
        outputs = actions.read_outputs(output_file)
        if run.cancelled and code != 0:
            return "cancelled", output, outputs
        return ("success" if code == 0 else "failure"), output + f"\n(exit {code})", outputs

    def wait(
        self, run: Run, job: JobRun, sandbox: actions.Sandbox, script: str, process: subprocess.Popen[bytes]
    ) -> int:
        cancel = self.cancel
        watching = cancel is not None and not cancel.fired and cancel.job_id == job.job_id and cancel.step_run in script
        deadline = time.monotonic() + 600
        while True:
            code = process.poll()
            if code is not None:
                return code
            if watching and cancel is not None and cancel.when(sandbox.workspace):
                cancel.fired = True
                watching = False
                self.world.cancel_run(run)
                # The runner's cancellation: SIGINT to the step, SIGTERM if it is still there.
                os.killpg(process.pid, signal.SIGINT)
                try:
                    return process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGTERM)
                    return process.wait()
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                return process.wait()
            time.sleep(0.02)


def copy_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)

"""The rehearsal's world: a local bare repository as `origin`, the GitHub around it (settings from
README.md's set-up, events, runs), the AWS account (rehearsal_cloud.py) with the stacks the AWS
set-up creates, and the people: a maintainer who pushes and merges, a reviewer who approves.

`settle()` turns events into workflow runs and runs them until nothing is left to start, as
GitHub would; a run waiting for a reviewer stays waiting until `approve()`.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml import names
from ml.config import PROJECT_ROOT, load_config
from ml.schema import for_config as schema_for
from tests.conftest import loosest, span
from tests.workflows.rehearsal import github_state as gh
from tests.workflows.rehearsal import setup_guide
from tests.workflows.rehearsal.runner import EMPTY_TREE, PULL_REQUEST_TYPES, ZERO, JobRun, Run, Runner
from tests.workflows.rehearsal.tools import WorkflowTools

HERE = Path(__file__).resolve().parent
STACKS = ("dev", "staging", "prod")
MAINTAINER = "maintainer"
MERGE_BUTTON = "merge-button"  # what the origin's hook lets update a protected branch
APP_SLUG = "promotions"
FIRST_ROWS = 420  # of the example's 569 rows: the rest arrive later, a part at a time
EXAMPLE_ROWS = 569  # the counts the tests ask for are of this data set; another one's are scaled to its size


def project_files(root: Path, scratch: Path) -> list[str]:
    """The files the README's first push sends: what `git add .` takes in the project.

    The project's own repository says so. A project inside another repository (a monorepo, or a
    folder that repository ignores) is listed against an empty repository of its own at
    `scratch`, by the project's own ignore rules, as its first push from its own clone would be.
    """
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True)
    own = top.returncode == 0 and Path(top.stdout.strip()).resolve() == root.resolve()
    if not own:
        subprocess.run(["git", "init", "--quiet", "--bare", str(scratch)], check=True, capture_output=True)
    where = [] if own else [f"--git-dir={scratch}", f"--work-tree={root}"]
    listed = subprocess.run(
        ["git", *where, "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted(path for path in listed if (root / path).is_file())


class World:
    def __init__(
        self,
        root: Path,
        tools: WorkflowTools,
        *,
        reviewers_available: bool = True,
        variables: dict[str, str] | None = None,
    ) -> None:
        self.root, self.tools, self.project = root, tools, PROJECT_ROOT
        config = load_config()
        self.config = config
        self.repository = config.project.github_repository
        self.guide = setup_guide.read(PROJECT_ROOT / "README.md")
        # Required reviewers exist for public repositories, and private ones on GitHub Enterprise.
        self.reviewers_available = reviewers_available
        self.extra_variables = variables or {}
        self.bin = HERE / "bin"
        self.venv = Path(os.environ.get("UV_PROJECT_ENVIRONMENT") or PROJECT_ROOT / ".venv").resolve()
        self.uv = Path(shutil.which("uv") or os.environ.get("UV") or PROJECT_ROOT / ".tools/bin/uv").resolve()
        self.origin = root / "origin.git"
        self.cloud = root / "cloud"
        self.state = root / "github.json"
        self.laptop = root / "laptop"
        self.runs: list[Run] = []
        self._data_cursor = 1  # the next row of the data set to arrive (after the header)
        self.run_ids = itertools.count(1000)
        self.token_ids = itertools.count(1)
        self.action_log: list[tuple[int, str, str, dict[str, str]]] = []
        self.tool_versions: list[tuple[int, str, str, str]] = []
        self.suppressed: list[dict[str, Any]] = []  # events that started no workflow, and why
        self.app: dict[str, Any] = {
            "slug": APP_SLUG,
            "client_id": "Iv23rehearsal",
            "private_key": "-----BEGIN RSA PRIVATE KEY-----rehearsal-----END RSA PRIVATE KEY-----",
            "permissions": self.guide.app_permissions,
        }
        self.runner = Runner(self)
        # The environment's groups, synced once here rather than by two jobs at the same moment.
        stamps = [str(self.venv / f".synced-{group}") for group in ("aws", "infra")]
        synced = subprocess.run(
            ["make", "--no-print-directory", *stamps], cwd=PROJECT_ROOT, capture_output=True, text=True
        )
        assert synced.returncode == 0, synced.stdout + synced.stderr
        self.mlflow_url, self._mlflow = self._start_mlflow()
        self._create_origin()
        self._create_cloud()
        settings = {"actions_can_create_prs": self.guide.actions_can_create_prs, "protected_branches": []}
        self.state.write_text(json.dumps(gh.new_state(self.repository, settings)))

    # ---- set-up ----

    def _git(self, *args: str, cwd: Path | None = None, actor: str | None = None, check: bool = True) -> str:
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", **self.sandbox_variables()}
        env.pop("GH_TOKEN", None)
        if actor:
            env["REHEARSAL_ACTOR"] = actor
        result = subprocess.run(["git", *args], cwd=cwd or self.root, env=env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout.strip()

    def _create_origin(self) -> None:
        self._git("init", "--quiet", "--bare", "--initial-branch=main", str(self.origin))
        self._git("config", "uploadpack.allowAnySHA1InWant", "true", cwd=self.origin)
        for hook in ("pre-receive", "post-receive"):
            path = self.origin / "hooks" / hook
            path.write_text(f'#!/bin/sh\nexec python3 "{HERE / "origin_hooks.py"}" {hook}\n')
            path.chmod(0o755)

    def _create_cloud(self) -> None:
        """The AWS set-up's result: the stacks exist, created by an administrator, no model yet."""
        state = self.cloud / "pulumi"
        state.mkdir(parents=True)
        (state / "calls.jsonl").touch()
        prefix = self.config.project.resource_prefix
        for stack in STACKS:
            account = self.config.project.account(stack)  # per-environment layout: each stack's own account
            role = f"arn:aws:iam::{account}:role/"
            outputs = {
                "region": self.config.project.aws_region,
                "data_bucket": names.bucket_name(prefix, stack, "data", account),
                "artifacts_bucket": names.bucket_name(prefix, stack, "artifacts", account),
                "kms_key_arn": f"arn:aws:kms:{self.config.project.aws_region}:{account}:key/{stack}",
                "execution_role_arn": role + names.execution_role_name(prefix, stack),
                "deploy_role_arn": role + names.deploy_role_name(prefix, stack),
                "preview_role_arn": role + names.preview_role_name(prefix, stack),
                "model_package_group": names.model_package_group_name(prefix, "dev"),
            }
            config = self._stack_config(PROJECT_ROOT / "infra" / f"Pulumi.{stack}.yaml")
            (state / f"{stack}.json").write_text(json.dumps({"config": config, "outputs": outputs, "history": []}))

    def _give_dispatch_token(self, path: Path) -> None:
        from ruamel.yaml import YAML

        yaml = YAML()
        document = yaml.load(path.read_text())
        prefix = self.config.project.resource_prefix
        config = document["config"]
        if config.get(f"{prefix}:endpoint_type") == "real-time" and int(
            config.get(f"{prefix}:data_capture_percent", 0)
        ):
            # What `pulumi config set --secret github_dispatch_token <token>` writes (encrypted by the stack's key).
            config[f"{prefix}:github_dispatch_token"] = {"secure": "v1:rehearsal-encrypted-token"}
            with path.open("w") as handle:
                yaml.dump(document, handle)

    @staticmethod
    def _stack_config(path: Path) -> dict[str, str]:
        import yaml

        return {k: str(v) for k, v in (yaml.safe_load(path.read_text()).get("config") or {}).items()}

    def role_trust(self, arn: str) -> str:
        """The OIDC subject each role trusts (infra/components/roles.py): its GitHub environment."""
        prefix = self.config.project.resource_prefix
        for stack in STACKS:
            environment = names.github_environment(stack)
            if arn.endswith(f"/{names.deploy_role_name(prefix, stack)}"):
                return f"repo:{self.repository}:environment:{environment}"
            if arn.endswith(f"/{names.preview_role_name(prefix, stack)}"):
                return f"repo:{self.repository}:environment:{environment}-preview"
        return "(no such role)"

    def stack_outputs(self, stack: str) -> dict[str, str]:
        outputs: dict[str, str] = json.loads((self.cloud / "pulumi" / f"{stack}.json").read_text())["outputs"]
        return outputs

    def variables(self, environment: str | None) -> dict[str, str]:
        values = {"PROMOTION_APP_CLIENT_ID": self.app["client_id"], **self.extra_variables}
        values = {k: v for k, v in values.items() if k in self.guide.repository_variables or k in self.extra_variables}
        env = self.guide.environments.get(environment or "")
        if env is not None:
            outputs = self.stack_outputs(env.stack)
            values[env.role_variable] = outputs[env.role_output]
            # The state bucket of the environment's account (one per account: README, AWS set-up step 3).
            project = self.config.project
            bucket = names.state_bucket_name(project.resource_prefix, project.account(env.stack))
            common = {
                "AWS_REGION": project.aws_region,
                "PULUMI_BACKEND_URL": f"s3://{bucket}?region={project.aws_region}",
            }
            values.update({k: common[k] for k in self.guide.common_variables})
        return values

    def secrets(self, environment: str | None) -> dict[str, str]:
        known = {"PROMOTION_APP_PRIVATE_KEY": self.app["private_key"]}
        return {k: v for k, v in known.items() if k in self.guide.repository_secrets}

    def environment_refuses(self, name: str, run: Run) -> str:
        env = self.guide.environments.get(name)
        if env is None or env.branches is None:
            return ""  # an environment nobody created is created on first use, without rules
        if run.ref not in {f"refs/heads/{b}" for b in env.branches}:
            return f'Branch "{run.ref}" is not allowed to deploy to {name} due to environment protection rules.'
        return ""

    def needs_review(self, name: str) -> bool:
        env = self.guide.environments.get(name)
        return bool(env and env.reviewers and self.reviewers_available)

    def _start_mlflow(self) -> tuple[str, subprocess.Popen[bytes]]:
        """A local MLflow server standing in for dev's MLflow App: `make track` in pipeline.yml logs to it
        (MLOPS_TRACKING_URI) with the same client calls it makes to the app, minus the plugin's signing."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        store = self.root / "mlflow"
        store.mkdir()
        process = subprocess.Popen(
            [str(self.venv / "bin" / "python"), "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
             "--artifacts-destination", str(store / "artifacts")],
            stdout=(store / "server.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2):
                return url, process
            time.sleep(0.2)
        process.kill()
        raise AssertionError(f"the MLflow stand-in did not start: {(store / 'server.log').read_text()[-2000:]}")

    def close(self) -> None:
        """Stop the MLflow stand-in's whole group: the server, uvicorn, its job runner and their huey
        consumers. A busy machine can take more than the grace to stop them all (it once left the
        module's teardown failing, and the group running after the session), so then they are killed."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._mlflow.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._mlflow.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._mlflow.pid, signal.SIGKILL)  # whatever of the group is left
        self._mlflow.wait(timeout=30)

    def sandbox_variables(self) -> dict[str, str]:
        return {
            "MLOPS_TRACKING_URI": self.mlflow_url,
            gh.STATE_VARIABLE: str(self.state),
            "REHEARSAL_ORIGIN": str(self.origin),
            "REHEARSAL_CLOUD": str(self.cloud),
            "REHEARSAL_PYTHON": str(self.venv / "bin" / "python"),
            "PYTHONPATH": str(HERE / "sandbox"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv"),
        }

    # ---- tokens ----

    def _token(self, info: dict[str, Any]) -> str:
        token = f"ghs_rehearsal{next(self.token_ids):04d}"
        with gh.locked(self.state) as state:
            state["tokens"][token] = info
        return token

    def mint_token(self, run: Run, job: str, permissions: Any) -> str:
        granted = gh.expand_permissions(permissions)
        return self._token(
            {"kind": gh.UNTRIGGERING, "login": "github-actions[bot]", "permissions": granted, "job": job}
        )

    def mint_app_token(self, run: Run, job: str, permissions: dict[str, str]) -> str:
        return self._token({"kind": "app", "login": f"{APP_SLUG}[bot]", "permissions": permissions, "job": job})

    def revoke(self, token: str) -> None:
        with gh.locked(self.state) as state:
            state["tokens"][token]["revoked"] = True

    # ---- people ----

    def tracked_files(self) -> list[str]:
        return project_files(PROJECT_ROOT, self.root / "listing.git")

    def data_prefix(self) -> Path:
        """Where new training data lands, outside git: [data].source names it (a prefix of CSV parts)."""
        return self.cloud / "data-source"

    def add_data(self, rows: int) -> None:
        """Labelled rows that arrived since the last training: the data set's next rows, as a new part.

        `rows` counts rows of the example data set; a project switched to other data (README, "your
        data") gets the same share of its own rows, in arrival order (below)."""
        lines = self._arrival_order()
        parts = sorted(self.data_prefix().glob("part-*.csv"))
        start = self._data_cursor
        self._data_cursor += max(2, rows * (len(lines) - 1) // EXAMPLE_ROWS)
        assert self._data_cursor < len(lines), "the rehearsal ran out of new rows"
        (self.data_prefix() / f"part-{len(parts) + 1}.csv").write_text(
            "\n".join([lines[0], *lines[start : self._data_cursor]]) + "\n"
        )

    def _arrival_order(self) -> list[str]:
        """The data set's lines (header first) in the order labelled rows arrive.

        Real labels arrive mixed over time; a file is often sorted by its label (scikit-learn's wine
        is), and a part of it would then lack classes that the split must stratify. For a
        classification task every class's rows are therefore spread evenly over the file, each class
        keeping its own file order."""
        lines = (PROJECT_ROOT / self.config.data.source).read_text().splitlines()
        schema = schema_for(self.config)
        if not schema.task.is_classification:
            return lines
        header, rows = lines[0], lines[1:]
        column = next(csv.reader([header])).index(schema.label)
        labels = [next(csv.reader([row]))[column] for row in rows]
        counts = Counter(labels)
        seen: Counter[str] = Counter()
        keys = []
        for label in labels:  # the row's place within its class, as a share of the class
            keys.append((seen[label] + 0.5) / counts[label])
            seen[label] += 1
        order = sorted(range(len(rows)), key=keys.__getitem__)  # stable: ties keep file order
        return [header, *(rows[index] for index in order)]

    def _accept_every_model(self, text: str) -> str:
        """mlops.toml's gate, opened so that every retrain is registered and promoted.

        The rehearsal checks the workflows' sequence, not the gate's judgement (tests/test_gate.py and
        the end-to-end tests do). Whether a retrain on a few more rows beats the champion, or an
        absolute threshold, depends on how a data set's rows happen to split (wine's 36 test rows move
        a metric by 0.028 a row), and the sequence must not."""
        task = schema_for(self.config).task
        gate = self.config.gate
        lines, section = [], ""
        for line in text.splitlines():
            stripped = line.strip()
            key = stripped.split("=", 1)[0].strip() if "=" in stripped and not stripped.startswith("#") else ""
            if stripped.startswith("["):
                section = stripped
            elif section == "[gate]" and key == "max_regression":
                line = "max_regression = 1e9"
            elif section == "[gate]" and key == "min_gain_over_simple":
                line = f"min_gain_over_simple = {-span(task, gate.primary_metric)}"
            elif section == "[gate.thresholds]" and key:
                line = f"{key} = {loosest(task, key)}"
            elif section.startswith("[gate.slices.") and key == "thresholds":
                line = "thresholds = {}"
            elif section == "[gate.fairness]" and key == "max_disparity":
                line = f"max_disparity = {min([1e12, *(span(task, m) for m in gate.fairness.metrics)])}"
            lines.append(line)
        return "\n".join(lines) + "\n"

    def first_push(self) -> str:
        """README step "Push the project", before main is protected."""
        self.laptop.mkdir()
        for path in self.tracked_files():
            target = self.laptop / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / path, target)
        # The project's data, as the first part of a prefix that new labelled data is added to.
        config = self.laptop / "mlops.toml"
        source = self.config.data.source
        self.data_prefix().mkdir()
        self.add_data(FIRST_ROWS)
        text = config.read_text().replace(f'source = "{source}"', f'source = "{self.data_prefix()}"')
        config.write_text(self._accept_every_model(text))
        for stack in STACKS:  # README's AWS set-up, step 5: every monitored stack gets its retrain token
            self._give_dispatch_token(self.laptop / "infra" / f"Pulumi.{stack}.yaml")
        self._git("init", "--quiet", "--initial-branch=main", cwd=self.laptop)
        self._git("config", "user.name", "Maintainer", cwd=self.laptop)
        self._git("config", "user.email", "maintainer@example.com", cwd=self.laptop)
        self._git("add", ".", cwd=self.laptop)
        self._git("commit", "--quiet", "-m", "Initial project from the MLOps template", cwd=self.laptop)
        self._git("remote", "add", "origin", str(self.origin), cwd=self.laptop)
        self._git("push", "--quiet", "origin", "main", cwd=self.laptop, actor=MAINTAINER)
        with gh.locked(self.state) as state:  # README step "Protect main", after the first push
            state["settings"]["protected_branches"] = ["main"]
        return self.head("main")

    def head(self, branch: str) -> str:
        return self._git("rev-parse", f"refs/heads/{branch}", cwd=self.origin)

    def show(self, ref: str, path: str) -> str:
        return self._git("show", f"{ref}:{path}", cwd=self.origin)

    def propose(self, branch: str, edit: Callable[[Path], None], message: str) -> int:
        """A person's change, as a pull request from a branch of this repository."""
        self._git("fetch", "--quiet", "origin", "main", cwd=self.laptop)
        self._git("checkout", "--quiet", "-B", branch, "origin/main", cwd=self.laptop)
        edit(self.laptop)
        self._git("commit", "--quiet", "-am", message, cwd=self.laptop)
        self._git("push", "--quiet", "--force", "origin", branch, cwd=self.laptop, actor=MAINTAINER)
        return self.open_pull(branch, message, MAINTAINER)

    def open_pull(self, branch: str, title: str, login: str) -> int:
        actor = {"kind": "user", "login": login, "permissions": {}}
        with gh.locked(self.state) as state:
            pull: dict[str, Any] = {
                "number": len(state["pulls"]) + 1,
                "head": branch,
                "base": "main",
                "title": title,
                "body": "",
                "state": "open",
                "author": login,
                "head_sha": self.head(branch),
                "base_sha": self.head("main"),
                "comments": [],
            }
            state["pulls"].append(pull)
            gh.emit(state, "pull_request", gh.pull_payload(state, pull, "opened"), actor)
        return int(pull["number"])

    def pull(self, number: int) -> dict[str, Any]:
        state = gh.read(self.state)
        return next(p for p in state["pulls"] if p["number"] == number)

    def pulls(self, state_filter: str = "open") -> list[dict[str, Any]]:
        return [p for p in gh.read(self.state)["pulls"] if p["state"] == state_filter]

    def checks(self, sha: str) -> dict[str, str]:
        checks: dict[str, str] = gh.read(self.state)["check_runs"].get(sha, {})
        return checks

    def merge(self, number: int) -> str:
        """The merge button: refused until every status check branch protection requires has passed."""
        pull = self.pull(number)
        assert pull["state"] == "open", f"#{number} is {pull['state']}"
        checks = self.checks(pull["head_sha"])
        missing = [c for c in self.guide.required_checks if checks.get(c) != "success"]
        if missing:
            raise MergeBlocked(
                f"#{number} cannot be merged: required checks {missing} have not passed on {pull['head_sha'][:8]} "
                f"(reported: {checks or 'none'})"
            )
        work = self.root / "merge"
        if work.exists():
            shutil.rmtree(work)
        self._git("clone", "--quiet", str(self.origin), str(work))
        self._git("config", "user.name", "GitHub", cwd=work)
        self._git("config", "user.email", "noreply@github.com", cwd=work)
        self._git("merge", "--quiet", "--no-ff", f"origin/{pull['head']}", "-m",
                  f"Merge pull request #{number} from {self.repository.split('/')[0]}/{pull['head']}", cwd=work)  # fmt: skip
        self._git("push", "--quiet", "origin", "main", cwd=work, actor=MERGE_BUTTON)
        merged = self._git("rev-parse", "HEAD", cwd=work)
        with gh.locked(self.state) as state:
            record = next(p for p in state["pulls"] if p["number"] == number)
            record["state"] = "merged"
            record["merge_sha"] = merged
        return merged

    def revert(self, number: int) -> int:
        """The pull request's Revert button: a branch with the revert of its merge commit, as a pull request."""
        pull = self.pull(number)
        branch = f"revert-{number}-{pull['head']}"
        self._git("fetch", "--quiet", "origin", "main", cwd=self.laptop)
        self._git("checkout", "--quiet", "-B", branch, "origin/main", cwd=self.laptop)
        self._git("revert", "--no-edit", "-m", "1", pull["merge_sha"], cwd=self.laptop)
        self._git("push", "--quiet", "origin", branch, cwd=self.laptop, actor=MAINTAINER)
        return self.open_pull(branch, f'Revert "{pull["title"]}"', MAINTAINER)

    def repository_dispatch(self, event_type: str) -> None:
        """What monitoring's EventBridge API destination sends, with its fine-grained token."""
        with gh.locked(self.state) as state:
            actor = {"kind": "user", "login": "monitoring", "permissions": {}}
            gh.emit(state, "repository_dispatch", {"action": event_type, "client_payload": {}}, actor)

    def schedule(self) -> None:
        with gh.locked(self.state) as state:
            gh.emit(state, "schedule", {"schedule": "weekly"}, {"kind": "github", "login": "github"})

    def dispatch(self, workflow: str, inputs: dict[str, str]) -> None:
        """A person runs a workflow by hand (Actions > Run workflow)."""
        with gh.locked(self.state) as state:
            actor = {"kind": "user", "login": MAINTAINER, "permissions": {}}
            payload = {"workflow": workflow, "ref": "refs/heads/main", "inputs": inputs}
            gh.emit(state, "workflow_dispatch", payload, actor)

    def fail_pulumi_up(self, stack: str, message: str | None) -> None:
        marker = self.cloud / "pulumi" / f"fail-up-{stack}"
        if message is None:
            marker.unlink(missing_ok=True)
        else:
            marker.write_text(message)

    def hold_jobs(self, hold: bool) -> None:
        """Keep cloud jobs in progress until their client is interrupted, as a long SageMaker job is."""
        marker = self.cloud / "hold-jobs"
        if hold:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)

    def job_in_progress(self) -> bool:
        return any(job["status"] == "InProgress" for job in self.cloud_jobs().values())

    def approve(self, run: Run, job_key: str) -> None:
        """A required reviewer approves the job waiting in its environment."""
        job = next(j for runs in run.jobs.values() for j in runs if j.key == job_key)
        assert job.result == "waiting", f"{job_key} is {job.result}, not waiting for a review"
        run.approvals.add(f"{job_key}@{run.attempt}")
        self.runner.resume(run)
        self.settle()

    def rerun(self, run: Run, job_id: str) -> Run:
        """ "Re-run this job": the job and every job that needs it, on the run's own commit and event."""
        chosen = {job_id}
        changed = True
        while changed:
            changed = False
            for other, spec in run.workflow.jobs.items():
                if other not in chosen and chosen & set(spec["needs"]):
                    chosen.add(other)
                    changed = True
        run.attempt += 1
        run.cancelled = False
        run.rerun = chosen
        for other in chosen:
            run.jobs.pop(other, None)
        self.runner.start(run)
        self.settle()
        return run

    def cancel_run(self, run: Run) -> None:
        run.cancelled = True

    # ---- GitHub's side ----

    def settle(self) -> None:
        """Start the runs events cause, and run them, until nothing is left to start."""
        for _ in range(200):
            with gh.locked(self.state) as state:
                events, state["events"] = state["events"], []
            for event in events:
                self._trigger(event)
            queued = [r for r in self.runs if r.status == "queued" and not self._group_busy(r)]
            if not events and not queued:
                return
            for run in queued:
                if run.status == "queued" and not self._group_busy(run):
                    self.runner.start(run)
        raise AssertionError("the rehearsal did not settle: workflows keep starting workflows")

    def _group_busy(self, run: Run) -> bool:
        return run.group is not None and any(
            other.group == run.group and other.status in ("in_progress", "waiting")
            for other in self.runs
            if other is not run
        )

    def _trigger(self, event: dict[str, Any]) -> None:
        if not event["starts_workflows"]:
            self.suppressed.append(event)
            return
        name, payload = event["name"], event["payload"]
        sha, ref = self._event_commit(name, payload)
        if sha is None:
            return
        for file in self._git("ls-tree", "--name-only", f"{sha}:.github/workflows", cwd=self.origin).splitlines():
            workflow = self._workflow(sha, file)
            if self._matches(workflow.tree.get("on"), name, payload, file):
                run = Run(next(self.run_ids), workflow, file, name, payload, sha, ref, event["actor"])
                self._queue(run)

    def _event_commit(self, name: str, payload: dict[str, Any]) -> tuple[str | None, str]:
        if name == "push":
            return (None if payload["deleted"] else payload["after"]), payload["ref"]
        if name == "pull_request":
            if payload["action"] not in PULL_REQUEST_TYPES:
                return None, ""
            number = payload["number"]
            return self._test_merge(number, payload), f"refs/pull/{number}/merge"
        if name == "workflow_dispatch":
            return self.head(payload["ref"].removeprefix("refs/heads/")), payload["ref"]
        return self.head("main"), "refs/heads/main"

    def _test_merge(self, number: int, payload: dict[str, Any]) -> str:
        """refs/pull/<n>/merge: the head merged into the base, which a pull_request run checks out."""
        base, head = self.head(payload["pull_request"]["base"]["ref"]), payload["pull_request"]["head"]["sha"]
        tree = self._git("merge-tree", "--write-tree", base, head, cwd=self.origin).splitlines()[0]
        env = {"GIT_AUTHOR_NAME": "GitHub", "GIT_AUTHOR_EMAIL": "noreply@github.com"}
        merged = subprocess.run(
            ["git", "commit-tree", tree, "-p", base, "-p", head, "-m", f"Merge {head} into {base}"],
            cwd=self.origin,
            env={**os.environ, **env, "GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self._git("update-ref", f"refs/pull/{number}/merge", merged, cwd=self.origin)
        self._git("update-ref", f"refs/pull/{number}/head", head, cwd=self.origin)
        return merged

    def _workflow(self, sha: str, file: str) -> Any:
        blob = self._git("rev-parse", f"{sha}:.github/workflows/{file}", cwd=self.origin)
        path = self.root / "workflows" / blob / file
        if not path.exists():
            path.parent.mkdir(parents=True)
            path.write_text(self.show(sha, f".github/workflows/{file}") + "\n")
        return self.tools.load(path)

    def _changed(self, before: str, after: str) -> list[str]:
        return self._git("diff", "--name-only", before, after, cwd=self.origin).splitlines()

    def _matches(self, on: Any, name: str, payload: dict[str, Any], file: str) -> bool:
        triggers = {on: None} if isinstance(on, str) else dict.fromkeys(on) if isinstance(on, list) else dict(on)
        if name not in triggers:
            return False
        spec = triggers[name] or {}
        if name == "push":
            if "branches" in spec and not self.tools.matches(
                spec["branches"], [payload["ref"].removeprefix("refs/heads/")]
            ):
                return False
            if "paths" in spec:
                before = EMPTY_TREE if payload["before"] == ZERO else payload["before"]
                return self.tools.matches(spec["paths"], self._changed(before, payload["after"]))
            return True
        if name == "pull_request":
            pull = payload["pull_request"]
            if payload["action"] not in spec.get("types", PULL_REQUEST_TYPES):
                return False
            if "branches" in spec and not self.tools.matches(spec["branches"], [pull["base"]["ref"]]):
                return False
            if "paths" in spec:
                base = self._git("merge-base", self.head(pull["base"]["ref"]), pull["head"]["sha"], cwd=self.origin)
                return self.tools.matches(spec["paths"], self._changed(base, pull["head"]["sha"]))
            return True
        if name == "workflow_dispatch":
            return bool(payload["workflow"] == file)
        if name == "repository_dispatch":
            return "types" not in spec or payload["action"] in spec["types"]
        return True

    def _queue(self, run: Run) -> None:
        concurrency = run.workflow.tree.get("concurrency")
        if concurrency is not None:
            value = self.runner.value(concurrency, self.runner.contexts(run))
            run.group = value["group"] if isinstance(value, dict) else self.runner.text(value)
            cancel = bool(value.get("cancel-in-progress")) if isinstance(value, dict) else False
            for other in self.runs:
                if other.group == run.group and other.status == "queued":
                    other.status, other.cancelled = "completed", True  # a newer pending run replaces it
                if cancel and other.group == run.group and other.status in ("in_progress", "waiting"):
                    other.status, other.cancelled = "completed", True
        self.runs.append(run)

    def run_completed(self, run: Run) -> None:
        """A run's jobs are done: nothing more to record here (checks are recorded per job)."""

    def job_finished(self, run: Run, job: JobRun) -> None:
        if run.event != "pull_request":
            return
        head = run.payload["pull_request"]["head"]["sha"]
        with gh.locked(self.state) as state:
            state["check_runs"].setdefault(head, {})[job.name] = job.result

    def artifact_dir(self, run: Run, name: str) -> Path:
        return self.root / "artifacts" / str(run.id) / name

    # ---- what the tests read ----

    def runs_of(self, file: str) -> list[Run]:
        return [r for r in self.runs if r.file == file]

    def last_run(self, file: str) -> Run:
        runs = self.runs_of(file)
        assert runs, f"{file} never ran; suppressed events: {[e['name'] for e in self.suppressed]}"
        return runs[-1]

    def pulumi_calls(self) -> list[dict[str, Any]]:
        lines = (self.cloud / "pulumi" / "calls.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def applied(self, stack: str) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = json.loads((self.cloud / "pulumi" / f"{stack}.json").read_text())["history"]
        return history

    def applied_version(self, stack: str) -> str:
        history = self.applied(stack)
        config = history[-1]["config"] if history else {}
        return next((v for k, v in config.items() if k.endswith(":model_version")), "")

    def cloud_jobs(self) -> dict[str, Any]:
        path = self.cloud / "jobs.json"
        jobs: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        return jobs


class MergeBlocked(AssertionError):
    pass

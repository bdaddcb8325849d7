"""The runner-like sandbox of a job, and the actions the workflows use, as their own sources say they
behave (each function cites what it follows). An action the rehearsal does not know fails the step.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.workflows.rehearsal import github_state

if TYPE_CHECKING:
    from tests.workflows.rehearsal.runner import JobRun, Run
    from tests.workflows.rehearsal.world import World

PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+)(/[\w./-]+)?@(?P<ref>[0-9a-f]{40})$")
SYSTEM_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]


class ActionFailed(Exception):
    pass


@dataclass
class Sandbox:
    world: World
    run: Run
    job: JobRun
    token: str
    permissions: Any
    root: Path
    exported: dict[str, str] = field(default_factory=dict)  # what steps wrote to GITHUB_ENV
    path: list[str] = field(default_factory=list)  # what steps wrote to GITHUB_PATH, newest first
    tokens: list[str] = field(default_factory=list)  # tokens to revoke when the job ends
    files: int = 0

    @classmethod
    def create(cls, world: World, run: Run, job: JobRun, token: str, permissions: Any) -> Sandbox:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", job.key)
        root = world.root / "runners" / f"{run.id}-{run.attempt}-{slug}"
        if root.exists():
            shutil.rmtree(root)
        for part in ("home", "temp", "work", "files"):
            (root / part).mkdir(parents=True)
        sandbox = cls(world, run, job, token, permissions, root)
        sandbox.workspace.mkdir(parents=True)
        (root / "files" / "event.json").write_text(__import__("json").dumps(run.payload))
        for name in ("env", "path", "summary"):
            (root / "files" / name).touch()
        sandbox.tokens.append(token)
        return sandbox

    @property
    def workspace(self) -> Path:
        return self.root / "work" / self.world.repository.split("/")[1]

    @property
    def temp(self) -> Path:
        return self.root / "temp"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def fresh_file(self, kind: str) -> Path:
        self.files += 1
        path = self.root / "files" / f"{kind}-{self.files}"
        path.touch()
        return path

    def granted(self, scope: str) -> str:
        return github_state.expand_permissions(self.permissions).get(scope, "none")

    def environment(self) -> dict[str, str]:
        """The process environment of every step: nothing of this machine's but its tools."""
        world, run = self.world, self.run
        tools = {str(Path(found).parent) for name in ("node", "git", "make", "bash") if (found := shutil.which(name))}
        base = [
            *SYSTEM_PATH,
            *sorted(t for t in tools if t not in SYSTEM_PATH and not t.startswith(str(world.project))),
        ]
        pull = run.payload.get("pull_request", {})
        return {
            "PATH": os.pathsep.join([*self.path, str(world.bin), *base]),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKFLOW": run.name,
            "GITHUB_RUN_ID": str(run.id),
            "GITHUB_RUN_NUMBER": str(run.id),
            "GITHUB_RUN_ATTEMPT": str(run.attempt),
            "GITHUB_JOB": self.job.job_id,
            "GITHUB_ACTOR": run.actor.get("login", ""),
            "GITHUB_REPOSITORY": world.repository,
            "GITHUB_REPOSITORY_OWNER": world.repository.split("/")[0],
            "GITHUB_EVENT_NAME": run.event,
            "GITHUB_EVENT_PATH": str(self.root / "files" / "event.json"),
            "GITHUB_SHA": run.sha,
            "GITHUB_REF": run.ref,
            "GITHUB_REF_NAME": run.ref.removeprefix("refs/heads/").removeprefix("refs/"),
            "GITHUB_HEAD_REF": pull.get("head", {}).get("ref", ""),
            "GITHUB_BASE_REF": pull.get("base", {}).get("ref", ""),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_ENV": str(self.root / "files" / "env"),
            "GITHUB_PATH": str(self.root / "files" / "path"),
            "GITHUB_STEP_SUMMARY": str(self.root / "files" / "summary"),
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": "https://api.github.com",
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            "RUNNER_TEMP": str(self.temp),
            **world.sandbox_variables(),
        }

    def absorb(self) -> None:
        """GITHUB_ENV and GITHUB_PATH take effect for the steps after the one that wrote them."""
        env_file, path_file = self.root / "files" / "env", self.root / "files" / "path"
        self.exported.update(read_outputs(env_file))
        self.path = [line for line in reversed(path_file.read_text().splitlines()) if line] + self.path
        env_file.write_text("")
        path_file.write_text("")

    def export(self, **values: str) -> None:
        self.exported.update(values)

    def summary(self) -> str:
        return (self.root / "files" / "summary").read_text()

    def finish(self) -> None:
        for token in self.tokens:
            self.world.revoke(token)

    def git(self, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run(
            ["git", *args], cwd=cwd or self.workspace, env=self.environment(), capture_output=True, text=True
        )
        if result.returncode != 0:
            raise ActionFailed(f"git {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout.strip()


def read_outputs(path: Path) -> dict[str, str]:
    """`name=value` lines and `name<<DELIMITER` blocks, as the runner reads GITHUB_OUTPUT and GITHUB_ENV."""
    values: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            index += 1
            while lines[index] != delimiter:
                block.append(lines[index])
                index += 1
            values[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        index += 1
    return values


def use(sandbox: Sandbox, uses: str, inputs: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    match = PINNED.match(uses)
    if match is None:
        raise ActionFailed(f"{uses}: the project pins every action to a full commit SHA")
    action = match.group("action")
    handler = HANDLERS.get(action)
    if handler is None:
        raise ActionFailed(f"{action}: not an action the rehearsal knows")
    sandbox.world.action_log.append((sandbox.run.id, sandbox.job.key, action, inputs))
    return handler(sandbox, inputs, env)


def checkout(sandbox: Sandbox, inputs: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """actions/checkout v7 (src/input-helper.ts, ref-helper.ts, git-source-provider.ts): the event's ref
    and SHA unless `ref` is given; depth 1 unless fetch-depth: 0, which fetches every branch and tag;
    a branch is checked out with `-B <branch> refs/remotes/origin/<branch>`, anything else detached."""
    if inputs.get("persist-credentials", "true") != "false":
        raise ActionFailed("the rehearsal models persist-credentials: false only (the project's rule)")
    run = sandbox.run
    ref, commit = inputs.get("ref", ""), ""
    if not ref:
        ref, commit = run.ref, run.sha
    elif re.fullmatch(r"[0-9a-fA-F]{40}", ref):
        ref, commit = "", ref
    depth = int(inputs.get("fetch-depth", "1"))
    git = sandbox.git
    git("init", "--quiet")
    git("remote", "add", "origin", f"file://{sandbox.world.origin}")
    fetch = ["-c", "protocol.version=2", "fetch", "--no-tags", "--prune", "--no-recurse-submodules", "--quiet"]
    if depth <= 0:
        specs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
        if ref.startswith("refs/pull/"):
            specs.append(f"+{commit or ref}:refs/remotes/pull/{ref.removeprefix('refs/pull/')}")
        git(*fetch, "origin", *specs)
    else:
        git(*fetch, f"--depth={depth}", "origin", *refspec(ref, commit))
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        if commit and git("rev-parse", f"refs/remotes/origin/{branch}") != commit:
            git(*fetch, "origin", f"+{commit}:refs/remotes/origin/{branch}")
        git("checkout", "--quiet", "--force", "-B", branch, f"refs/remotes/origin/{branch}")
    elif ref.startswith("refs/pull/"):
        git("checkout", "--quiet", "--force", f"refs/remotes/pull/{ref.removeprefix('refs/pull/')}")
    elif commit:
        git("checkout", "--quiet", "--force", commit)
    else:
        git("checkout", "--quiet", "--force", "-B", ref, f"refs/remotes/origin/{ref}")
    return {"ref": ref, "commit": git("rev-parse", "HEAD")}


def refspec(ref: str, commit: str) -> list[str]:
    if commit and ref.startswith("refs/heads/"):
        return [f"+{commit}:refs/remotes/origin/{ref.removeprefix('refs/heads/')}"]
    if commit and ref.startswith("refs/pull/"):
        return [f"+{commit}:refs/remotes/pull/{ref.removeprefix('refs/pull/')}"]
    if commit:
        return [commit]
    return [f"+refs/heads/{ref}*:refs/remotes/origin/{ref}*", f"+refs/tags/{ref}*:refs/tags/{ref}*"]


def setup_uv(sandbox: Sandbox, inputs: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """astral-sh/setup-uv v10 (README, "Install a required-version or latest"): `version`, else
    `version-file`, else uv.toml's or pyproject.toml's required-version, else the latest release."""
    version = inputs.get("version", "")
    source = inputs.get("version-file", "")
    if not version and source:
        version = uv_version_from(sandbox.workspace / source)
    if not version:
        for candidate in ("uv.toml", "pyproject.toml"):
            if (sandbox.workspace / candidate).is_file():
                version = uv_version_from(sandbox.workspace / candidate)
                if version:
                    break
    version = version or "latest"
    sandbox.world.tool_versions.append((sandbox.run.id, sandbox.job.key, "uv", version))
    bin_dir = sandbox.temp / "uv-bin"
    bin_dir.mkdir()
    (bin_dir / "uv").symlink_to(sandbox.world.uv)
    sandbox.path.insert(0, str(bin_dir))
    # setup-uv's cache gives every job the locked environment; here the project's own .venv plays it.
    # The checkout's lockfiles are dated before the environment's sync stamps, so `make` does not
    # sync it again (their content is the project's: a rehearsal never edits the lock).
    (sandbox.workspace / ".venv").symlink_to(sandbox.world.venv)
    for name in ("pyproject.toml", "uv.lock"):
        os.utime(sandbox.workspace / name, (0, 0))
    return {"uv-version": version}


def uv_version_from(path: Path) -> str:
    if not path.is_file():
        raise ActionFailed(f"version-file {path.name} does not exist")
    text = path.read_text()
    if path.name == ".tool-versions":
        return next((line.split()[1] for line in text.splitlines() if line.split()[:1] == ["uv"]), "")
    if path.suffix == ".toml":
        data = tomllib.loads(text)
        settings = data.get("tool", {}).get("uv", {}) if path.name == "pyproject.toml" else data
        return str(settings.get("required-version", "")).lstrip("=")
    return text.strip()


def setup_pulumi(sandbox: Sandbox, inputs: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """pulumi/actions v7 (src/config.ts): pulumi-version-file (read from the workspace), else
    pulumi-version, else `^3`, the newest 3.x; without `command` it only installs the CLI."""
    if inputs.get("command"):
        raise ActionFailed("pulumi/actions with `command`: the workflows run pulumi through make")
    if inputs.get("pulumi-version") and inputs.get("pulumi-version-file"):
        raise ActionFailed("Only one of 'pulumi-version' or 'pulumi-version-file' should be provided, got both")
    version = inputs.get("pulumi-version") or "^3"
    if inputs.get("pulumi-version-file"):
        path = sandbox.workspace / inputs["pulumi-version-file"]
        if not path.is_file():
            raise ActionFailed(f"pulumi-version-file '{inputs['pulumi-version-file']}' does not exist")
        version = path.read_text().strip()
    sandbox.world.tool_versions.append((sandbox.run.id, sandbox.job.key, "pulumi", version))
    sandbox.export(REHEARSAL_PULUMI_VERSION=version)
    return {}


def configure_aws_credentials(sandbox: Sandbox, inputs: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """aws-actions/configure-aws-credentials: OIDC (AssumeRoleWithWebIdentity) needs the job's id-token:
    write; the role's trust decides on the token's subject (docs.github.com, "OpenID Connect
    reference": repo:<owner>/<repo>:environment:<name> for a job in an environment)."""
    role, region = inputs.get("role-to-assume", ""), inputs.get("aws-region", "")
    if not region:
        raise ActionFailed("Input required and not supplied: aws-region")
    if sandbox.granted("id-token") != "write":
        raise ActionFailed("Could not get ID token: the job lacks the id-token: write permission")
    if not role:
        raise ActionFailed(
            "Credentials could not be loaded: role-to-assume is empty (is the environment variable set?)"
        )
    run, job = sandbox.run, sandbox.job
    repository = sandbox.world.repository
    if job.environment:
        subject = f"repo:{repository}:environment:{job.environment}"
    elif run.event == "pull_request":
        subject = f"repo:{repository}:pull_request"
    else:
        subject = f"repo:{repository}:ref:{run.ref}"
    trusted = sandbox.world.role_trust(role)
    if trusted != subject:
        raise ActionFailed(
            f"Not authorized to perform sts:AssumeRoleWithWebIdentity on {role}: it trusts {trusted}, the job is {subject}"
        )
    sandbox.export(
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        AWS_ACCESS_KEY_ID="ASIAREHEARSAL",
        AWS_SECRET_ACCESS_KEY="rehearsal",  # the rehearsal's stand-in session, not a credential
        AWS_SESSION_TOKEN="rehearsal",
        REHEARSAL_AWS_ROLE=role,
    )
    return {"aws-account-id": role.split(":")[4]}


def create_github_app_token(sandbox: Sandbox, inputs: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """actions/create-github-app-token v3 (action.yml): an installation token for the App named by
    client-id (or app-id) and private-key, with the installation's permissions narrowed by any
    permission-<name> input; revoked when the job ends unless skip-token-revoke."""
    app = sandbox.world.app
    client = inputs.get("client-id") or inputs.get("app-id")
    if not client or not inputs.get("private-key"):
        raise ActionFailed("[@octokit/auth-app] appId and privateKey options are required")
    if app is None or client != app["client_id"] or inputs["private-key"] != app["private_key"]:
        raise ActionFailed(
            "Failed to create token: the App's client ID or private key is wrong, or it is not installed"
        )
    permissions = dict(app["permissions"])
    narrowed = {k.removeprefix("permission-"): v for k, v in inputs.items() if k.startswith("permission-")}
    if narrowed:
        permissions = narrowed
    token = sandbox.world.mint_app_token(sandbox.run, sandbox.job.key, permissions)
    if inputs.get("skip-token-revoke", "false") != "true":
        sandbox.tokens.append(token)
    return {"token": token, "app-slug": app["slug"], "installation-id": "4242"}


def upload_artifact(sandbox: Sandbox, inputs: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """actions/upload-artifact v7: the files under `path`, hidden ones only with include-hidden-files; no
    files is a warning unless if-no-files-found says error (action.yml's default: warn)."""
    target = sandbox.world.artifact_dir(sandbox.run, inputs["name"])
    if target.exists():
        shutil.rmtree(target)
    source = sandbox.workspace / inputs["path"]
    if not source.exists():
        if inputs.get("if-no-files-found", "warn") == "error":
            raise ActionFailed(f"No files were found with the provided path: {inputs['path']}")
        return {}
    hidden = inputs.get("include-hidden-files", "false") == "true"
    if source.is_file():  # a single file is stored at the artifact's root
        target.mkdir(parents=True)
        shutil.copy2(source, target / source.name)
    else:
        ignore = None if hidden else shutil.ignore_patterns(".*")
        shutil.copytree(source, target, ignore=ignore, symlinks=False, ignore_dangling_symlinks=True)
    return {"artifact-id": inputs["name"]}


def download_artifact(sandbox: Sandbox, inputs: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """actions/download-artifact v8: the artifact of this run (any attempt) into `path`."""
    source = sandbox.world.artifact_dir(sandbox.run, inputs["name"])
    if not source.exists():
        raise ActionFailed(f"Unable to download artifact(s): Artifact not found for name: {inputs['name']}")
    shutil.copytree(source, sandbox.workspace / inputs.get("path", "."), dirs_exist_ok=True)
    return {"download-path": inputs.get("path", ".")}


def cache(sandbox: Sandbox, inputs: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """actions/cache: always a miss here; nothing a rehearsal checks depends on it."""
    return {"cache-hit": "false"}


HANDLERS = {
    "actions/checkout": checkout,
    "astral-sh/setup-uv": setup_uv,
    "pulumi/actions": setup_pulumi,
    "aws-actions/configure-aws-credentials": configure_aws_credentials,
    "actions/create-github-app-token": create_github_app_token,
    "actions/upload-artifact": upload_artifact,
    "actions/download-artifact": download_artifact,
    "actions/cache": cache,
}

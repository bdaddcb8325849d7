"""Promotion as a pull request: edit the target's stack file on a branch and describe why.

`python -m ml promotion-pr --to staging` writes the version into infra/Pulumi.staging.yaml,
commits it on branch promote/staging/v<N>, and writes the pull-request body (metrics, the
comparison with the champion, lineage) to a file. The workflow then pushes the branch and opens
the pull request; merging it is the deployment, and `git revert` of that commit is the rollback.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ml.backends.base import DesiredState, ModelVersion
from ml.errors import PipelineError


@dataclass(frozen=True)
class PreparedPromotion:
    branch: str
    title: str
    body: str
    changed: bool


def body(target: str, model: ModelVersion, champion: ModelVersion | None, previous: int | None) -> str:
    lines = [
        f"Promotes model **v{model.version}** of `{model.group}` to **{target}**"
        + (f" (currently v{previous})." if previous else " (no model deployed yet)."),
        "",
        "Merging applies it: deploy.yml runs `pulumi up` for this stack, then smoke-tests the endpoint. "
        "To roll back, revert the merge commit.",
        "",
        "| metric | candidate |" + (f" champion v{champion.version} |" if champion else ""),
        "|---|---|" + ("---|" if champion else ""),
    ]
    for name, value in sorted(model.package.metrics.items()):
        row = f"| {name} | {value:.4f} |"
        if champion:
            other = champion.package.metrics.get(name)
            row += f" {other:.4f} |" if other is not None else " - |"
        lines.append(row)
    lines += ["", "<details><summary>Lineage</summary>", "", "| | |", "|---|---|"]
    lines += [f"| {key} | `{value}` |" for key, value in sorted(model.package.lineage.items())]
    lines += [
        f"| fingerprint | `{model.package.fingerprint}` |",
        f"| model | `{model.package.model_uri}` |",
        "",
        "</details>",
    ]
    return "\n".join(lines) + "\n"


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise PipelineError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()


def prepare(
    repo: Path,
    target: str,
    state: DesiredState,
    model: ModelVersion,
    champion: ModelVersion | None,
) -> PreparedPromotion:
    """Commit the desired-state change on a fresh branch; leave the original branch as it was."""
    if not model.approved:
        raise PipelineError(f"v{model.version} is {model.package.approval_status}; only Approved versions are promoted")
    if _git(repo, "status", "--porcelain", "--", str(state.path)):
        raise PipelineError(f"{state.path} has uncommitted changes; commit or discard them first")
    branch = f"promote/{target}/v{model.version}"
    title = f"Promote model v{model.version} to {target}"
    previous = state.read()
    if previous == model.version:
        return PreparedPromotion(branch, title, body(target, model, champion, previous), changed=False)
    _git(repo, "switch", "--create", branch)
    from ml.steps.promote import monitoring_keys

    state.write(model.version, monitoring_keys(model))
    _git(repo, "add", str(state.path))
    _git(repo, "commit", "--quiet", "--message", f"{title}\n\nmodel_version {previous or 'unset'} -> {model.version}")
    return PreparedPromotion(branch, title, body(target, model, champion, previous), changed=True)

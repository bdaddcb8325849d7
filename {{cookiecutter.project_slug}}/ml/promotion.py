"""Promotion as a pull request: edit the target's stack file on its promotion branch and describe why.

`python -m ml promotion-pr --to staging` writes the version into infra/Pulumi.staging.yaml and
commits it on `promote/staging`, built afresh from the checked-out commit: one branch per target,
so a newer model replaces an older one in the same pull request. It writes the pull request's
title and body and the promotion comment: the candidate's metrics against the version the target
serves now, its lineage, and (added by the preview job) `pulumi preview` of the target with the
change. Merging the pull request is the deployment; reverting its merge commit is the rollback.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ml.backends.base import DesiredState, ModelVersion
from ml.errors import PipelineError
from ml.lineage import release_doubts

COMMENT_MARKER = "<!-- mlops-promotion -->"
PREVIEW_PENDING = "_The preview job adds `pulumi preview` of this change here._"


@dataclass(frozen=True)
class GitIdentity:
    name: str
    email: str


@dataclass(frozen=True)
class PreparedPromotion:
    branch: str
    title: str
    body: str
    comment: str
    changed: bool


def check_release(model: ModelVersion, target: str, warn: Callable[[str], None]) -> None:
    """A version is promoted into an AWS environment from CI only if main's clean tree built it.

    Its lineage (ml/lineage.py) says whether the tree was dirty and which branch it came from. In
    GitHub Actions a doubt refuses the promotion; elsewhere (a laptop, the local environment) it is
    a warning, because the stack file it writes still reaches AWS only through a reviewed merge.
    """
    doubts = release_doubts(model.package.lineage)
    if not doubts:
        return
    text = f"v{model.version} may not be what main holds: " + "; and ".join(doubts)
    if os.environ.get("GITHUB_ACTIONS") == "true" and target != "local":
        raise PipelineError(
            f"refusing to promote to {target}: {text}. Retrain from main: a push to main runs "
            "pipeline.yml, which registers a version built from main's commit."
        )
    warn(f"{text}. CI would refuse to promote it to an AWS environment.")


def branch_for(target: str) -> str:
    return f"promote/{target}"


def body(target: str, model: ModelVersion, previous: int | None, plots: str = "") -> str:
    """The pull request's description. `plots` is Markdown GitHub draws itself (ml/charts.py): an
    image would need a URL a private repository's readers could fetch."""
    was = f"v{previous}" if previous else "no model"
    text = (
        f"Promotes model **v{model.version}** of `{model.group}` to **{target}**, which serves {was} now.\n\n"
        f"Merging applies it: deploy.yml runs `pulumi up` for {target}, checks the endpoint serves v{model.version} "
        "and smoke-tests it. To roll back, revert the merge commit.\n\n"
        "The comment below compares the candidate with what the environment serves, and shows the preview. "
        f"A newer model replaces this one on `{branch_for(target)}`.\n"
    )
    if plots:
        text += f"\n### v{model.version} and what {target} serves, on the held-out test set\n\n{plots}\n"
    return text


def comment(target: str, model: ModelVersion, serving: ModelVersion | None, preview: str | None = None) -> str:
    """The one promotion comment, rewritten in place on every update (`gh pr comment --edit-last`)."""
    lines = [COMMENT_MARKER, f"### v{model.version} against what {target} serves now", ""]
    if serving is None:
        lines += [f"{target} serves no model yet.", "", f"| metric | candidate v{model.version} |", "|---|---|"]
    else:
        lines += [
            f"{target} serves v{serving.version}.",
            "",
            f"| metric | candidate v{model.version} | v{serving.version} |",
        ]
        lines.append("|---|---|---|")
    for name, value in sorted(model.package.metrics.items()):
        row = f"| {name} | {value:.4f} |"
        if serving is not None:
            other = serving.package.metrics.get(name)
            row += f" {other:.4f} |" if other is not None else " - |"
        lines.append(row)
    lines += ["", f"<details><summary>Lineage of v{model.version}</summary>", "", "| | |", "|---|---|"]
    lines += [f"| {key} | `{value}` |" for key, value in sorted(model.package.lineage.items())]
    lines += [
        f"| fingerprint | `{model.package.fingerprint}` |",
        f"| model | `{model.package.model_uri}` |",
        "",
        "</details>",
    ]
    lines += ["", f"### pulumi preview: {target}", ""]
    lines += [f"```\n{preview.rstrip()}\n```" if preview is not None else PREVIEW_PENDING]
    return "\n".join(lines) + "\n"


def with_preview(text: str, preview: str) -> str:
    """The comment with its preview section filled in (the promotion job wrote the rest)."""
    head, found, tail = text.rpartition("### pulumi preview:")
    if not found:
        raise PipelineError("the promotion comment has no preview section; run `make open-promotion-pr` first")
    return f"{head}### pulumi preview:{tail.splitlines()[0]}\n\n```\n{preview.rstrip()}\n```\n"


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise PipelineError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()


def _identity_flags(repo: Path, identity: GitIdentity | None) -> list[str]:
    """`-c user.name/-c user.email` for the bot; with no bot, git's own configuration must have them."""
    if identity is not None:
        return ["-c", f"user.name={identity.name}", "-c", f"user.email={identity.email}"]
    configured = subprocess.run(
        ["git", "config", "user.email"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    if not configured and not os.environ.get("GIT_COMMITTER_EMAIL"):
        raise PipelineError(
            "no git identity to commit the promotion with: in CI, set PROMOTION_BOT to the GitHub App's slug "
            "(the workflows pass its token's app-slug); locally, `git config user.name` and `git config user.email`"
        )
    return []


def prepare(
    repo: Path,
    target: str,
    state: DesiredState,
    model: ModelVersion,
    serving: ModelVersion | None,
    identity: GitIdentity | None = None,
    plots: str = "",
) -> PreparedPromotion:
    """Commit the desired-state change on the target's promotion branch; leave the original branch as it was."""
    if not model.approved:
        raise PipelineError(f"v{model.version} is {model.package.approval_status}; only Approved versions are promoted")
    if _git(repo, "status", "--porcelain", "--", str(state.path)):
        raise PipelineError(f"{state.path} has uncommitted changes; commit or discard them first")
    branch = branch_for(target)
    title = f"Promote model v{model.version} to {target}"
    previous = state.read()
    text = comment(target, model, serving)
    if previous == model.version:
        return PreparedPromotion(branch, title, body(target, model, previous, plots), text, changed=False)
    flags = _identity_flags(repo, identity)
    _git(repo, "switch", "--quiet", "-C", branch)  # rebuilt from this commit: the branch is the bot's
    from ml.steps.promote import monitoring_keys

    state.write(model.version, monitoring_keys(model))
    _git(repo, "add", str(state.path))
    message = f"{title}\n\nmodel_version {previous or 'unset'} -> {model.version}"
    _git(repo, *flags, "commit", "--quiet", "--message", message)
    return PreparedPromotion(branch, title, body(target, model, previous, plots), text, changed=True)

"""Promote step: write an approved version into the environment's desired-state file."""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape

from ml.backends.base import DesiredState, ModelVersion
from ml.context import Context
from ml.errors import PipelineError
from ml.promotion import check_release
from ml.steps.deploy import deployable


@dataclass(frozen=True)
class PromoteResult:
    version: int
    previous: int | None
    changed: bool
    desired_state: str


def monitoring_keys(model: ModelVersion) -> dict[str, str]:
    """The stack keys the monitoring schedule reads (infra/settings.py): the version's baseline, its
    registered evaluation and when it was registered. They travel with model_version, so a revert
    of the promotion rolls them back too."""
    keys = {f"monitoring_{key}": value for key, value in model.package.lineage.items() if key.startswith("baseline_")}
    return {
        **keys,
        "monitoring_evaluation": model.package.evaluation_uri,
        "monitoring_model_created_at": model.created_at,
    }


def run(ctx: Context, version: int, target: DesiredState | None = None) -> PromoteResult:
    """Promote version; target is another environment's desired state (default: this one's)."""
    backends = ctx.backends
    try:
        model = deployable(ctx, version)
    except PipelineError as exc:
        raise PipelineError(f"cannot promote: {exc}") from None
    state = target or backends.desired_state
    environment = target_environment(ctx, state)
    check_release(model, environment, lambda text: ctx.console.print(f"[yellow]warning:[/] {escape(text)}"))
    previous = state.read()
    changed = state.write(version, monitoring_keys(model))
    verb = "promoted" if changed else "already promoted"
    ctx.console.print(f"{verb} v{version} in {state.path}" + (f" (was v{previous})" if changed and previous else ""))
    return PromoteResult(version, previous, changed, str(state.path))


def target_environment(ctx: Context, state: DesiredState) -> str:
    """The environment a desired state belongs to: infra/Pulumi.<env>.yaml's, or this run's."""
    name = state.path.name
    if name.startswith("Pulumi.") and name.endswith(".yaml"):
        return name.removeprefix("Pulumi.").removesuffix(".yaml")
    return ctx.config.env

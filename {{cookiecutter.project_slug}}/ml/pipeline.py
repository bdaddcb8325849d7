"""The whole loop: data -> train -> evaluate -> register -> promote -> deploy -> smoke test."""

from __future__ import annotations

import contextlib

from ml import lineage, reuse
from ml.context import Context
from ml.errors import GateRejectedError, PipelineError
from ml.steps import data as data_step
from ml.steps import deploy as deploy_step
from ml.steps import evaluate as evaluate_step
from ml.steps import promote as promote_step
from ml.steps import register as register_step
from ml.steps import smoke_test as smoke_step
from ml.steps import train as train_step
from ml.summary import Summary

STEPS = ("data", "train", "evaluate", "register", "promote", "deploy", "smoke_test")


def run(ctx: Context, summary: Summary) -> Summary:
    """Run every step, recording each in summary; the first failure stops the run."""
    try:
        result = _run(ctx, summary)
    except BaseException:
        with contextlib.suppress(PipelineError):
            ctx.wait_background()  # the run already failed; its own error is the one to report
        raise
    finally:
        # Interpreters started ahead for processes that did not run (a reused model, a rejected one).
        ctx.backends.warm.close()
    ctx.wait_background()
    return result


def prepare_jobs(ctx: Context) -> None:
    """Start the fork server the train and evaluation jobs and the plots come from: it imports
    pandas and scikit-learn on the core the data step leaves idle."""
    ctx.backends.jobs.prepare(lineage.model_code_files())
    ctx.prepare_background("ml.plots")


def _run(ctx: Context, summary: Summary) -> Summary:
    config, backends = ctx.config, ctx.backends
    summary.paths.update(
        {
            "registry": str(getattr(backends.registry, "path", backends.registry.group)),
            "desired_state": str(backends.desired_state.path),
        }
    )
    # An unchanged data set and model need none of them: an unchanged re-run starts nothing.
    training = not data_step.cached(ctx)
    if training:
        prepare_jobs(ctx)
    data = summary.step("data", lambda: data_step.run(ctx), lambda r: f"{r.rows} rows, hash {r.data_hash[:12]}")
    ctx.save("data", data)
    summary.data = {"hash": data.data_hash, "rows": data.rows}
    summary.params = {"estimator": config.train.estimator, **config.train.hyperparameters}
    if data.reused:
        summary.steps[-1].status = "reused"
    if not training and train_step.reusable(ctx, data) is None:
        training = True
        prepare_jobs(ctx)
    if training:
        # The model server's interpreter, one step behind the fork server so the two do not
        # slow each other: it imports while the model trains, and is ready when the deploy comes.
        backends.endpoint.prepare()
    trained = summary.step(
        "train",
        lambda: train_step.run(ctx, data),
        lambda r: f"reused v{r.reused_version}" if r.reused_version else f"{r.job_name} ({r.seconds:.1f}s in job)",
    )
    ctx.save("train", trained)
    summary.model["fingerprint"] = trained.fingerprint[:16]

    existing = reuse.reused(ctx, trained)
    if existing is not None:
        # Incremental run: this exact model was trained, evaluated and registered before.
        summary.steps[-1].status = "reused"
        summary.metrics = existing.package.metrics
        summary.model.update(version=existing.version, approval=existing.package.approval_status, reused=True)
        if not existing.approved:
            summary.mark("evaluate", "skipped", f"unchanged inputs; metrics from v{existing.version}")
            summary.mark("register", "skipped", f"already registered as v{existing.version}")
        reuse.refuse_rejected(existing)
        champion = reuse.champion_to_beat(ctx, existing)
        if champion is not None:
            # An older version, reused: it serves again only if it still beats what serves now.
            evaluation = summary.step(
                "evaluate",
                lambda: evaluate_step.run(ctx, data, trained),
                lambda r: (
                    f"reused v{existing.version} vs champion v{champion.version}: gate "
                    + ("passed" if r.passed else "failed")
                ),
            )
            summary.evaluated(evaluation)
            if not evaluation.passed:
                summary.mark("register", "skipped", f"already registered as v{existing.version}")
            reuse.refuse_trailing(evaluation, existing, champion)
        else:
            summary.mark("evaluate", "skipped", f"unchanged inputs; metrics from v{existing.version}")
        summary.mark("register", "skipped", f"already registered as v{existing.version}")
        ctx.save("register", reuse.registration(existing, trained))
        version = existing.version
    else:
        evaluation = summary.step(
            "evaluate",
            lambda: evaluate_step.run(ctx, data, trained),
            lambda r: "gate passed" if r.passed else "gate failed",
        )
        ctx.save("evaluate", evaluation)
        summary.evaluated(evaluation)
        summary.model["reused"] = False
        try:
            registered = summary.step(
                "register",
                lambda: register_step.run(ctx, data, trained, evaluation),
                lambda r: f"v{r.version} {r.approval_status} in {r.group}",
            )
        except GateRejectedError:
            rejected = backends.registry.find_by_fingerprint(trained.fingerprint)
            if rejected is not None:
                summary.model.update(version=rejected.version, approval=rejected.package.approval_status)
            raise
        ctx.save("register", registered)
        summary.model.update(version=registered.version, approval=registered.approval_status)
        version = registered.version

    promoted = summary.step(
        "promote",
        lambda: promote_step.run(ctx, version),
        lambda r: (
            f"v{r.version}"
            + (f" (was v{r.previous})" if r.previous and r.changed else "")
            + ("" if r.changed else " unchanged")
        ),
    )
    summary.model["promoted"] = promoted.version
    deployed = summary.step(
        "deploy",
        lambda: deploy_step.run(ctx),
        lambda r: f"v{r.version} at {r.url}" + ("" if r.changed else " (already serving)"),
    )
    summary.paths["endpoint"] = deployed.url
    summary.step(
        "smoke_test",
        lambda: smoke_step.run(ctx, data),
        lambda r: f"{r.requests} requests OK, p50 {r.p50_ms:.1f} ms, p95 {r.p95_ms:.1f} ms",
    )
    summary.paths["artifacts"] = str(config.state_dir / "artifacts")
    return summary

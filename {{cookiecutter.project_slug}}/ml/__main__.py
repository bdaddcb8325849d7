"""Command line: `python -m ml <command>`. The Makefile targets call these."""

from __future__ import annotations

import argparse
import csv
import gc
import io
import json
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ml import atomic, charts, github, housekeeping, pipeline, promotion, reuse, run_report, schema, tracking, ui
from ml.backends import job_ledger, stack_file
from ml.backends.base import ModelVersion
from ml.backends.desired_state import StackConfigFile
from ml.backends.local_registry import LocalModelRegistry
from ml.context import Context, make_context
from ml.errors import GateRejectedError, PipelineError
from ml.lock import environment_lock
from ml.monitor import DEMO_ID
from ml.steps import batch as batch_step
from ml.steps import data as data_step
from ml.steps import deploy as deploy_step
from ml.steps import evaluate as evaluate_step
from ml.steps import monitor as monitor_step
from ml.steps import promote as promote_step
from ml.steps import register as register_step
from ml.steps import smoke_test as smoke_step
from ml.steps import train as train_step
from ml.steps.data import DataResult
from ml.steps.evaluate import EvaluationResult
from ml.steps.register import RegisterResult
from ml.steps.train import TrainResult
from ml.summary import Summary


def cmd_pipeline(ctx: Context, args: argparse.Namespace) -> int:
    summary = Summary(env=ctx.config.env)
    code = 0
    try:
        pipeline.run(ctx, summary)
        summary.status = "succeeded"
    except PipelineError as exc:
        summary.status = "rejected" if isinstance(exc, GateRejectedError) else "failed"
        summary.error = str(exc)
        code = exc.exit_code
    except (Exception, KeyboardInterrupt) as exc:
        # Whatever stopped the run, summary.json must not keep saying the previous run succeeded.
        summary.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        summary.error = unexpected(ctx, exc, f"the {summary.failed_step() or 'pipeline'} step")
        code = INTERRUPTED if isinstance(exc, KeyboardInterrupt) else 1
    summary.write(ctx.config.state_dir)
    # After the record, never before: neither can fail or slow the run it describes.
    record_report_and_tracking(ctx, summary)
    done = {record.name for record in summary.steps}
    for name in pipeline.STEPS:
        if name not in done:
            summary.mark(name, "not run")
    summary.render(ctx.console)
    if summary.error:
        ctx.console.print(f"[bold red]error:[/] {escape(summary.error)}", highlight=False)
    return code


def record_report_and_tracking(ctx: Context, summary: Summary) -> None:
    """The run's HTML report beside its record, then its MLflow sync started in the background."""
    try:
        summary.paths["run_report"] = str(run_report.write(ctx.config.state_dir, summary.to_json()))
    except OSError as exc:
        summary.tracking = f"the run report could not be written ({exc}); "
    try:
        summary.tracking += tracking.after_run(ctx.config)
    except OSError as exc:
        summary.tracking += f"not started ({exc}); the next run or `make ui` logs this run"


def cmd_track(ctx: Context, args: argparse.Namespace) -> int:
    """Log every recorded run MLflow does not have yet (what `make ui` runs first; in CI, after the
    register job, the run its jobs made). A run it cannot log is reported, never a failed pipeline."""
    if ctx.config.env != "local":
        made = tracking.record_from_steps(ctx)
        if made is not None:
            ctx.console.print(f"run record {made}")
    report = tracking.sync(ctx)
    ctx.console.print(
        f"MLflow ({report.uri}): {len(report.logged)} run(s) logged, {report.already} already there", highlight=False
    )
    for run_id, message in report.failed.items():
        ctx.console.print(f"[yellow]not logged:[/] run {run_id}: {escape(message)}", highlight=False)
    if report.failed:
        step_summary(f"**MLflow**: {len(report.failed)} run(s) not logged: " + next(iter(report.failed.values())))
    return 0


def cmd_ui(ctx: Context, args: argparse.Namespace) -> int:
    """Catch MLflow up with every recorded run, then serve its UI on 127.0.0.1."""
    code = cmd_track(ctx, args)
    server, started = ui.start(ctx.config)
    experiment = tracking.experiment_id(ctx.config)
    where = f"{server.url}/#/experiments/{experiment}/runs" if experiment else server.url
    ctx.console.print(
        f"MLflow UI {'started' if started else 'already running'}: {where}  (`make stop` stops it)", highlight=False
    )
    return code


def cmd_data(ctx: Context, args: argparse.Namespace) -> int:
    result = data_step.run(ctx)
    ctx.save("data", result)
    ctx.console.print(f"data: {result.rows} rows valid; train {result.train_rows}, test {result.test_rows}")
    return 0


def cmd_train(ctx: Context, args: argparse.Namespace) -> int:
    ctx.save("train", train_step.run(ctx, ctx.load("data", DataResult)))
    return 0


def cmd_tune(ctx: Context, args: argparse.Namespace) -> int:
    from ml.steps import tune as tune_step

    data = data_step.run(ctx)
    ctx.save("data", data)
    result = tune_step.run(ctx, data, write=args.write)
    report = json.loads((Path(result.report) / "tuning.json").read_text())
    table = Table(title=f"tuning: {report['rounds']} rounds of successive halving in {report['seconds']:.1f}s")
    for column in ("round", "rows", result.metric, "±", "parameters"):
        table.add_column(column, justify="right" if column in ("round", "rows", result.metric, "±") else "left")
    for candidate in report["candidates"][:TUNE_SHOWN]:
        shown = ", ".join(f"{k}={v}" for k, v in candidate["params"].items())
        table.add_row(str(candidate["round"]), str(candidate["rows"]), f"{candidate['score']:.4f}",
                      f"{candidate['std']:.4f}", escape(shown))  # fmt: skip
    ctx.console.print(table)
    best = ", ".join(f"{k} = {v!r}" for k, v in result.best.items())
    ctx.console.print(
        f"best by cross-validation on the training split: {escape(best)} ({result.metric} {result.best_score:.4f})"
    )
    if result.written:
        done = f"wrote them into [train.hyperparameters] in {ctx.config.path}: `make pipeline` trains with them"
    else:
        done = f"`make tune WRITE=1` writes them into [train.hyperparameters]; every candidate is in {result.report}"
    ctx.console.print(escape(done), highlight=False)  # keys such as [train.hyperparameters] printed literally
    ctx.console.print(f"tracking: {escape(tracking.after_run(ctx.config))}", highlight=False)
    return 0


TUNE_SHOWN = 10  # the table's candidates, best first; the report holds them all


def cmd_staleness(ctx: Context, args: argparse.Namespace) -> int:
    from ml.steps import staleness as staleness_step

    result = staleness_step.run(ctx)
    report = json.loads(result.report.read_text())
    metric, spans = report["metric"], report["windows"]
    order = f"by {report['order_by']}" if report["order_by"] else "in the file's row order"
    table = Table(title=f"staleness: {len(spans)} windows {order}, {report['seconds']:.1f}s")
    for column in ("age (windows)", f"mean {metric}", "worse than age 1 on the same rows", "pairs"):
        table.add_column(column, justify="right")
    for age in report["by_age"]:
        mean = "not judged" if age["mean"] is None else f"{age['mean']:.4f}"
        loss = "" if age["loss"] is None else f"{age['loss']:+.4f}"
        table.add_row(str(age["age"]), mean, loss, f"{age['pairs'] - age['undefined']} of {age['pairs']}")
    ctx.console.print(table)
    for index, window in enumerate(spans, 1):
        ctx.console.print(
            f"  window {index}: {window['rows']} rows, {escape(window['first'])} to {escape(window['last'])}",
            highlight=False,
        )
    ctx.console.print(
        "Read it as: age k is a model k windows older than the rows it scores; retrained every k windows, a model "
        'serves at ages 1 to k. Retrain before the age whose loss you cannot accept (README "How fast does the '
        'model go stale?"). '
        f"Every score is in {result.report}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def cmd_evaluate(ctx: Context, args: argparse.Namespace) -> int:
    data, trained = ctx.load("data", DataResult), ctx.load("train", TrainResult)
    existing = reuse.reused(ctx, trained)
    champion = None
    if existing is not None:
        # The same rules as `make pipeline` (ml/reuse.py): an unchanged model is not evaluated for nothing.
        reuse.refuse_rejected(existing)
        champion = reuse.champion_to_beat(ctx, existing)
        if champion is None:
            ctx.save("evaluate", reuse.standing_evaluation(existing))
            message = f"unchanged data, code and parameters: v{existing.version}'s registered evaluation stands"
            ctx.console.print(f"[green]{message}[/]")
            step_summary(f"### Evaluation\n\n{message}; nothing was evaluated.")
            return 0
    result = evaluate_step.run(ctx, data, trained)
    ctx.wait_background()
    ctx.save("evaluate", result)
    for check in result.checks:
        relation = ">=" if check.get("higher_is_better", True) else "<="
        if check.get("not_judged"):
            ctx.console.print(f"[yellow]not judged[/] {escape(check['name'])}: {escape(check['not_judged'])}")
            continue
        mark = "[green]pass[/]" if check["passed"] else "[red]fail[/]"
        ctx.console.print(
            f"{mark} {escape(check['name'])} = {check['value']:.4f} (needs {relation} {check['required']:.4f})"
        )
    report = run_report.write_evaluation(ctx.config, result)
    ctx.console.print(f"plots and evaluation.json in {result.report_dir}; the report: {report}")
    step_summary(evaluation_markdown(result))
    if existing is not None and champion is not None:
        reuse.refuse_trailing(result, existing, champion)
    return 0


def promotion_plots(ctx: Context, candidate: ModelVersion, serving: ModelVersion | None) -> str:
    """The candidate's and the serving version's ROC curves and confusion matrices, from their
    registered evaluations; a reviewer is told if one cannot be read, and the promotion goes on."""
    parts: dict[str, dict[str, Any] | None] = {}
    missing = []
    for title, version in ((f"candidate v{candidate.version}", candidate), ("serving", serving)):
        if version is None:
            continue
        if title == "serving":
            title = f"serving v{version.version}"
        try:
            with tempfile.TemporaryDirectory() as scratch:
                got = ctx.backends.artifacts.get(version.package.evaluation_uri, Path(scratch) / "evaluation.json")
                parts[title] = json.loads(got.read_text()).get("candidate")
        except Exception as exc:  # any store's error (S3's ClientError too): the plots are not worth a failed promotion
            missing.append(f"v{version.version}'s evaluation could not be read ({type(exc).__name__}: {exc})")
    drawn = charts.evaluation_charts(parts)
    return "\n\n".join([drawn, *(f"_{note}_" for note in missing)]).strip()


def step_summary(markdown: str) -> None:
    """Append to the GitHub Actions job summary when running there."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")


def evaluation_markdown(result: EvaluationResult) -> str:
    columns = [("candidate", result.metrics)]
    if result.champion_metrics:
        columns.append((f"champion v{result.champion_version}", result.champion_metrics))
    columns += [
        (f"{role} baseline", result.baselines[role]) for role in ("simple", "trivial") if role in result.baselines
    ]
    lines = [
        "### Evaluation: candidate vs champion and baselines (same test set)",
        "",
        "| metric | " + " | ".join(title for title, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name in sorted(result.metrics):
        cells = " | ".join(f"{values[name]:.4f}" if name in values else "" for _, values in columns)
        lines.append(f"| {name} | {cells} |")
    lines += ["", "| gate check | value | required | result |", "|---|---|---|---|"]
    for check in result.checks:
        relation = ">=" if check.get("higher_is_better", True) else "<="
        if check.get("not_judged"):
            value, verdict = "", f"not judged: {check['not_judged']}"
        else:
            value, verdict = f"{check['value']:.4f}", "pass" if check["passed"] else "**fail**"
        lines.append(f"| {check['name']} | {value} | {relation} {check['required']:.4f} | {verdict} |")
    if result.importance:
        top = ", ".join(f"{item['feature']} ({item['mean']:+.4f})" for item in result.importance[:5])
        lines.append(f"\nPermutation importance, top 5: {top}.")
        if result.no_contribution:
            lines.append(f"No drop beyond noise when shuffled alone: {', '.join(result.no_contribution)}.")
    if result.new_lineage:
        lines.append(f"\nNew lineage: {result.new_lineage}.")
    lines.append(f"\nGate: **{'passed' if result.passed else 'failed'}**.")
    evaluation = json.loads((Path(result.report_dir) / "evaluation.json").read_text())
    drawn = charts.evaluation_charts(
        {"candidate": evaluation.get("candidate"), f"champion v{result.champion_version}": evaluation.get("champion")}
    )
    if drawn:
        lines += ["", "#### Plots", "", drawn]
    lines.append(
        "\nEvery plot, the slices and the model card: `report.html` in this job's `pipeline-state-evaluate` "
        f"artifact, under `reports/{Path(result.report_dir).name}/`."
    )
    return "\n".join(lines)


def cmd_register(ctx: Context, args: argparse.Namespace) -> int:
    trained = ctx.load("train", TrainResult)
    existing = reuse.reused(ctx, trained)
    if existing is not None:
        # `make evaluate` refused a reused version that may not serve; this one is registered already.
        ctx.save("register", reuse.registration(existing, trained))
        ctx.console.print(
            f"already registered as v{existing.version} ({existing.package.approval_status}); nothing registered"
        )
        return 0
    result = register_step.run(ctx, ctx.load("data", DataResult), trained, ctx.load("evaluate", EvaluationResult))
    ctx.save("register", result)
    ctx.console.print(f"registered v{result.version} ({result.approval_status}) in {result.group}")
    return 0


def last_registered(ctx: Context) -> int:
    """The version the last register step (or pipeline run) settled on, if it belongs to the last training.

    A step file from an earlier run is never taken for the current one: `make promote` without
    VERSION promotes the model the last `make train` produced, once it is registered.
    """
    registered = ctx.load("register", RegisterResult)
    trained = ctx.load("train", TrainResult)
    if registered.fingerprint and registered.fingerprint != trained.fingerprint:
        raise PipelineError(
            f"the last trained model ({trained.job_name or 'reused'}) is not registered yet: the register step's "
            f"result (v{registered.version}) is from an earlier training. Run `make register`, or name the "
            "version: `make promote VERSION=<n>` (`make status` lists them)."
        )
    return registered.version


def cmd_promote(ctx: Context, args: argparse.Namespace) -> int:
    version = args.version or last_registered(ctx)
    target = None
    if args.to and args.to != ctx.config.env:
        if ctx.config.env == "local" or args.to == "local":
            raise PipelineError("--to promotes between AWS environments (dev, staging, prod); local has its own state")
        target = stack_file(ctx.config, args.to)
    promote_step.run(ctx, version, target)
    return 0


def cmd_deploy(ctx: Context, args: argparse.Namespace) -> int:
    deploy_step.run(ctx)
    return 0


def cmd_smoke_test(ctx: Context, args: argparse.Namespace) -> int:
    smoke_step.run(ctx, ctx.load("data", DataResult))
    return 0


def step_output(**values: str) -> None:
    """Step outputs a later job reads, when running in GitHub Actions."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.writelines(f"{name}={value}\n" for name, value in values.items())


def cmd_promotion_pr(ctx: Context, args: argparse.Namespace) -> int:
    if not args.to:
        raise PipelineError("promotion-pr needs --to (dev, staging or prod)")
    registry = ctx.backends.registry
    if args.version:
        version = args.version
    elif args.from_env:
        desired = stack_file(ctx.config, args.from_env).read()
        if desired is None:  # a stack deployed before any model was promoted to it
            ctx.console.print(f"{args.from_env} names no model version yet: nothing to promote to {args.to}")
            step_output(changed="false")
            return 0
        version = desired
    else:
        version = last_registered(ctx)
    state = stack_file(ctx.config, args.to)
    promotion.check_release(
        registry.get(version), args.to, lambda text: ctx.console.print(f"[yellow]warning:[/] {escape(text)}")
    )
    previous = state.read()
    # What the target serves now is what its stack file on main names: the comparison the reviewer needs.
    serving = registry.get(previous) if previous else None
    bot = os.environ.get("PROMOTION_BOT")
    identity = github.bot_identity(bot) if bot else None
    candidate = registry.get(version)
    plots = promotion_plots(ctx, candidate, serving)
    prepared = promotion.prepare(state.path.parent, args.to, state, candidate, serving, identity, plots)
    out = ctx.config.state_dir / "promotion"
    out.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".md", prepared.body), (".title", prepared.title), ("-comment.md", prepared.comment)):
        atomic.write_text(out / f"{args.to}{suffix}", text)
    step_summary(prepared.comment)
    if not prepared.changed:
        ctx.console.print(f"{args.to} already names v{version}; nothing to promote")
        if args.open:
            closed = github.close_superseded(
                prepared.branch, f"Superseded: `{state.path.name}` on main already names v{version}."
            )
            if closed is not None:
                ctx.console.print(f"closed #{closed}, which proposed another version for {args.to}")
        step_output(changed="false")
        return 0
    ctx.console.print(f"committed v{version} to {state.path.name} on branch {prepared.branch}")
    if not args.open:
        return 0
    sha, pushed = github.push(state.path.parent, prepared.branch, state.path)
    number = github.propose(prepared.branch, prepared.title, out / f"{args.to}.md")
    github.comment(number, out / f"{args.to}-comment.md")
    atomic.write_text(out / f"{args.to}.number", str(number))
    ctx.console.print(
        f"#{number} {prepared.title}"
        + ("" if pushed else f" ({prepared.branch} already proposed it; not pushed again)")
    )
    step_output(changed="true", number=str(number), sha=sha)
    return 0


def cmd_promotion_preview(ctx: Context, args: argparse.Namespace) -> int:
    """Put `pulumi preview` of the promotion branch into the promotion comment (the preview job)."""
    if not args.to or not args.input:
        raise PipelineError("promotion-preview needs --to and --input (the output of `pulumi preview`)")
    out = ctx.config.state_dir / "promotion"
    missing = [p.name for p in (out / f"{args.to}-comment.md", out / f"{args.to}.number") if not p.exists()]
    if missing:
        raise PipelineError(f"no {', '.join(missing)} in {out}: download the promotion job's artifact first")
    text = promotion.with_preview((out / f"{args.to}-comment.md").read_text(), Path(args.input).read_text())
    atomic.write_text(out / f"{args.to}-comment.md", text)
    github.comment(int((out / f"{args.to}.number").read_text()), out / f"{args.to}-comment.md")
    ctx.console.print(f"the preview of {args.to} is in the promotion comment")
    return 0


def cmd_stop_jobs(ctx: Context, args: argparse.Namespace) -> int:
    """Stop the cloud jobs this workspace started that still run (the `if: cancelled()` step in CI)."""
    entries = job_ledger(ctx.config).entries()
    if not entries:
        ctx.console.print("no jobs were started here")
    for kind, name in entries:
        stopped = ctx.backends.jobs.stop(kind, name)
        ctx.console.print(f"{kind} job {name}: {'stop requested' if stopped else 'had already ended'}")
    return 0


def cmd_check_deployable(ctx: Context, args: argparse.Namespace) -> int:
    """Before `pulumi up`: the version the stack file names is registered, Approved and stored."""
    state = ctx.backends.desired_state if ctx.config.env == "local" else stack_file(ctx.config, ctx.config.env)
    desired = state.read()
    if desired is None:
        ctx.console.print(f"{state.path.name} names no model version: no endpoint to create")
        return 0
    deploy_step.deployable(ctx, desired)
    check = getattr(ctx.backends.endpoint, "check_in_place", None)
    if check is not None and isinstance(state, StackConfigFile):
        # What SageMaker cannot change on a running endpoint is refused here, not half-way through `pulumi up`.
        check(state.value("endpoint_type") != "serverless", state.value("instance_type"))
    ctx.console.print(f"v{desired} ({state.path.name}) is Approved and its model is stored: deployable")
    return 0


def cmd_verify(ctx: Context, args: argparse.Namespace) -> int:
    """After `pulumi up`: the endpoint serves the desired version and passes the smoke test.

    In AWS it only checks: `pulumi up` (deploy.yml, with prod's reviewed plan) is what changes an
    endpoint, never the check after it.
    """
    desired = ctx.backends.desired_state.read()
    if desired is None:
        ctx.console.print(f"{ctx.backends.desired_state.path.name} names no model version: no endpoint to verify")
        return 0
    if ctx.config.env == "local":
        deploy_step.run(ctx)
    else:
        deploy_step.check_serving(ctx, desired)
    data = data_step.run(ctx)
    result = smoke_step.run(ctx, data)
    step_summary(
        f"### {ctx.config.env}: v{result.version} serving\n\n{result.requests} smoke-test requests passed; "
        f"p50 {result.p50_ms:.1f} ms, p95 {result.p95_ms:.1f} ms."
    )
    return 0


def cmd_prune_endpoints(ctx: Context, args: argparse.Namespace) -> int:
    """Delete the endpoint configs and models the environment's endpoint no longer uses (AWS only)."""
    prune = getattr(ctx.backends.endpoint, "prune", None)
    if prune is None:
        ctx.console.print("the local endpoint keeps no configs or models: nothing to prune")
        return 0
    removed = prune()
    for line in removed:
        ctx.console.print(f"deleted {line}", markup=False)
    ctx.console.print(f"{len(removed)} unused endpoint config(s) and model(s) deleted" if removed else "nothing unused")
    return 0


DRIFT_EXIT = 4


def show_monitoring(ctx: Context, report: monitor_step.MonitorReport) -> None:
    metrics = report.metrics
    table = Table(
        title=f"monitoring v{report.version}: {metrics['rows']} rows from {metrics['requests']} requests "
        f"({report.job_name})"
    )
    for column in ("feature", "check", "description"):
        table.add_column(column, overflow="fold")
    for violation in report.violations:
        table.add_row(violation["feature_name"], violation["constraint_check_type"], violation["description"])
    if report.violations:
        ctx.console.print(table)
    if not metrics["judged_drift"]:
        ctx.console.print(f"[yellow]too few rows to judge drift[/] ({metrics['rows']}; "
                          + escape(f"[monitor].min_rows = {ctx.config.monitor.min_rows})"))  # fmt: skip
    if metrics["labelled"]:
        live = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics["live_metrics"].items()))
        ctx.console.print(f"model quality on {metrics['labelled']} labelled requests: {live}")
    ctx.console.print(f"report: {report.report_file}\nviolations: {report.violations_file}", highlight=False)


def cmd_monitor(ctx: Context, args: argparse.Namespace) -> int:
    report = monitor_step.run(ctx)
    show_monitoring(ctx, report)
    if not report.violations:
        # An empty or small window is said so (above), never passed off as "no drift".
        judged = "" if report.metrics["judged_drift"] else " (drift not judged: too few rows)"
        ctx.console.print(f"[green]no violations[/]{judged}")
        return 0
    if args.retrain:
        # The same entry point repository_dispatch reaches in CI: the whole pipeline.
        ctx.console.print("violations found: retraining")
        return cmd_pipeline(ctx, args)
    return DRIFT_EXIT


def demo_endpoint(ctx: Context, args: argparse.Namespace) -> DataResult | None:
    """A serving local endpoint for a demo (the pipeline runs first if none serves), and the data."""
    if ctx.config.env != "local":
        raise PipelineError("the demos send synthetic traffic to the local endpoint only; run them without MLOPS_ENV")
    status = ctx.backends.endpoint.status()
    if status is None or not status.healthy:
        ctx.console.print("no endpoint is serving yet: running the pipeline first")
        if cmd_pipeline(ctx, args) != 0:
            return None
    return data_step.run(ctx)


def demo_rows(ctx: Context, data: DataResult) -> list[dict[str, str]]:
    """The held-out rows, repeated if need be, so a demo window holds twice the rows and labels the monitor judges."""
    rows = smoke_step.load_sample(ctx, data, limit=None)
    wanted = 2 * max(ctx.config.monitor.min_rows, ctx.config.monitor.min_labels)
    return (rows * (wanted // len(rows) + 1))[: max(wanted, len(rows))]


def shifted_features(statistics: dict[str, Any], count: int = 4) -> list[str]:
    """Features to shift in the drift demo, spread over the schema (whatever the data set)."""
    names = [str(f["name"]) for f in statistics["features"]]
    step = max(1, len(names) // count)
    return names[::step][:count]


def shift_row(row: dict[str, str], statistics: dict[str, Any], shifted: list[str], shift: float) -> dict[str, str]:
    """A row with the shifted features moved, as the baseline describes them.

    A number moves by `shift` standard deviations; a category becomes the one training saw least,
    so its share jumps. Missing values stay missing: the demo changes values, not completeness.
    """
    moved = dict(row)
    for feature in statistics["features"]:
        name = feature["name"]
        if name not in shifted or row[name] == "":
            continue
        if "numerical_statistics" in feature:
            moved[name] = repr(float(row[name]) + shift * float(feature["numerical_statistics"]["std_dev"]))
        else:
            buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
            moved[name] = min(buckets, key=lambda b: b["count"])["value"]
    return moved


def cmd_drift_demo(ctx: Context, args: argparse.Namespace) -> int:
    """Send clean traffic, then shifted traffic, and show the monitor telling them apart.

    The demo's requests carry InferenceIds of their own: it judges only them, and `make monitor`
    leaves them out, so the endpoint's real captured traffic is neither deleted nor disturbed.
    """
    data = demo_endpoint(ctx, args)
    if data is None:
        return 1
    rows = demo_rows(ctx, data)
    statistics, _ = monitor_step.baseline_of(ctx, monitor_step.serving_version(ctx).version)
    shifted = shifted_features(statistics)
    contract = schema.for_config(ctx.config)
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    outcomes = {}
    for label, shift in (("clean", 0.0), ("shifted", 1.5)):
        prefix = f"{DEMO_ID}drift-{run_id}-{label}-"
        moved = [shift_row(row, statistics, shifted, shift) for row in rows] if shift else rows
        for start in range(0, len(moved), 10):
            lines = smoke_step.csv_lines(moved[start : start + 10], contract.names)
            ctx.backends.endpoint.invoke(
                ("\n".join(lines) + "\n").encode(), "text/csv", "application/json", inference_id=f"{prefix}{start}"
            )
        report = monitor_step.run(ctx, window_hours=1, only_ids=prefix)
        ctx.console.rule(
            f"{label} traffic: {len(rows)} rows" + (f", {', '.join(shifted)} shifted by {shift} std" if shift else "")
        )
        show_monitoring(ctx, report)
        outcomes[label] = report
    caught = set(outcomes["shifted"].drifted) >= set(shifted)
    clean = not outcomes["clean"].violations
    ctx.console.print(
        "[green]the monitor caught the shift and passed the clean traffic[/]"
        if caught and clean
        else "[red]unexpected result[/]"
    )
    return 0 if caught and clean else 1


def cmd_quality_demo(ctx: Context, args: argparse.Namespace) -> int:
    """Traffic whose labels arrive later: a healthy round, then one where the world changed.

    Each test row is one request with an InferenceId; its label is then recorded as ground truth,
    as a labelling process would. In the second round two labels in five are the other class, as
    if the relation between features and label had moved (concept drift): the features look the
    same, so drift checks pass, and only model quality on labelled traffic catches it.
    """
    data = demo_endpoint(ctx, args)
    if data is None:
        return 1
    rows = demo_rows(ctx, data)
    contract = schema.for_config(ctx.config)
    lines = smoke_step.csv_lines(rows, contract.names)
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    outcomes = {}
    for label, flipped in (("healthy", False), ("degraded", True)):
        prefix = f"{DEMO_ID}quality-{run_id}-{label}-"
        labels = []
        for number, (row, line) in enumerate(zip(rows, lines, strict=True)):
            inference_id = f"{prefix}{number}"
            ctx.backends.endpoint.invoke(
                f"{line}\n".encode(), "text/csv", "application/json", inference_id=inference_id
            )
            truth = row[contract.label]
            labels.append((inference_id, changed_label(contract, truth, rows) if flipped and number % 5 < 2 else truth))
        monitor_step.record_labels(ctx, labels)
        report = monitor_step.run(ctx, window_hours=1, only_ids=prefix)
        ctx.console.rule(f"{label}: {len(rows)} requests, labels recorded" + (" (2 in 5 changed)" if flipped else ""))
        show_monitoring(ctx, report)
        outcomes[label] = report
    quality = [v for v in outcomes["degraded"].violations if v["constraint_check_type"] == "model_quality_check"]
    healthy = not outcomes["healthy"].violations
    ctx.console.print(
        "[green]the monitor caught the model's drop on later labels and passed the healthy round[/]"
        if quality and healthy
        else "[red]unexpected result[/]"
    )
    return 0 if quality and healthy else 1


def changed_label(contract: schema.Schema, truth: str, rows: list[dict[str, str]]) -> str:
    """Another label than the true one: the next class, or for regression a value far off (the label's range)."""
    if contract.task.is_classification:
        classes = [str(c) for c in contract.classes]
        return classes[(classes.index(truth) + 1) % len(classes)]
    values = [float(row[contract.label]) for row in rows]
    return repr(float(truth) + (max(values) - min(values)))


def cmd_infer_schema(ctx: Context, args: argparse.Namespace) -> int:
    """Write schema.toml from a data file, for review: types, ranges, categories, gaps, label and task."""
    from ml import infer_schema, tasks

    config = ctx.config
    data = Path(args.input) if args.input else data_step.source_path(config.data.source, config.root)
    if not data.is_file():
        raise PipelineError(f"DATA={args.input} does not exist; name a CSV or Parquet file")
    if not args.label:
        raise PipelineError(
            "infer-schema needs the label: `make infer-schema DATA=<file> LABEL=<column>` (TASK=binary, multiclass "
            "or regression to override the guess)"
        )
    frame = data_step.load_frame(data)
    contract, notes = infer_schema.infer(frame, args.label, args.task, config.schema_path)
    try:
        source = data.resolve().relative_to(config.root)
    except ValueError:
        source = data.resolve()
    atomic.write_text(config.schema_path, schema.to_toml(contract, source.as_posix()))
    kinds = {kind: len(contract.of_kind(kind)) for kind in schema.Kind}
    ctx.console.print(
        f"wrote {config.schema_path}: label {contract.label!r}, task {contract.task}, "
        f"{kinds[schema.Kind.NUMERIC]} numeric and {kinds[schema.Kind.CATEGORICAL]} categorical feature(s), "
        f"{sum(f.nullable for f in contract.features)} with missing values",
        highlight=False,
    )
    for note in notes:
        ctx.console.print(f"[yellow]note:[/] {escape(note)}")
    steps = []
    if source.as_posix() != config.data.source:
        steps.append(f'set [data].source = "{source.as_posix()}" in {config.path.name}')
    try:
        tasks.check_metrics(contract.task, config.gate, config.monitor, config.path)
    except PipelineError:
        steps.append(
            f"set [gate] and [monitor].quality_metrics for a {contract.task} task, e.g.:\n"
            + tasks.suggested_config(contract.task)
        )
    try:
        tasks.check_slices(contract, config.gate, config.path)
    except PipelineError as exc:
        steps.append(
            f"{str(exc).splitlines()[0]}\n   Replace every [gate.slices.*] table and [gate.fairness] with slices of "
            f'your data (README: "Is the model worth it?"), e.g.:\n' + tasks.suggested_slices(contract, frame)
        )
    if contract.task is schema.Task.REGRESSION and config.train.estimator.endswith("Classifier"):
        steps.append('set [train].estimator to a regressor, e.g. "sklearn.ensemble.RandomForestRegressor"')
    elif contract.task.is_classification and config.train.estimator.endswith("Regressor"):
        steps.append('set [train].estimator to a classifier, e.g. "sklearn.ensemble.RandomForestClassifier"')
    ctx.console.print("Review it, then:" if steps else "Review it, then run `make pipeline`.")
    for number, step in enumerate(steps, start=1):
        ctx.console.print(f"  {number}. {escape(step)}", highlight=False)
    return 0


PREDICT_BATCH = 100  # rows per request: well under the endpoint's 6 MB payload limit for tabular rows


def cmd_predict(ctx: Context, args: argparse.Namespace) -> int:
    """Score a CSV file (a header row naming the schema's features) against the running endpoint."""
    if not args.input:
        raise PipelineError("predict needs INPUT=<csv with a header row naming the features>")
    path = Path(args.input)
    if not path.is_file():
        raise PipelineError(f"INPUT={path} does not exist; name a CSV file with a header row naming the features")
    contract = schema.for_config(ctx.config)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in contract.names if name not in (reader.fieldnames or [])]
        if missing:
            raise PipelineError(
                f"{path} lacks the feature column(s) {', '.join(missing)} ({contract.path.name} names them)"
            )
        rows = list(reader)
    if not rows:
        raise PipelineError(f"{path} holds no rows to score")
    status = ctx.backends.endpoint.status()
    if status is None or not status.healthy:
        raise PipelineError(
            f"endpoint {ctx.backends.endpoint.name} is not serving; run `make deploy` (or `make pipeline`)"
        )
    answers: list[dict[str, Any]] = []
    for start in range(0, len(rows), PREDICT_BATCH):
        lines = smoke_step.csv_lines(rows[start : start + PREDICT_BATCH], contract.names)
        body = ("\n".join(lines) + "\n").encode()
        answers += json.loads(ctx.backends.endpoint.invoke(body, "text/csv", "application/json"))["predictions"]
    output = Path(args.output) if args.output else ctx.config.state_dir / "predictions" / f"{path.stem}-predictions.csv"
    columns = list(answers[0]) if answers else []
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    fields = list(rows[0])
    writer.writerow([*fields, *(f"predicted_{c}" for c in columns)])
    for row, answer in zip(rows, answers, strict=True):
        writer.writerow(
            [*(row[f] for f in fields), *(json.dumps(v) if isinstance(v, dict) else v for v in answer.values())]
        )
    atomic.write_text(output, text.getvalue())  # whole or not at all
    ctx.console.print(f"scored {len(rows)} row(s) with v{status.version}: {output}", highlight=False)
    return 0


def cmd_batch(ctx: Context, args: argparse.Namespace) -> int:
    """Score a whole CSV file with the desired state's version, as a Batch Transform job does."""
    if not args.input:
        raise PipelineError("batch needs INPUT=<csv with a header row naming the features>")
    result = batch_step.run(ctx, Path(args.input), args.output)
    table = Table(show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("batch job", result.job_name)
    table.add_row("model", f"v{result.version} ({ctx.backends.registry.group})")
    table.add_row("rows", f"{result.rows:,}: {result.scored:,} scored, {result.rejected:,} refused")
    table.add_row("time", f"{result.seconds:.2f} s, {result.rows_per_second:,.0f} rows/s")
    if result.peak_memory_mb:
        table.add_row("memory", f"{result.peak_memory_mb:,.0f} MB at most (a mini-batch at a time)")
    for reason, count in result.reasons.items():
        table.add_row("refused", f"{count:,} row(s): {reason}")
    if not result.drift_judged:
        drift = f"not judged: fewer than [monitor].min_rows = {ctx.config.monitor.min_rows} rows"
    elif result.drifted:
        drift = f"[red]found[/] in {', '.join(result.drifted)}"
    else:
        drift = "none found"
    table.add_row("drift", drift)
    for violation in result.violations:
        if violation["check"] != "baseline_drift_check":
            table.add_row("data", f"{violation['feature']}: {escape(violation['description'])}")
    table.add_row("predictions", result.predictions)
    table.add_row("rejects", result.rejects)
    table.add_row("summary", result.summary_file)
    ctx.console.print(table)
    return 0


def cmd_label(ctx: Context, args: argparse.Namespace) -> int:
    """Record ground truth from a CSV with columns inference_id and label (labels that arrived later)."""
    if not args.input:
        raise PipelineError("label needs INPUT=<csv with columns inference_id,label>")
    path = Path(args.input)
    if not path.is_file():
        raise PipelineError(f"{path} does not exist; INPUT names a CSV with columns inference_id,label")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"inference_id", "label"} <= set(reader.fieldnames):
            raise PipelineError(f"{path} needs the columns inference_id and label (it has {reader.fieldnames})")
        labels = [(row["inference_id"], row["label"]) for row in reader if row["inference_id"]]
    if not labels:
        raise PipelineError(f"{path} holds no labels")
    where = monitor_step.record_labels(ctx, labels)
    ctx.console.print(f"recorded {len(labels)} label(s) in {where}; `make monitor` joins them to their requests")
    return 0


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    backends = ctx.backends
    table = Table(title=f"model registry {backends.registry.group}")
    primary = ctx.config.gate.primary_metric
    for column in ("version", "status", primary, "git sha", "created"):
        table.add_column(column)
    for model in backends.registry.versions():
        table.add_row(
            str(model.version),
            model.package.approval_status,
            f"{model.package.metrics.get(primary, float('nan')):.4f}",
            model.package.lineage.get("git_sha", "")[:10],
            model.created_at,
        )
    ctx.console.print(table)
    desired = backends.desired_state.read()
    ctx.console.print(
        f"desired state: {f'v{desired}' if desired is not None else 'no version yet'} ({backends.desired_state.path})",
        highlight=False,
    )
    status = backends.endpoint.status()
    if status is None:
        ctx.console.print(f"endpoint {backends.endpoint.name}: not running")
    else:
        health = "healthy" if status.healthy else "NOT healthy"
        ctx.console.print(f"endpoint {status.name}: v{status.version} at {status.url} ({health})", highlight=False)
    if status is not None and status.detail:
        ctx.console.print(f"[yellow]endpoint:[/] {escape(status.detail)}")
    if status is not None and desired is not None and status.healthy and status.version != desired:
        ctx.console.print(
            f"[yellow]the endpoint serves v{status.version}, the desired state names v{desired}:[/] run `make deploy`"
        )
    return 0


def cmd_stop(ctx: Context, args: argparse.Namespace) -> int:
    stopped = ctx.backends.endpoint.stop()
    ctx.console.print(f"endpoint {ctx.backends.endpoint.name} {'stopped' if stopped else 'was not running'}")
    if ui.stop(ctx.config):
        ctx.console.print("MLflow UI stopped")
    return 0


def cmd_clean(ctx: Context, args: argparse.Namespace) -> int:
    """Stop the endpoint, then delete all local state (under the lock, so no run is cut in half)."""
    if ctx.config.env != "local":
        raise PipelineError("clean deletes local state only; AWS resources are removed with `pulumi destroy`")
    cmd_stop(ctx, args)
    state = ctx.config.state_dir
    for child in sorted(state.iterdir()) if state.exists() else []:
        if child.name != "locks":  # the lock this command holds
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    ctx.console.print(f"deleted the local state in {state}")
    return 0


def cmd_gc(ctx: Context, args: argparse.Namespace) -> int:
    removed = housekeeping.collect(ctx, keep=args.keep)
    ctx.console.print(
        f"removed {removed.job_dirs} job folder(s) and {removed.version_dirs} unpacked model(s), "
        f"{removed.bytes / 1e6:.1f} MB; kept the last {args.keep} and whatever serves"
    )
    return 0


def cmd_registry_check(ctx: Context, args: argparse.Namespace) -> int:
    registry = ctx.backends.registry
    if not isinstance(registry, LocalModelRegistry):
        ctx.console.print(
            f"the {ctx.config.env} registry is SageMaker's model package group {registry.group}: nothing to check here"
        )
        return 0
    check = registry.repair() if args.repair else registry.check()
    missing = sorted(set(check.journal_versions) - set(check.database_versions))
    ctx.console.print(
        f"registry {registry.path}: database {check.database}; {len(check.database_versions)} version(s) in it, "
        f"{len(check.journal_versions)} in the journal {registry.journal}",
        highlight=False,
    )
    if check.healthy:
        ctx.console.print("[green]the registry is whole[/]")
        return 0
    ctx.console.print(
        f"[red]damaged:[/] {len(missing)} registered version(s) missing from the database. "
        "Rebuild it from the journal: `make registry-check REPAIR=1`"
    )
    return 1


COMMANDS: dict[str, Callable[[Context, argparse.Namespace], int]] = {
    "pipeline": cmd_pipeline,
    "track": cmd_track,
    "ui": cmd_ui,
    "data": cmd_data,
    "train": cmd_train,
    "tune": cmd_tune,
    "staleness": cmd_staleness,
    "evaluate": cmd_evaluate,
    "register": cmd_register,
    "promote": cmd_promote,
    "deploy": cmd_deploy,
    "smoke-test": cmd_smoke_test,
    "monitor": cmd_monitor,
    "drift-demo": cmd_drift_demo,
    "quality-demo": cmd_quality_demo,
    "label": cmd_label,
    "infer-schema": cmd_infer_schema,
    "predict": cmd_predict,
    "batch": cmd_batch,
    "promotion-pr": cmd_promotion_pr,
    "promotion-preview": cmd_promotion_preview,
    "stop-jobs": cmd_stop_jobs,
    "verify": cmd_verify,
    "status": cmd_status,
    "stop": cmd_stop,
    "clean": cmd_clean,
    "gc": cmd_gc,
    "registry-check": cmd_registry_check,
    "check-deployable": cmd_check_deployable,
    "prune-endpoints": cmd_prune_endpoints,
}
# Commands that change the registry, the desired state or the endpoint take the environment's lock.
LOCKED = {"pipeline", "train", "register", "promote", "deploy", "verify", "stop", "clean", "gc", "drift-demo",
          "quality-demo", "registry-check", "promotion-pr", "prune-endpoints", "batch"}  # fmt: skip
INTERRUPTED = 130  # what a shell reports for Ctrl-C


def unexpected(ctx: Context | None, error: BaseException, where: str) -> str:
    """A one-line message for an error no step anticipated; the traceback goes to a log file."""
    if isinstance(error, KeyboardInterrupt):
        return f"interrupted during {where}; nothing was left half-written (re-run to continue)"
    state = ctx.config.state_dir if ctx is not None else Path(".mlops")
    log = state / "logs" / f"error-{datetime.now(UTC):%Y%m%d-%H%M%S-%f}.log"
    try:
        atomic.write_text(log, "".join(traceback.format_exception(error)))
        where_logged = f"; the traceback is in {log}"
    except OSError:
        where_logged = ""
    return f"unexpected {type(error).__name__} during {where}: {error}{where_logged}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml", description="Run the ML pipeline or one step.")
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--version", type=int, help="promote: the model version (default: the one just registered)")
    parser.add_argument(
        "--to", choices=("dev", "staging", "prod"), help="promote: the environment whose stack file to edit"
    )
    parser.add_argument("--retrain", action="store_true", help="monitor: run the pipeline when violations are found")
    parser.add_argument("--write", action="store_true", help="tune: write the best values into [train.hyperparameters]")
    parser.add_argument("--repair", action="store_true", help="registry-check: rebuild the database from the journal")
    parser.add_argument("--keep", type=int, default=3, help="gc: how many recent versions and jobs to keep")
    parser.add_argument("--input", help="label: a CSV with columns inference_id and label; predict: rows to score; "
                        "infer-schema: the data file; batch: the file to score; promotion-preview: pulumi preview's output")  # fmt: skip
    parser.add_argument("--output", help="predict, batch: where to write the predictions")
    parser.add_argument("--label", help="infer-schema: the column the model predicts")
    parser.add_argument("--task", help="infer-schema: binary, multiclass or regression (default: guessed)")
    parser.add_argument(
        "--from", dest="from_env", choices=("dev", "staging"), help="promotion-pr: take the version this stack serves"
    )
    parser.add_argument(
        "--open", action="store_true", help="promotion-pr: push the branch, open or update its pull request (gh)"
    )
    args = parser.parse_args(argv)
    console = Console()
    ctx: Context | None = None
    try:
        ctx = make_context(console=console)
        locking = args.command in LOCKED or (args.command == "monitor" and args.retrain)
        with environment_lock(ctx.config.state_dir, ctx.config.env, args.command) if locking else nullcontext():
            return COMMANDS[args.command](ctx, args)
    except PipelineError as exc:
        # Messages name keys such as [data].source: print them literally, never as rich markup.
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        console.print(f"[bold red]stopped:[/] {escape(unexpected(ctx, exc, args.command))}", highlight=False)
        return INTERRUPTED
    except Exception as exc:
        console.print(f"[bold red]error:[/] {escape(unexpected(ctx, exc, args.command))}", highlight=False)
        return 1


if __name__ == "__main__":
    code = main()
    # The process ends here: skip the collector's last pass over pandas and numpy at exit, a tenth
    # of a second of every command (only here: in a longer-lived caller, freezing would keep garbage).
    gc.freeze()
    sys.exit(code)

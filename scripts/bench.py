"""`make bench`: the figures of a freshly baked project, measured, never asserted.

- the local install: `make install` into an empty environment (with the uv cache warm, and with
  an empty one, which downloads from PyPI), its size and package count;
- the cold `make pipeline` (state removed each time), median of several runs, with the steps;
- the floor, timed in the same session: the raw `train.py` in a fresh interpreter plus the
  model server's start until `/ping` answers; the cold pipeline is judged against it;
- the unchanged re-run;
- `make batch` over 1x, 10x and 100x the example data: rows per second and peak memory;
- the generated `make test`, with mypy's cache cold and then warm.

Prints a table with each target beside its figure and writes everything to JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from scripts.bakery import TEMPLATE, Baked, bake

TARGETS = {
    "load_p99_ms": 100.0,
    "local_install_mb": 400.0,
    "cold_pipeline_vs_floor": 1.5,
    "cold_pipeline_seconds": 30.0,
    "unchanged_rerun_ratio": 0.2,
    "make_test_warm_mypy_seconds": 60.0,
    "make_test_cold_mypy_seconds": 120.0,
}


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    samples = [measure() for _ in range(runs)]
    return statistics.median(samples), samples


def timed(baked: Baked, env: dict[str, str], *command: str) -> float:
    started = time.perf_counter()
    baked.run_check(*command, env=env)
    return time.perf_counter() - started


def directory_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def installed_packages(venv: Path) -> int:
    return len(list(venv.glob("lib/python*/site-packages/*.dist-info")))


def measure_install(workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """`make install` of the local path into empty environments: warm uv cache, then an empty cache."""
    figures: dict[str, Any] = {}
    for label, extra in (("warm_cache", {}), ("empty_cache", {"UV_CACHE_DIR": str(workdir / "uv-cache")})):
        project = bake(workdir / label)
        seconds = timed(project, {**env, **extra}, "make", "install")
        venv = project.path / ".venv"
        figures[label] = {
            "seconds": round(seconds, 2),
            "size_mb": round(directory_mb(venv), 1),
            "packages": installed_packages(venv),
        }
    return figures


def measure_tracking(baked: Baked, env: dict[str, str]) -> dict[str, Any]:
    """A cold run with MLflow installed (its background sync on), how long the sync takes after the
    run returns, `make ui` until its URL answers, and what the tracking group adds to the install."""
    tracking_env = {**env, "MLOPS_TRACKING": "on", "MLOPS_UI_PORT": "0"}
    # Paired cold runs in this one environment (every group installed), the sync off and on: what
    # starting the background sync costs the run itself.
    paired: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(3):
        for switch in ("off", "on"):
            baked.run_check("make", "clean", env=env)
            paired[switch].append(timed(baked, {**tracking_env, "MLOPS_TRACKING": switch}, "make", "pipeline"))
            time.sleep(8)  # the sync of the last run ends before the next run starts
    baked.run_check("make", "clean", env=env)
    seconds = timed(baked, tracking_env, "make", "pipeline")
    returned = time.perf_counter()
    run_id = json.loads(baked.read(".mlops/summary.json"))["run_id"]
    status = baked.path / ".mlops" / "mlflow" / "status.json"
    while time.perf_counter() - returned < 300:
        if status.is_file() and run_id in json.loads(status.read_text()).get("logged", []):
            break
        time.sleep(0.1)
    synced = time.perf_counter() - returned
    try:
        ui = timed(baked, tracking_env, "make", "ui")
    finally:
        baked.run("make", "stop", env=env)
    scratch = baked.path.parent / "tracking-group"
    sizes = {}
    for label, groups in (("local", []), ("tracking", ["--group", "tracking"])):
        venv = scratch / label
        subprocess.run([env["UV"], "sync", "--locked", *groups], cwd=baked.path, check=True, capture_output=True,
                       env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)})  # fmt: skip
        sizes[label] = (directory_mb(venv), installed_packages(venv))
    return {
        "cold_pipeline_sync_off_seconds": round(statistics.median(paired["off"]), 2),
        "cold_pipeline_sync_on_seconds": round(statistics.median(paired["on"]), 2),
        "cold_pipeline_seconds": round(seconds, 2),
        "background_sync_seconds": round(synced, 2),
        "make_ui_seconds": round(ui, 2),
        "group_size_mb": round(sizes["tracking"][0] - sizes["local"][0], 1),
        "group_packages": sizes["tracking"][1] - sizes["local"][1],
    }


def floor_once(project: Baked) -> dict[str, float]:
    """A fresh interpreter running the raw train.py, then the model server until /ping answers."""
    job = sorted((project.path / ".mlops" / "jobs").glob("*-train-*"))[-1]
    hyperparameters = json.loads((job / "input" / "config" / "hyperparameters.json").read_text())
    arguments = [item for name, value in hyperparameters.items() for item in (f"--{name}", value)]
    python = str(project.path / ".venv" / "bin" / "python")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        env = {
            **os.environ,
            "SM_MODEL_DIR": str(root / "model"),
            "SM_OUTPUT_DIR": str(root / "output"),
            "SM_CHANNEL_TRAIN": str(job / "input" / "data" / "train"),
            "SM_CHANNEL_SCHEMA": str(job / "input" / "data" / "schema"),
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
        }
        started = time.perf_counter()
        subprocess.run([python, str(project.path / "ml" / "train.py"), *arguments], env=env, check=True,
                       capture_output=True)  # fmt: skip
        train = time.perf_counter() - started
        # The model server as deploy starts it: unpacked model, serving.json, gunicorn until /ping.
        endpoint = root / "endpoint"
        model_dir = endpoint / "model"
        model_dir.mkdir(parents=True)
        with tarfile.open(job / "output" / "model.tar.gz") as archive:
            archive.extractall(model_dir, filter="data")
        (endpoint / "serving.json").write_text(
            json.dumps({"version": 1, "model_uri": "bench", "model_dir": str(model_dir)})
        )
        started = time.perf_counter()
        server = subprocess.Popen(
            [python, "-m", "ml.serving", "serve", "--root", str(endpoint), "--port", "0"],
            cwd=project.path,
            env={**os.environ, "PYTHONPATH": str(project.path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                if server.poll() is not None:
                    raise RuntimeError("the model server exited before it answered /ping")
                try:
                    port = json.loads((endpoint / "server.json").read_text())["port"]
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except (OSError, ValueError, KeyError):
                    pass
                time.sleep(0.01)
            serve = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait()
    return {"train_py": train, "server_start": serve, "total": train + serve}


def endpoint_port(project: Baked) -> int:
    return int(json.loads(project.read(".mlops/endpoint/endpoint.json"))["port"])


def one_row(project: Baked) -> bytes:
    """A row of the example data, features only, as a client would send it."""
    first = project.read("data/breast_cancer.csv").splitlines()[1]
    return ",".join(first.split(",")[:-1]).encode() + b"\n"


def load(
    port: int, body: bytes, requests: int, clients: int, during: Callable[[], None] | None = None
) -> dict[str, Any]:
    """`clients` threads, each on its own keep-alive connection, sending `requests` in all.

    With `during`, it runs once the load is under way (a version switch) and the load goes on
    until it has returned; every request that does not get a 200 counts as dropped.
    """
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    sent = [0]
    switching = threading.Event()
    done = threading.Event()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if (sent[0] >= requests and not switching.is_set()) or done.is_set():
                    return
                sent[0] += 1
            started = time.perf_counter()
            try:
                connection.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
                answer = connection.getresponse()
                answer.read()
                ok = answer.status == 200
            except (OSError, http.client.HTTPException) as error:
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                with lock:
                    errors.append(type(error).__name__)
            elapsed = time.perf_counter() - started
            with lock:
                (latencies.append(elapsed) if ok else errors.append("status"))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    if during is not None:
        switching.set()
    for thread in threads:
        thread.start()
    if during is not None:
        time.sleep(0.5)
        try:
            during()
        finally:
            time.sleep(0.5)
            switching.clear()
            done.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()

    def percentile(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * share))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "seconds": round(wall, 2),
        "per_second": round((len(latencies) + len(errors)) / wall, 1),
        "p50_ms": round(percentile(0.50), 1),
        "p99_ms": round(percentile(0.99), 1),
    }


def measure_batch(project: Baked, env: dict[str, str], directory: Path) -> dict[str, Any]:
    """`make batch` over 1x, 10x and 100x the example data: rows per second and the scoring process's peak memory."""
    lines = project.read("data/breast_cancer.csv").splitlines()
    header, rows = lines[0], lines[1:]
    directory.mkdir(parents=True, exist_ok=True)
    figures = {}
    for times in (1, 10, 100):
        source = directory / f"example-{times}x.csv"
        with source.open("w") as handle:  # written a copy at a time: the file is never whole in memory here
            handle.write(header + "\n")
            for _ in range(times):
                handle.write("\n".join(rows) + "\n")
        wall = timed(project, env, "make", "batch", f"INPUT={source}")
        summary = json.loads((directory / f"example-{times}x.batch.json").read_text())
        figures[f"{times}x"] = {
            "rows": summary["rows"],
            "file_mb": round(source.stat().st_size / 1e6, 1),
            "scoring_seconds": round(summary["seconds"], 2),
            "rows_per_second": round(summary["rows_per_second"]),
            "peak_memory_mb": summary["peak_memory_mb"],
            "make_batch_seconds": round(wall, 2),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("bench.json"))
    parser.add_argument("--workdir", type=Path, default=TEMPLATE / "build" / "bench")
    parser.add_argument("--runs", type=int, default=5, help="runs per timed figure (the median is reported)")
    args = parser.parse_args()
    console = Console()
    env = {"UV": os.environ.get("UV", "uv")}

    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    with console.status("make install of the local path into empty environments"):
        install = measure_install(args.workdir / "install", env)
    baked = bake(args.workdir)
    baked.run_check("make", "install", env=env)

    def cold() -> float:
        baked.run_check("make", "clean", env=env)
        return timed(baked, env, "make", "pipeline")

    try:
        with console.status(f"cold make pipeline, {args.runs} runs"):
            cold_median, cold_samples = median_of(args.runs, cold)
        cold_summary = json.loads(baked.read(".mlops/summary.json"))
        steps = {s["name"]: s["seconds"] for s in cold_summary["steps"]}
        # Inside the evaluation job: what the baselines, the slices and the importance each add.
        evaluation = json.loads((Path(cold_summary["paths"]["report"]) / "evaluation.json").read_text())
        evaluation_parts = evaluation.get("seconds", {})
        with console.status(f"the floor (raw train.py + server start), {args.runs} runs"):
            floors = [floor_once(baked) for _ in range(args.runs)]
        floor = statistics.median(f["total"] for f in floors)
        with console.status(f"unchanged make pipeline, {args.runs} runs"):
            rerun, _ = median_of(args.runs, lambda: timed(baked, env, "make", "pipeline"))
        rerun_summary = json.loads(baked.read(".mlops/summary.json"))
        body = one_row(baked)
        with console.status("load: 2,000 requests from 16 clients"):
            burst = load(endpoint_port(baked), body, requests=2000, clients=16)
        # A second version to switch to, registered by a run with another split.
        # Beside mlops.toml: its relative paths ([data].source, [data].schema) name the same files.
        second = baked.path / "bench-second.toml"
        second.write_text(
            baked.read("mlops.toml")
            .replace("seed = 42", "seed = 7")
            .replace("max_regression = 0.0", "max_regression = 0.5")
            # Whatever the other split makes of the baseline and the slices, it must pass: it is only a
            # second version to switch to.
            .replace("min_gain_over_simple = -0.025", "min_gain_over_simple = -1.0")
            .replace("thresholds = { accuracy = 0.85 }", "thresholds = {}")
            .replace("max_disparity = 0.2", "max_disparity = 1.0")
        )
        switch_env = {**env, "MLOPS_CONFIG": str(second), "MLOPS_HOME": str(baked.path / ".mlops")}
        baked.run_check("make", "pipeline", env=switch_env)  # v2 serves now
        with console.status("load during a version switch (v2 back to v1)"):
            switch = load(
                endpoint_port(baked),
                body,
                requests=0,
                clients=16,
                during=lambda: (
                    baked.run_check("make", "promote", "VERSION=1", env=env),
                    baked.run_check("make", "deploy", env=env),
                ),
            )
        with console.status("make batch over 1x, 10x and 100x the example data"):
            batch = measure_batch(baked, env, args.workdir / "batch")
    finally:
        baked.run("make", "stop", env=env)

    # The generated suite: first with mypy's cache removed, then again with it warm.
    # The environment already holds every group; its install is not timed.
    baked.run_check("make", "install-all", env=env)
    with console.status("tracking: a cold make pipeline with MLflow installed, its background sync, make ui"):
        tracked = measure_tracking(baked, env)
    shutil.rmtree(baked.path / ".mypy_cache", ignore_errors=True)
    with console.status("make test, cold mypy cache"):
        test_cold = timed(baked, env, "make", "test")
    with console.status("make test, warm mypy cache"):
        started = time.perf_counter()
        output = baked.run_check("make", "test", env=env)
        test_warm = time.perf_counter() - started
    passed = next((line for line in reversed(output.splitlines()) if " passed" in line), "")

    figures = {
        "local_install": install,
        "cold_pipeline_seconds": round(cold_median, 2),
        "cold_pipeline_samples": [round(s, 2) for s in cold_samples],
        "cold_pipeline_steps_seconds": steps,
        "evaluation_parts_seconds": evaluation_parts,
        "floor_seconds": round(floor, 2),
        "floor_parts_seconds": {
            k: round(statistics.median(f[k] for f in floors), 2) for k in ("train_py", "server_start")
        },
        "cold_pipeline_vs_floor": round(cold_median / floor, 2),
        "unchanged_rerun_seconds": round(rerun, 2),
        "unchanged_rerun_ratio": round(rerun / cold_median, 3),
        "rerun_reused_model": bool(rerun_summary["model"].get("reused")),
        "make_test_cold_mypy_seconds": round(test_cold, 1),
        "make_test_warm_mypy_seconds": round(test_warm, 1),
        "make_test_result": passed.strip("= "),
        "load_burst": burst,
        "load_during_version_switch": switch,
        "batch": batch,
        "tracking": tracked,
    }
    report = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "runs_per_figure": args.runs,
        "targets": TARGETS,
        "figures": figures,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    table = Table(
        title=f"make bench ({os.cpu_count()} CPUs, Python {platform.python_version()}, median of {args.runs})"
    )
    for column in ("measurement", "figure", "target"):
        table.add_column(column)
    warm, empty = install["warm_cache"], install["empty_cache"]
    table.add_row(
        "local install (make install)",
        f"{warm['size_mb']:.0f} MB, {warm['packages']} packages; {warm['seconds']:.1f} s (warm uv cache), "
        f"{empty['seconds']:.1f} s (empty cache)",
        f"<= {TARGETS['local_install_mb']:.0f} MB",
    )
    table.add_row("cold make pipeline", f"{cold_median:.2f} s", f"<= {TARGETS['cold_pipeline_vs_floor']}x the floor")
    for name, seconds in steps.items():
        table.add_row(f"  step: {name}", f"{seconds:.2f} s", "")
    for name, seconds in evaluation_parts.items():
        table.add_row(f"    in the evaluation job: {name}", f"{seconds:.2f} s", "")
    parts = figures["floor_parts_seconds"]
    table.add_row(
        "floor: raw train.py + server start",
        f"{floor:.2f} s ({parts['train_py']:.2f} + {parts['server_start']:.2f})",
        "",
    )
    table.add_row("cold pipeline / floor", f"{cold_median / floor:.2f}x", f"<= {TARGETS['cold_pipeline_vs_floor']}x")
    table.add_row("unchanged re-run", f"{rerun:.2f} s ({rerun / cold_median:.0%} of cold)", "<= 20% of cold")
    table.add_row(
        "generated make test, cold mypy", f"{test_cold:.1f} s", f"<= {TARGETS['make_test_cold_mypy_seconds']:.0f} s"
    )
    table.add_row(
        "generated make test, warm mypy", f"{test_warm:.1f} s", f"<= {TARGETS['make_test_warm_mypy_seconds']:.0f} s"
    )
    table.add_row("  tests", figures["make_test_result"], "")
    table.add_row(
        "load: 2,000 requests, 16 clients",
        f"{burst['errors']} errors; p50 {burst['p50_ms']} ms, p99 {burst['p99_ms']} ms; {burst['per_second']}/s",
        "0 errors, p99 < 100 ms",
    )
    table.add_row(
        "load during a version switch",
        f"{switch['requests']} requests, {switch['errors']} dropped; p99 {switch['p99_ms']} ms",
        "0 dropped",
    )
    for size, run in batch.items():
        table.add_row(
            f"make batch, {size} the example ({run['rows']:,} rows, {run['file_mb']} MB)",
            f"{run['rows_per_second']:,} rows/s ({run['scoring_seconds']:.2f} s scoring, "
            f"{run['make_batch_seconds']:.2f} s in all); peak {run['peak_memory_mb']:.0f} MB",
            "peak set by one mini-batch, not the file",
        )
    table.add_row(
        "cold make pipeline, MLflow installed: sync off / on",
        f"{tracked['cold_pipeline_sync_off_seconds']:.2f} s / {tracked['cold_pipeline_sync_on_seconds']:.2f} s "
        f"(median of 3 paired); then the background sync, {tracked['background_sync_seconds']:.1f} s",
        "the run waits for no MLflow work",
    )
    table.add_row("make ui until its URL answers", f"{tracked['make_ui_seconds']:.1f} s", "")
    table.add_row(
        "the tracking group's install",
        f"+{tracked['group_size_mb']:.0f} MB, +{tracked['group_packages']} packages",
        "outside the local path",
    )
    console.print(table)
    console.print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())

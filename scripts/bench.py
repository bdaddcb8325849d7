"""`make bench`: the figures of a freshly baked project, measured, never asserted.

- the local install: `make install` into an empty environment (with the uv cache warm, and with
  an empty one, which downloads from PyPI), its size and package count;
- the cold `make pipeline` (state removed each time), median of several runs, with the steps;
- the floor, timed in the same session: the raw `train.py` in a fresh interpreter plus the
  model server's start until `/ping` answers; the cold pipeline is judged against it;
- the unchanged re-run;
- the generated `make test`, with mypy's cache cold and then warm.

Prints a table with each target beside its figure and writes everything to JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
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
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
        }
        started = time.perf_counter()
        subprocess.run([python, str(project.path / "ml" / "train.py"), *arguments], env=env, check=True,
                       capture_output=True)  # fmt: skip
        train = time.perf_counter() - started
        ready = root / "ready.json"
        started = time.perf_counter()
        server = subprocess.Popen(
            [python, "-m", "ml.serving", "--model", str(job / "output" / "model.tar.gz"), "--workdir",
             str(root / "serve"), "--ready-file", str(ready)],
            cwd=project.path,
            env={**os.environ, "PYTHONPATH": str(project.path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            while True:
                if server.poll() is not None:
                    raise RuntimeError("the model server exited before it answered /ping")
                if ready.exists():
                    try:
                        port = json.loads(ready.read_text())["port"]
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
        steps = {s["name"]: s["seconds"] for s in json.loads(baked.read(".mlops/summary.json"))["steps"]}
        with console.status(f"the floor (raw train.py + server start), {args.runs} runs"):
            floors = [floor_once(baked) for _ in range(args.runs)]
        floor = statistics.median(f["total"] for f in floors)
        with console.status(f"unchanged make pipeline, {args.runs} runs"):
            rerun, _ = median_of(args.runs, lambda: timed(baked, env, "make", "pipeline"))
        rerun_summary = json.loads(baked.read(".mlops/summary.json"))
    finally:
        baked.run("make", "stop", env=env)

    # The generated suite: first with mypy's cache removed, then again with it warm.
    # The environment already holds every group; its install is not timed.
    baked.run_check("make", "install-all", env=env)
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
    console.print(table)
    console.print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())

"""`make bench`: time a freshly baked project's cold pipeline, unchanged re-run and test suite.

Prints a table and writes the figures as JSON. Timings are measured, never asserted:
the targets are printed beside them for a person to judge.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from scripts.bakery import TEMPLATE, Baked, bake

TARGETS = {"cold_pipeline": "<= 30 s", "unchanged_rerun": "<= 20% of cold"}


def timed(baked: Baked, target: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    baked.run_check("make", target, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("bench.json"))
    parser.add_argument("--workdir", type=Path, default=TEMPLATE / "build" / "bench")
    args = parser.parse_args()
    console = Console()
    env = {"UV": os.environ.get("UV", "uv")}

    shutil.rmtree(args.workdir, ignore_errors=True)
    baked = bake(args.workdir)
    with console.status("make install (not timed)"):
        baked.run_check("make", "install", env=env)
    try:
        with console.status("cold make pipeline"):
            cold = timed(baked, "pipeline", env)
        steps = {s["name"]: s["seconds"] for s in json.loads(baked.read(".mlops/summary.json"))["steps"]}
        with console.status("unchanged make pipeline"):
            rerun = timed(baked, "pipeline", env)
        rerun_summary = json.loads(baked.read(".mlops/summary.json"))
    finally:
        baked.run("make", "stop", env=env)
    with console.status("make test"):
        tests = timed(baked, "test", env)

    figures = {
        "cold_pipeline_seconds": round(cold, 2),
        "unchanged_rerun_seconds": round(rerun, 2),
        "unchanged_rerun_ratio": round(rerun / cold, 3),
        "generated_make_test_seconds": round(tests, 2),
        "cold_pipeline_steps_seconds": steps,
        "rerun_reused_model": bool(rerun_summary["model"].get("reused")),
    }
    report = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "targets": TARGETS,
        "figures": figures,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    table = Table(title=f"make bench ({os.cpu_count()} CPUs, Python {platform.python_version()})")
    for column in ("measurement", "seconds", "target"):
        table.add_column(column)
    table.add_row("cold make pipeline", f"{cold:.1f}", TARGETS["cold_pipeline"])
    table.add_row("unchanged re-run", f"{rerun:.1f} ({rerun / cold:.0%} of cold)", TARGETS["unchanged_rerun"])
    table.add_row("generated make test", f"{tests:.1f}", "")
    for name, seconds in steps.items():
        table.add_row(f"  cold step: {name}", f"{seconds:.2f}", "")
    console.print(table)
    console.print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

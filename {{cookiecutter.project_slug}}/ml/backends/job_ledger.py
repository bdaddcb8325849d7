"""The SageMaker jobs a workspace started, so that a cancelled CI job can stop them.

SageMaker keeps a training or processing job running when the process that created it goes
away: a cancelled (or timed-out) GitHub Actions job leaves them billing until their max
runtime. The AWS job runner records every job here as soon as SageMaker accepts it, and
`make stop-jobs`, the `if: cancelled()` step of the jobs that train and evaluate, stops each one
still in progress.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

JobKind = Literal["training", "processing"]


class JobLedger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def started(self, kind: JobKind, name: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:  # one line per job: a kill loses none before it
            handle.write(json.dumps({"kind": kind, "name": name}) + "\n")

    def entries(self) -> list[tuple[JobKind, str]]:
        if not self.path.exists():
            return []
        lines = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [(line["kind"], line["name"]) for line in lines]

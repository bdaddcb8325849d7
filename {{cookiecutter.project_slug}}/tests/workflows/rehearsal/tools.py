"""GitHub's workflow parser and expression evaluator (npm: @actions/workflow-parser, @actions/expressions),
run by node from tools/rehearsal and asked over a pipe: one process per rehearsal."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.config import PROJECT_ROOT

TOOLS = PROJECT_ROOT / "tools" / "rehearsal"


class ExpressionError(Exception):
    pass


@dataclass(frozen=True)
class ParsedWorkflow:
    path: Path
    tree: dict[str, Any]
    # Per job: `if` as GitHub's converter writes it, `needs`, and each step's `if`.
    jobs: dict[str, dict[str, Any]]


class WorkflowTools:
    def __init__(self) -> None:
        assert shutil.which("node") and shutil.which("npm"), "the rehearsal needs Node.js and npm on PATH"
        installed = subprocess.run(
            ["make", "--no-print-directory", "rehearsal-tools"], cwd=PROJECT_ROOT, capture_output=True, text=True
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
        self._process = subprocess.Popen(
            ["node", "--import", "./json-modules.mjs", "workflows.mjs"],
            cwd=TOOLS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._parsed: dict[Path, ParsedWorkflow] = {}
        self._lock = threading.Lock()  # one request at a time on the pipe (jobs run side by side)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            reply: dict[str, Any] = json.loads(self._process.stdout.readline())
        if not reply["ok"]:
            raise ExpressionError(f"{request['op']}: {reply['error']}")
        return reply

    def load(self, path: Path) -> ParsedWorkflow:
        if path not in self._parsed:
            reply = self._ask({"op": "load", "file": str(path)})
            if reply["errors"]:
                raise ExpressionError(f"{path.name}: GitHub's parser refuses it: {'; '.join(reply['errors'])}")
            self._parsed[path] = ParsedWorkflow(path, reply["tree"], reply["jobs"])
        return self._parsed[path]

    def evaluate(
        self, expression: str, contexts: dict[str, Any], status: dict[str, bool] | None = None, workspace: str = "."
    ) -> tuple[Any, bool]:
        """The expression's value and whether GitHub reads it as true."""
        reply = self._ask(
            {"op": "eval", "expr": expression, "contexts": contexts, "status": status or {}, "workspace": workspace}
        )
        return reply["value"], bool(reply["truthy"])

    def matches(self, patterns: list[str], values: list[str]) -> bool:
        return bool(self._ask({"op": "match", "patterns": patterns, "values": values})["value"])

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=10)

"""What every step receives: the config, the backends, a console, and the run's state."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from ml import atomic
from ml.backends import Backends, make_backends
from ml.backends.warm import Job
from ml.config import PROJECT_ROOT, Config, load_config
from ml.errors import PipelineError

T = TypeVar("T")


@dataclass
class Context:
    config: Config
    _backends: Backends | None
    console: Console
    # Work that does not block the next step (drawing plots), awaited by wait_background().
    _background: list[tuple[str, Job, Path]] = field(default_factory=list, repr=False)

    def prepare_background(self, module: str) -> None:
        """Get ready for a later `in_background(module)`: the fork server it comes from starts now."""
        self.backends.forks.prepare()

    def in_background(self, name: str, module: str, arguments: list[str], log: Path) -> None:
        """Run `python -m <module> <arguments>` from the project root while the caller goes on."""
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        job = self.backends.forks.start(
            module, arguments, cwd=PROJECT_ROOT, env=_background_env(), log=log, module=True
        )
        self._background.append((name, job, log))

    def wait_background(self) -> None:
        """Wait for every background task; any that failed stops the run, with the end of its log."""
        failures = []
        while self._background:
            name, job, log = self._background.pop(0)
            code = job.wait()
            if code != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                failures.append(f"{name} failed (exit {code}):\n{tail}\nFull log: {log}")
        if failures:
            raise PipelineError("\n".join(failures))

    @property
    def backends(self) -> Backends:
        """Built on first use: a command that needs no backend (say, one that finds nothing to check
        in a stack file) never needs stack outputs or credentials."""
        if self._backends is None:
            self._backends = make_backends(self.config)
        return self._backends

    @property
    def steps_dir(self) -> Path:
        """Step results, so `make train` can pick up where `make data` left off."""
        return self.config.state_dir / "steps" / self.config.env

    @contextmanager
    def progress(self, message: str) -> Iterator[None]:
        # A spinner on a terminal; a single line in CI logs, where spinners are noise.
        if self.console.is_terminal:
            with self.console.status(message):
                yield
        else:
            self.console.print(f"… {message}")
            yield

    def save(self, step: str, result: Any) -> None:
        payload = asdict(result) if is_dataclass(result) and not isinstance(result, type) else result
        atomic.write_text(self.steps_dir / f"{step}.json", json.dumps(payload, indent=2, default=str))

    def load(self, step: str, kind: type[T]) -> T:
        path = self.steps_dir / f"{step}.json"
        if not path.exists():
            raise PipelineError(
                f"the {step} step has not run in environment {self.config.env!r} "
                f"(no {path}); run `make {step}` or `make pipeline` first"
            )
        return kind(**json.loads(path.read_text()))


def _background_env() -> dict[str, str]:
    # matplotlib draws to files: no display, whatever the machine has.
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "MPLBACKEND": "Agg"}


def make_context(config: Config | None = None, console: Console | None = None) -> Context:
    return Context(config=config or load_config(), _backends=None, console=console or Console())

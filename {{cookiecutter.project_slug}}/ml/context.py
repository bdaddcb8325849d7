"""What every step receives: the config, the backends, a console, and the run's state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from ml import atomic
from ml.backends import Backends, make_backends
from ml.config import Config, load_config
from ml.errors import PipelineError

T = TypeVar("T")


@dataclass
class Context:
    config: Config
    backends: Backends
    console: Console

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


def make_context(config: Config | None = None, console: Console | None = None) -> Context:
    config = config or load_config()
    return Context(config=config, backends=make_backends(config), console=console or Console())

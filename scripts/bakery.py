"""Bake the template: one helper for the tests, `make demo`, `make bench` and `make lock`.

Defaults come from cookiecutter.json through cookiecutter's own rendering, never copied.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config

TEMPLATE = Path(__file__).resolve().parents[1]
# `${{ ... }}` is a GitHub Actions expression the workflows need; any other `{{` or `{%` is a leftover.
JINJA = re.compile(r"(?<!\$){{|{%")


def default_answers(**overrides: Any) -> dict[str, Any]:
    """The answers `cookiecutter --no-input` would use, with overrides applied and rendered."""
    context = generate_context(TEMPLATE / "cookiecutter.json", extra_context=overrides)
    return dict(prompt_for_config(context, no_input=True))


@dataclass(frozen=True)
class Baked:
    path: Path
    answers: dict[str, Any]

    def has_file(self, relative: str) -> bool:
        return (self.path / relative).is_file()

    def read(self, relative: str) -> str:
        return (self.path / relative).read_text(encoding="utf-8")

    def files(self) -> list[Path]:
        skip = {".git", ".venv", ".mlops", ".tools", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
        return sorted(
            p for p in self.path.rglob("*") if p.is_file() and not skip.intersection(p.relative_to(self.path).parts)
        )

    def relative_files(self) -> set[str]:
        return {path.relative_to(self.path).as_posix() for path in self.files()}

    def python_unlike_the_template(self) -> list[str]:
        """The project's .py files whose bytes differ from the template's (or that it lacks)."""
        source = TEMPLATE / "{{cookiecutter.project_slug}}"
        return [
            path.relative_to(self.path).as_posix()
            for path in self.files()
            if path.suffix == ".py"
            and (
                not (source / path.relative_to(self.path)).is_file()
                or path.read_bytes() != (source / path.relative_to(self.path)).read_bytes()
            )
        ]

    def stack_config(self, env: str) -> dict[str, Any]:
        """`config:` of infra/Pulumi.<env>.yaml, with the project's key prefix removed."""
        import yaml

        config = yaml.safe_load(self.read(f"infra/Pulumi.{env}.yaml"))["config"]
        prefix = self.answers["__resource_prefix"]
        return {key.removeprefix(f"{prefix}:"): value for key, value in config.items()}

    def leftover_jinja(self) -> list[str]:
        """Text files still holding template syntax (PNG bytes may spell anything, so binaries are skipped)."""
        return [
            path.relative_to(self.path).as_posix()
            for path in self.files()
            if b"\0" not in (data := path.read_bytes()) and JINJA.search(data.decode("utf-8", errors="replace"))
        ]

    def run(
        self, *command: str, env: dict[str, str] | None = None, timeout: float = 1800
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=self.path,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run_check(self, *command: str, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
        """Run command in the baked project; fail with its whole output if it fails."""
        result = self.run(*command, env=env, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode} in {self.path}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            )
        return result.stdout


def bake(output_dir: Path, overwrite: bool = False, **answers: Any) -> Baked:
    path = cookiecutter(
        str(TEMPLATE),
        no_input=True,
        extra_context=answers,
        output_dir=str(output_dir),
        overwrite_if_exists=overwrite,
    )
    return Baked(Path(path), default_answers(**answers))

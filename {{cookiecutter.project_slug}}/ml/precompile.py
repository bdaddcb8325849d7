"""Compile to bytecode the installed modules this project's processes import, and only those.

A Python that finds no bytecode compiles every module it imports, on every start: about a
second for pandas and scikit-learn in each of the four processes of a pipeline run. Many
machines (and CI images) set PYTHONDONTWRITEBYTECODE, so nothing is ever cached, and uv
does not compile at install. Compiling everything (`uv sync --compile-bytecode`) would add
about 120 MB to the local install, mostly for test suites and modules nothing here imports.
So `make install` runs this: it imports what the pipeline, the jobs and the model server
import, in a child process that writes nothing, then compiles exactly the installed files
those imports loaded. Project files are left alone: they are small, and yours.

Run as `python -m ml.precompile` (the Makefile does, after each `uv sync`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import py_compile
import subprocess
import sys
import sysconfig
from pathlib import Path

from ml.backends.warm import imports_of
from ml.config import PROJECT_ROOT
from ml.lineage import model_code_files

# The modules each process of the project starts from. Missing optional groups (the AWS
# libraries, Pulumi) are skipped: only what is installed is compiled.
ENTRY_MODULES = (
    "ml.__main__",
    "ml.pipeline",
    "ml.plots",
    "ml.validation",
    "ml.monitor",
    "ml.serving",
    "ml.backends.s3_artifacts",
    "ml.backends.sagemaker_jobs",
    "ml.backends.sagemaker_registry",
    "ml.backends.sagemaker_endpoint",
    "infra.program",
    "infra.preview_offline",
    # Loaded lazily at run time: writing CSV files and PNG plots.
    "pandas.io.formats.csvs",
    "matplotlib.backends.backend_agg",
)


def _imported_files(modules: list[str]) -> list[str]:
    """In this process: import modules, return the source files of every module loaded."""
    for name in modules:
        # An optional group that is not installed, or a module that needs more than an import.
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    files = (getattr(module, "__file__", None) for module in list(sys.modules.values()))
    return sorted(str(name) for name in files if isinstance(name, str) and name.endswith(".py"))


def compile_installed(files: list[str]) -> int:
    """Write the bytecode of the files that live in the environment's site-packages."""
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    platlib = Path(sysconfig.get_paths()["platlib"]).resolve()
    compiled = 0
    for name in files:
        path = Path(name).resolve()
        if not (path.is_relative_to(site) or path.is_relative_to(platlib)):
            continue
        target = Path(importlib.util.cache_from_source(str(path)))
        if target.exists() and target.stat().st_mtime >= path.stat().st_mtime:
            continue
        try:
            py_compile.compile(str(path), cfile=str(target), doraise=True)
        except (py_compile.PyCompileError, OSError):
            continue  # a file Python cannot compile is compiled (or fails) when imported, as before
        compiled += 1
    return compiled


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args == ["--list"]:
        # The child: report what the imports loaded, write nothing.
        modules = [*ENTRY_MODULES, *imports_of(model_code_files())]
        print(json.dumps(_imported_files(modules)))
        return 0
    result = subprocess.run(
        [sys.executable, "-m", "ml.precompile", "--list"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(f"precompile: listing imports failed; nothing compiled\n{result.stderr}", file=sys.stderr)
        return 0  # slower starts, never a failed install
    files = json.loads(result.stdout.strip().splitlines()[-1])
    count = compile_installed(files)
    print(f"bytecode compiled for {count} installed modules the project imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())

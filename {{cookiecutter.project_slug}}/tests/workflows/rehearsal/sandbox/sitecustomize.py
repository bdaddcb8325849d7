"""On PYTHONPATH only inside the rehearsal's sandbox: MLOPS_ENV=dev|staging|prod reaches the rehearsal's
account (rehearsal_cloud.py) instead of AWS; MLOPS_ENV=local is untouched.

Python imports this module at start-up, before the job's own directory is on sys.path, so it
cannot import ml yet: it waits for ml.backends to be imported, then swaps make_backends, before
any importer binds the name.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any


class _SwapBackends(importlib.abc.MetaPathFinder):
    def find_spec(
        self, name: str, path: Any, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "ml.backends":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            chosen = module.make_backends

            def make_backends(config: Any) -> Any:
                if config.env == "local":
                    return chosen(config)
                if TYPE_CHECKING:
                    from tests.workflows.rehearsal.sandbox import rehearsal_cloud
                else:
                    import rehearsal_cloud  # beside this file, on the sandbox's PYTHONPATH

                return rehearsal_cloud.backends(config)

            module.__dict__["make_backends"] = make_backends

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, _SwapBackends())

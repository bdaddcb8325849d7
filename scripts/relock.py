"""Re-resolve the generated project's uv.lock and write it back into the template.

uv.lock names the project, so the name is put back as the Jinja variable it was baked from.
Run after changing the generated pyproject.toml: `make lock`.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from scripts.bakery import TEMPLATE, bake

LOCK = TEMPLATE / "{{cookiecutter.project_slug}}" / "uv.lock"
PLACEHOLDER = "{{ cookiecutter.__resource_prefix }}"


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        baked = bake(Path(scratch))
        subprocess.run([os.environ.get("UV", "uv"), "lock"], cwd=baked.path, check=True)
        name = baked.answers["__resource_prefix"]
        text = (baked.path / "uv.lock").read_text()
        pattern = re.compile(rf'^name = "{re.escape(name)}"$', re.MULTILINE)
        if len(pattern.findall(text)) != 1:
            raise SystemExit(f"expected exactly one package named {name!r} in the new uv.lock")
        LOCK.write_text(pattern.sub(f'name = "{PLACEHOLDER}"', text))
    print(f"wrote {LOCK}")


if __name__ == "__main__":
    main()

"""Jinja filters for values rendered into TOML and YAML (cookiecutter's local extensions).

cookiecutter puts the template's root on sys.path while it renders (cruft does the same), and
`_extensions` in cookiecutter.json loads this module. The hook has already refused control and
unassigned characters, so a JSON string is valid as written in both formats.
"""

from __future__ import annotations

import json

from cookiecutter.utils import simple_filter


@simple_filter
def quoted(value: object) -> str:
    """`value` as one double-quoted string that TOML (basic string) and YAML (double-quoted
    scalar) both read back unchanged: only `"` and `\\` are escaped. ensure_ascii=False because
    JSON's \\ud83d\\ude80 surrogate pairs are not Unicode scalar values, which TOML refuses."""
    return json.dumps(str(value), ensure_ascii=False)

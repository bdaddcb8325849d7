"""README.md's "GitHub set-up, once", read as the rehearsal's GitHub settings.

The rehearsal configures its GitHub from what the README tells a person to do, so the two cannot
drift apart: a README step that is missing or wrong fails the rehearsal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Environment:
    name: str
    stack: str
    branches: tuple[str, ...] | None  # None: all branches
    reviewers: bool
    role_variable: str
    role_output: str


@dataclass(frozen=True)
class SetupGuide:
    environments: dict[str, Environment]
    common_variables: tuple[str, ...]
    repository_variables: tuple[str, ...]
    repository_secrets: tuple[str, ...]
    app_permissions: dict[str, str]
    required_checks: tuple[str, ...]
    actions_can_create_prs: bool
    dispatch_variable: tuple[str, str] | None = field(default=None)  # the variable that makes prod wait for a dispatch


def section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n### ", start + len(title))
    return text[start : end if end > 0 else len(text)]


def read(readme: Path) -> SetupGuide:
    text = readme.read_text()
    setup = section(text, "### GitHub set-up, once")
    plans = section(text, "### Required reviewers and GitHub plans")
    environments = {}
    for row in re.findall(r"^\s*\|\s*`([a-z-]+)`\s*\|(.+)\|\s*$", setup, re.MULTILINE):
        name, rest = row
        cells = [c.strip() for c in rest.split("|")]
        stack, branches, reviewers, role = cells
        variable, output = re.match(r"`([A-Z_]+)` = `pulumi stack output (\w+) --stack \w+`", role).groups()  # type: ignore[union-attr]
        environments[name] = Environment(
            name,
            stack,
            None if branches == "all branches" else tuple(re.findall(r"`([^`]+)`", branches)),
            reviewers != "none",
            variable,
            output,
        )
    common = re.search(r"Every environment also gets (.+?)\.\n", setup, re.DOTALL)
    permissions = re.search(r"Repository permissions: (.+?)\.", setup, re.DOTALL)
    checks = re.search(r"require these status checks:(.+?)\.\n", setup, re.DOTALL)
    assert common and permissions and checks, "README.md's GitHub set-up lost a step the rehearsal follows"
    levels = {"Read and write": "write", "Read-only": "read"}
    app_permissions = {
        name.strip().lower().replace(" ", "-"): levels[level]
        for name, level in re.findall(r"([A-Za-z ]+): (Read and write|Read-only)", permissions.group(1))
    }
    dispatch = re.search(r"variable `([A-Z_]+)` to `(\w+)`", plans)
    return SetupGuide(
        environments=environments,
        common_variables=tuple(re.findall(r"`([A-Z_]+)` =", common.group(1))),
        repository_variables=tuple(re.findall(r"repository variable\s+`([A-Z_]+)`", setup)),
        repository_secrets=tuple(re.findall(r"repository secret\s+`([A-Z_]+)`", setup)),
        app_permissions=app_permissions,
        required_checks=tuple(re.findall(r"`([^`]+)`", checks.group(1))),
        actions_can_create_prs=bool(
            re.search(r'tick\s+"Allow GitHub Actions to create and approve pull requests"', setup)
        ),
        dispatch_variable=dispatch.groups() if dispatch else None,  # type: ignore[arg-type]
    )

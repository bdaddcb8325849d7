"""The bake matrix: every combination of the choice answers cookiecutter.json offers.

A choice is an answer whose value in cookiecutter.json is a list; its first item is the
default. Adding a choice or an option there adds its combinations to the matrix, with no
list to keep in step by hand. `python -m scripts.matrix` prints the combinations, and
`python -m scripts.matrix --manifest` re-records the file set a baked project must have.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from scripts.bakery import TEMPLATE, bake

MANIFEST = TEMPLATE / "tests" / "baked_files.txt"


def choices() -> dict[str, list[str]]:
    spec = json.loads((TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))
    return {key: value for key, value in spec.items() if isinstance(value, list) and not key.startswith("_")}


@dataclass(frozen=True)
class Combination:
    answers: tuple[tuple[str, str], ...]
    is_default: bool

    @property
    def id(self) -> str:
        # `:` and `+` are legal in `pytest -k` expressions, so one combination can be picked by its id.
        return "+".join(f"{key}:{value}" for key, value in self.answers)

    def as_answers(self) -> dict[str, str]:
        return dict(self.answers)


def combinations() -> list[Combination]:
    options = choices()
    keys = list(options)
    return [
        Combination(
            answers=tuple(zip(keys, values, strict=True)),
            is_default=all(value == options[key][0] for key, value in zip(keys, values, strict=True)),
        )
        for values in itertools.product(*options.values())
    ]


def expected_files() -> set[str]:
    """The files every combination must produce: one checked-in list, one path per line."""
    lines = MANIFEST.read_text(encoding="utf-8").splitlines()
    return {line for line in lines if line and not line.startswith("#")}


def write_manifest() -> set[str]:
    """Re-record the manifest from a default bake (`make manifest`), after adding or removing a file."""
    with tempfile.TemporaryDirectory() as scratch:
        files = bake(Path(scratch)).relative_files()
    header = (
        "# Every file a freshly baked project holds, for every combination of answers.\n"
        "# tests/test_matrix.py compares each bake with this list. Re-record it with `make manifest`.\n"
    )
    MANIFEST.write_text(header + "\n".join(sorted(files)) + "\n", encoding="utf-8")
    return files


@dataclass
class MatrixTimes:
    """Seconds per combination, summed over its tests' setup (the bake), call and teardown, and the
    slowest tests of the whole suite (the own-data projects, container parity), where the time goes.

    Under xdist both workers run at once, so the sums add up to more than the wall time.
    """

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    tests: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, nodeid: str, duration: float) -> None:
        # `--dist loadgroup` appends "@<group>" to a grouped test's id (a parameter's "@" ends before "]").
        head, at, group = nodeid.rpartition("@")
        if at and "]" not in group and "::" not in group:
            nodeid = head
        self.tests[nodeid] += duration
        path, _, name = nodeid.partition("::")
        if Path(path).name == "test_matrix.py" and name.endswith("]"):
            self.seconds[name[name.index("[") + 1 : -1]] += duration

    def slowest_tests(self, count: int = 10) -> list[tuple[str, float]]:
        return sorted(self.tests.items(), key=lambda item: -item[1])[:count]

    def slowest(self) -> str | None:
        return max(self.seconds, key=self.seconds.__getitem__) if self.seconds else None

    def render(self, wall: float) -> list[str]:
        table = Table(title=f"bake matrix: seconds per combination (suite wall time {wall:.0f} s)")
        table.add_column("combination", no_wrap=True)  # an id is copied into `pytest -k`: keep it whole
        table.add_column("seconds", justify="right")
        slowest = self.slowest()
        for combination, seconds in sorted(self.seconds.items(), key=lambda item: -item[1]):
            table.add_row(combination + ("  (slowest)" if combination == slowest else ""), f"{seconds:.1f}")
        width = max((len(key) for key in [*self.seconds, *self.tests]), default=0) + 40
        console = Console(width=max(120, width), record=True, file=io.StringIO())
        if self.seconds:
            console.print(table)
        tests = Table(title="slowest tests (setup, call and teardown)")
        tests.add_column("test", no_wrap=True)
        tests.add_column("seconds", justify="right")
        for nodeid, seconds in self.slowest_tests():
            tests.add_row(Text(nodeid), f"{seconds:.1f}")  # Text: "[wine]" is an id, not Rich markup
        console.print(tests)
        return console.export_text().splitlines()

    def write(self, path: Path, *, selection: str, exit_status: int, wall: float) -> None:
        record = {
            "selection": selection,
            "exit_status": exit_status,
            "wall_seconds": round(wall, 1),
            "slowest": self.slowest(),
            "combinations": {key: round(value, 1) for key, value in self.seconds.items()},
            "slowest_tests": {key: round(value, 1) for key, value in self.slowest_tests()},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", action="store_true", help=f"re-record {MANIFEST.relative_to(TEMPLATE)}")
    if parser.parse_args().manifest:
        print(f"{len(write_manifest())} files recorded in {MANIFEST.relative_to(TEMPLATE)}")
        return
    for combination in combinations():
        print(combination.id + ("  (default)" if combination.is_default else ""))


if __name__ == "__main__":
    main()

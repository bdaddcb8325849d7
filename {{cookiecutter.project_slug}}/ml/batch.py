"""Batch Transform, locally: what SageMaker's transform agent does with the model's container.

A Batch Transform job starts the model's container, splits each input file by line (SplitType
Line), packs whole lines into mini-batches of at most MaxPayloadInMB (BatchStrategy MultiRecord),
sends each to the handlers, and writes one answer line per input line (AssembleWith Line), joined
to its input line (JoinSource Input) and cut down by OutputFilter. This process does the same with
the model's own code/inference.py, loaded as ml/serving.py's workers load it, and with
MLOPS_REJECT_ROWS=1 as the transform job sets it, so a row the schema refuses costs that row only.

What differs, and why: a local file has a header row (the data set's own format), so the header is
checked against the schema and the features are taken from it in the schema's order (the
transform job's InputFilter does this for headerless S3 files). Refused rows go to a rejects file
with their reason rather than into the predictions. The input's rows also go through the monitor's
drift checks (ml/monitor.py), the same counts and tests as endpoint traffic.

Memory follows the mini-batch, not the file: lines are read, scored and written a mini-batch at a
time. `python -m ml.batch --help` lists the arguments; ml/steps/batch.py starts it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import re
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ml import monitor
from ml.batch_request import REJECT_ROWS

CSV = "text/csv"
MAX_REASONS = 20  # distinct reasons kept in the summary


class BatchInputError(ValueError):
    """The input cannot be scored at all: no header, a header without the schema's features."""


def output_filter(expression: str) -> Any:
    """OutputFilter's JSONPath over the joined row as a function of the row: "$", or "$[i,j,a:b,...]"."""
    match = re.fullmatch(r"\$(?:\[(.*)\])?", expression.strip())
    if match is None:
        raise ValueError(f"output_filter {expression!r} is not a JSONPath of indices and slices, e.g. $[0,-2:]")
    if match.group(1) is None:
        return lambda row: row
    parts = [part.strip() for part in match.group(1).split(",")]
    selectors: list[int | slice] = []
    for part in parts:
        if re.fullmatch(r"-?\d+", part):
            selectors.append(int(part))
        elif re.fullmatch(r"(-?\d+)?:(-?\d+)?", part):
            start, _, stop = part.partition(":")
            selectors.append(slice(int(start) if start else None, int(stop) if stop else None))
        else:
            raise ValueError(f"output_filter {expression!r}: {part!r} is neither an index nor a slice")

    def select(row: list[str]) -> list[str]:
        kept: list[str] = []
        for selector in selectors:
            if isinstance(selector, slice):
                kept += row[selector]
            elif -len(row) <= selector < len(row):
                kept.append(row[selector])
            else:
                raise ValueError(f"output_filter {expression!r}: index {selector} is outside the {len(row)} columns")
        return kept

    return select


def prediction_columns(task: str, classes: list[Any]) -> list[str]:
    """The names of output_fn's CSV columns, by task (ml/inference.py)."""
    if task == "regression":
        return ["prediction"]
    if task == "binary":
        return ["prediction", "probability"]
    return ["prediction", "probability", *(f"probability_{c}" for c in classes)]


def csv_values(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def csv_text(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def mini_batches(handle: TextIO, limit: int) -> Iterator[list[tuple[int, str]]]:
    """The input's lines (numbered from 2: line 1 is the header), packed into mini-batches of at most
    `limit` bytes of request body, every line whole, as MultiRecord packs them."""
    batch: list[tuple[int, str]] = []
    size = 0
    for number, line in enumerate(handle, start=2):
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        length = len(text.encode()) + 1
        if batch and size + length > limit:
            yield batch
            batch, size = [], 0
        batch.append((number, text))
        size += length
    if batch:
        yield batch


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """A transform job's Environment, for as long as it runs, then as it was (a caller in-process keeps its own)."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def peak_memory_mb() -> float:
    """This process's peak resident memory: the model, the libraries and one mini-batch, whatever the file."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, KiB on Linux


def feature_positions(header: list[str], features: list[str], source: str) -> list[int]:
    """Where the schema's features are in the header: the transform job's InputFilter."""
    if not header:
        raise BatchInputError(f"{source} is empty; it needs a header row naming the features, then rows")
    missing = [name for name in features if name not in header]
    if missing:
        raise BatchInputError(
            f"{source}'s header lacks the feature column(s) {', '.join(missing)}, which the "
            "model's schema names; name them in the header row (other columns are kept, not scored)"
        )
    return [header.index(name) for name in features]


def read_header(handle: TextIO) -> list[str]:
    return csv_values(handle.readline().rstrip("\r\n"))


def refused_before_scoring(values: list[str], text: str, width: int, limit: int) -> str:
    """Why a line cannot be sent at all (SageMaker would fail the whole job on it), or ""."""
    if len(values) != width:
        return f"it has {len(values)} values, the header {width}"
    if len(text.encode()) + 1 > limit:
        return f"the row is larger than max_payload_mb = {limit // (1024 * 1024)}"
    return ""


class Assembler:
    """Writes what a transform answered: predictions (joined and filtered) and refused rows, counted."""

    def __init__(self, output: TextIO, rejects: TextIO, join_source: str, expression: str) -> None:
        self.output, self.rejects, self.join_source = output, rejects, join_source
        self.select = output_filter(expression)
        self.rows = self.rejected = 0
        self.reasons: Counter[str] = Counter()
        self._refused: list[tuple[int, list[str], str]] = []

    def header(self, header: list[str], columns: list[str]) -> None:
        self.output.write(csv_text(self.select([*header, *columns] if self.join_source == "Input" else list(columns))))
        self.rejects.write(csv_text(["line", *header, "reason"]))

    def scored(self, values: list[str], prediction: list[str]) -> None:
        self.rows += 1
        self.output.write(csv_text(self.select([*values, *prediction] if self.join_source == "Input" else prediction)))

    def refuse(self, number: int, values: list[str], reason: str) -> None:
        self.rows += 1
        self._refused.append((number, values, reason))

    def flush(self) -> None:
        """Refused rows of a mini-batch, in the input's order."""
        for number, values, reason in sorted(self._refused, key=lambda item: item[0]):
            self.rejected += 1
            # Counted by kind: "it holds 'abc' for 'x'" and "it holds 'n/a' for 'x'" are one reason.
            self.reasons[re.sub(r"'[^']*'", "'…'", reason, count=1) if reason.startswith("it holds") else reason] += 1
            self.rejects.write(csv_text([str(number), *values, reason]))
        self._refused.clear()

    def counts(self) -> dict[str, Any]:
        self.flush()
        return {
            "rows": self.rows,
            "scored": self.rows - self.rejected,
            "rejected": self.rejected,
            "reasons": dict(self.reasons.most_common(MAX_REASONS)),
        }


class DriftCheck:
    """The monitor's checks (ml/monitor.py) over a batch's rows, as over a window of endpoint traffic."""

    def __init__(self, statistics: dict[str, Any], constraints: dict[str, Any], features: list[str]) -> None:
        now = datetime.now(UTC)
        self.statistics, self.constraints, self.features = statistics, constraints, features
        self.window = monitor.new_window(statistics, now, now)

    def add(self, rows: list[list[str]], positions: list[int]) -> None:
        monitor.add_rows(self.window, ({n: v[i] for n, i in zip(self.features, positions, strict=True)} for v in rows))

    def result(self, drift_alpha: float, min_rows: int) -> dict[str, Any]:
        settings = monitor.Settings(drift_alpha=drift_alpha, min_rows=min_rows)
        result = monitor.check(self.window, self.statistics, self.constraints, settings)
        return {
            "drift_judged": result.judged_drift,
            "drifted": result.drifted,
            "violations": [
                {"feature": v.feature_name, "check": v.constraint_check_type, "description": v.description}
                for v in result.violations
            ],
        }


class Transform:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        from ml.serving import Model, load_program  # the model's libraries: only the transform process needs them

        model_dir = Path(args.model_dir)
        self.model = Model(load_program(model_dir), model_dir)
        metadata = json.loads((model_dir / "metadata.json").read_text())
        self.features: list[str] = metadata["features"]
        self.columns = prediction_columns(metadata["task"], metadata["classes"])
        self.limit = args.max_payload_mb * 1024 * 1024
        statistics = json.loads(Path(args.statistics).read_text())
        self.drift = DriftCheck(statistics, json.loads(Path(args.constraints).read_text()), self.features)
        self.batches = 0

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        with (
            Path(self.args.input).open(newline="", encoding="utf-8") as source,
            Path(self.args.output).open("w", encoding="utf-8", newline="") as output,
            Path(self.args.rejects).open("w", encoding="utf-8", newline="") as rejects,
        ):
            header = read_header(source)
            positions = feature_positions(header, self.features, self.args.input)
            assembler = Assembler(output, rejects, self.args.join_source, self.args.output_filter)
            assembler.header(header, self.columns)
            for batch in mini_batches(source, self.limit):
                self._score(batch, len(header), positions, assembler)
            counts = assembler.counts()
        return {
            **counts,
            "mini_batches": self.batches,
            "seconds": time.perf_counter() - started,
            "peak_memory_mb": peak_memory_mb(),
            **self.drift.result(self.args.drift_alpha, self.args.min_rows),
        }

    def _score(self, batch: list[tuple[int, str]], width: int, positions: list[int], assembler: Assembler) -> None:
        self.batches += 1
        body, sent = io.StringIO(), []
        writer = csv.writer(body, lineterminator="\n")
        for number, text in batch:
            values = csv_values(text)
            reason = refused_before_scoring(values, text, width, self.limit)
            if reason:
                assembler.refuse(number, values, reason)
                continue
            writer.writerow([values[i] for i in positions])
            sent.append((number, values))
        self.drift.add([values for _, values in sent], positions)
        if sent:
            payload, _ = self.model.invoke(body.getvalue(), CSV, CSV)
            answers = list(csv.reader(io.StringIO(payload.decode())))
            if len(answers) != len(sent):
                raise RuntimeError(f"the model answered {len(answers)} lines for a mini-batch of {len(sent)}")
            for (number, values), answer in zip(sent, answers, strict=True):
                *prediction, reason = answer
                if reason:
                    assembler.refuse(number, values, reason)
                else:
                    assembler.scored(values, prediction)
        assembler.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ml.batch", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="the unpacked model.tar.gz")
    parser.add_argument("--input", required=True, help="a CSV file with a header row")
    parser.add_argument("--output", required=True, help="where the predictions go")
    parser.add_argument("--rejects", required=True, help="where refused rows go, with their reason")
    parser.add_argument("--summary", required=True, help="where the counts go (JSON)")
    parser.add_argument("--statistics", required=True, help="the model's baseline statistics.json")
    parser.add_argument("--constraints", required=True, help="the model's baseline constraints.json")
    parser.add_argument("--max-payload-mb", type=int, default=6)
    parser.add_argument("--join-source", choices=("Input", "None"), default="Input")
    parser.add_argument("--output-filter", default="$")
    parser.add_argument("--drift-alpha", type=float, default=0.001)
    parser.add_argument("--min-rows", type=int, default=50)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with environment({REJECT_ROWS: "1"}):  # as the transform job's Environment sets it (ml/steps/batch.py)
            summary = Transform(args).run()
    except BatchInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    Path(args.summary).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

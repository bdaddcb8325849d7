"""The local endpoint's data capture: SageMaker's file layout, and records that sort by time."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ml.serving import DataCapture

START = datetime(2026, 11, 22, 14, 5, 1, 500_000, tzinfo=UTC)


def clock(*times: datetime) -> Callable[[], datetime]:
    """A clock that tells these times, one per record."""
    ticks = iter(times)
    return lambda: next(ticks)


def record(capture: DataCapture, row: str) -> None:
    capture.record(f"{row}\n".encode(), "text/csv", b'{"predictions": [1]}', "application/json")


def captured_rows(root: Path) -> list[str]:
    # What ml/monitor.py and the tests do: sort the paths, read the lines in order.
    return [
        json.loads(line)["captureData"]["endpointInput"]["data"].strip()
        for path in sorted(root.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_files_follow_the_sagemaker_layout_and_naming(tmp_path: Path) -> None:
    record(DataCapture(tmp_path, "tc-local", clock=clock(START)), "1,2")
    [path] = list(tmp_path.rglob("*.jsonl"))
    relative = path.relative_to(tmp_path).as_posix()
    assert re.fullmatch(r"tc-local/AllTraffic/2026/11/22/14/05-01-500-[0-9a-f-]{36}\.jsonl", relative), relative


def test_records_from_successive_server_processes_read_back_in_time_order(tmp_path: Path) -> None:
    # Each deployed version is a new server process with its own file in the same hour. Reading
    # the sorted paths must give the records in the order they were served, whatever the file ids.
    for _ in range(20):
        older = DataCapture(tmp_path / "run", "ep", clock=clock(START, START + timedelta(minutes=3)))
        newer = DataCapture(
            tmp_path / "run", "ep", clock=clock(START + timedelta(minutes=4), START + timedelta(minutes=5))
        )
        record(older, "1")
        record(older, "2")
        record(newer, "3")
        record(newer, "4")
        assert captured_rows(tmp_path / "run") == ["1", "2", "3", "4"]
        for path in (tmp_path / "run").rglob("*.jsonl"):
            path.unlink()


def test_a_new_hour_starts_a_new_file(tmp_path: Path) -> None:
    capture = DataCapture(tmp_path, "ep", clock=clock(START.replace(minute=59), START.replace(hour=15, minute=0)))
    record(capture, "1")
    record(capture, "2")
    hours = sorted(path.parent.name for path in tmp_path.rglob("*.jsonl"))
    assert hours == ["14", "15"]
    assert captured_rows(tmp_path) == ["1", "2"]


def test_a_deleted_capture_is_started_afresh(tmp_path: Path) -> None:
    capture = DataCapture(tmp_path, "ep", clock=clock(START, START + timedelta(minutes=1)))
    record(capture, "1")
    shutil.rmtree(tmp_path / "ep")  # what `make drift-demo` does between its two rounds
    record(capture, "2")
    assert captured_rows(tmp_path) == ["2"]

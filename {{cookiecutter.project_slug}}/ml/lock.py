"""One lock per environment around every command that changes the registry, the desired state or
the endpoint, so two runs never train the same model twice, race for a version number, or leave
a server nothing tracks.

The lock is an advisory file lock (flock): the system releases it when its holder exits, however
it exits, so a lock left by a killed run is never in the way. Beside it, the holder writes who
it is (pid, command, start time), which is what a refused run prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ml.errors import PipelineError


class BusyError(PipelineError):
    """Another command holds this environment's lock."""

    exit_code = 75  # EX_TEMPFAIL: try again later


@contextlib.contextmanager
def environment_lock(state_dir: Path, env: str, command: str) -> Iterator[None]:
    directory = state_dir / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{env}.lock"
    handle = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise BusyError(_busy_message(env, handle.read(), path)) from None
        # Holding the lock: say who holds it. The file is rewritten, never replaced, so the lock stays.
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "command": command,
                    "argv": sys.argv,
                    "started": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )
        )
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def _busy_message(env: str, holder: str, path: Path) -> str:
    try:
        info = json.loads(holder)
        who = f"`{info['command']}` (pid {info['pid']}, started {info['started']})"
    except (ValueError, KeyError, TypeError):
        who = "another command"
    return (
        f"environment {env!r} is busy: {who} is changing its registry, desired state or endpoint. "
        f"Wait for it to finish, then run again (the lock is {path}; it is released when that process exits)."
    )

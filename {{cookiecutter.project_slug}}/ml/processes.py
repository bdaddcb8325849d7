"""Processes the project starts and later signals, recorded so that only they are ever signalled.

A pid alone is not an identity: once a process ends, the system hands its number to the next
one. So every long-lived process (the model server) is recorded with its start time and command
line, and a recorded process is signalled only while all three still match. Processes also
carry a tag in their command line (ml/backends/warm.py), so `make stop` can find one that a
killed deploy never recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

_POLL = 0.02
_LINUX = sys.platform.startswith("linux")


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    started: float  # when the process was created (start_stamp): the same in every process that reads it
    command: str  # a digest of the command line (the full one can be long)

    @classmethod
    def of(cls, pid: int, timeout: float = 5.0) -> ProcessRecord:
        """The process as it runs now. One just started may not show its command line yet: Linux
        closes the starter's exec pipe (so subprocess.Popen returns) before it sets the new
        program's arguments, and a record of that empty command line would never match the
        process again (its server "gone" from the start). So an empty one is read again."""
        process = psutil.Process(pid)
        command = process.cmdline()
        deadline = time.monotonic() + timeout
        while not command and time.monotonic() < deadline:
            time.sleep(_POLL)
            command = process.cmdline()
        return cls(pid, start_stamp(process), command_digest(command))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(int(data["pid"]), float(data["started"]), str(data["command"]))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def alive(self) -> bool:
        """The recorded process is still running: same pid, same start time, same command line."""
        try:
            process = psutil.Process(self.pid)
            same = abs(start_stamp(process) - self.started) < 0.05 and command_digest(process.cmdline()) == self.command
            return same and process.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False

    def signal(self, number: int) -> bool:
        """Send a signal if, and only if, the recorded process is still the one running."""
        if not self.alive():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, number)
        return True

    def stop(self, grace: float = 10.0) -> bool:
        """SIGTERM, then SIGKILL after `grace` seconds; False if it was not running."""
        if not self.signal(signal.SIGTERM):
            return False
        deadline = time.monotonic() + grace
        while self.alive() and time.monotonic() < deadline:
            _reap(self.pid)
            time.sleep(_POLL)
        self.signal(signal.SIGKILL)
        _reap(self.pid)
        return True


def _reap(pid: int) -> None:
    # Our own child that exited stays a zombie until it is waited for.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def start_stamp(process: psutil.Process) -> float:
    """When the process was created, as a number that does not move while it runs.

    On Linux, seconds since boot, from /proc/<pid>/stat. Not psutil's create_time() there: that adds
    the boot time /proc/stat gives, in whole seconds, and the kernel moves it when the clock is
    adjusted (NTP), so a server read in one process could be a second older in the next, and be
    taken for gone (its record no longer matched). Elsewhere the system records the creation time
    itself, and psutil reports that.
    """
    if _LINUX:
        try:
            stat = (Path(psutil.PROCFS_PATH) / str(process.pid) / "stat").read_text()
        except FileNotFoundError:
            raise psutil.NoSuchProcess(process.pid) from None
        fields = stat.rsplit(")", 1)[1].split()  # after the command, in (), which may hold spaces
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks
    return float(process.create_time())


def command_digest(command: list[str] | tuple[str, ...]) -> str:
    return hashlib.sha256("\0".join(command).encode()).hexdigest()[:16]


def tagged(tag: str) -> list[ProcessRecord]:
    """Running processes of this user whose command line carries `tag`."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "uids"]):
        with contextlib.suppress(psutil.Error, TypeError):
            command = process.info["cmdline"] or []
            if any(tag in part for part in command) and process.pid != os.getpid():
                found.append(ProcessRecord(process.pid, start_stamp(process), command_digest(command)))
    return found

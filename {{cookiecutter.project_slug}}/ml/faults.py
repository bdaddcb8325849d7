"""Fault injection at step boundaries, for the tests that prove a run killed anywhere converges.

Inert unless MLOPS_FAULT names a fault: `<kill|interrupt>:<before|after>:<step>`, e.g.
`kill:after:register` makes the process SIGKILL itself as the register step finishes, as a power
cut or `kill -9` would; `interrupt:before:train` raises KeyboardInterrupt, as Ctrl-C would.
tests/test_local_runtime.py sets it in the processes it starts; nothing else does.
"""

from __future__ import annotations

import os
import signal


def at(moment: str, step: str) -> None:
    fault = os.environ.get("MLOPS_FAULT", "")
    if not fault:
        return
    action, when, where = [*fault.split(":"), "", "", ""][:3]
    if (when, where) != (moment, step):
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "interrupt":
        raise KeyboardInterrupt

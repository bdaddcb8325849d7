"""Processes started ahead of the work that will use them.

Most of a small job's time is a fresh Python importing pandas and scikit-learn. Two mechanisms
take that off the critical path:

- Jobs (training, evaluation, a model check, the plots) are forked from one fork server that
  imported what their scripts import, once per run (ForkServer). A job receives its script,
  arguments, environment and working directory when it starts, and runs them as
  `python script.py args...` would (`__main__`, sys.argv, sys.path[0], the cwd), so the
  SageMaker container contract holds. The fork server starts when a run says jobs will come
  (prepare), and imports while the steps before them run.
- The model server, which outlives the command that starts it, gets an interpreter of its own,
  started ahead and waiting (WarmInterpreter, WarmStarts).

Nothing outlives what started it by accident: a job dies with the process that started it, an
interpreter that is never used exits when its parent closes its stdin or dies (even mid-import),
and only a server's interpreter survives the deploy that told it to serve, as an endpoint does.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import json
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Runs in the new interpreter. Kept to the standard library and free of project imports.
_BOOT = r"""
import json, os, runpy, sys, threading, time

received = threading.Event()  # the job's line has arrived: the interpreter was told what to run
lines = []

def read_job():
    # Read as soon as it is written, while the imports go on: a deploy that hands a server its job
    # and then dies (killed, or exiting early) has still told it to serve.
    lines.append(sys.stdin.readline())
    received.set()

def watch_parent(parent, during_job):
    # An interpreter dies with the process that started it (os.getppid changes when that dies):
    # always while it waits for a job, and during its job too unless the job must outlive it (a
    # server), which was told to serve once its job was written, even if its imports are not done.
    while during_job or not received.is_set():
        if os.getppid() != parent:
            if not during_job:
                reader.join(5)  # a dead parent's pipe is closed: its job is read at once, or never
            if during_job or not lines or not lines[0].endswith("\n"):
                os._exit(137)
            return
        time.sleep(0.1)

settings = json.loads(sys.argv[1])
parent = settings["parent"]  # not os.getppid() here: the parent may be gone before this line runs
reader = threading.Thread(target=read_job, daemon=True)
reader.start()
threading.Thread(target=watch_parent, args=(parent, settings["die_with_parent"]), daemon=True).start()
for name in settings["preload"]:
    try:
        __import__(name)
    except Exception:
        pass  # the script reports its own import errors when it runs
try:
    os.write(1, b"R")  # ready: the parent may start the next interpreter
except OSError:
    pass  # nobody is waiting for it
reader.join()
line = lines[0]
if not line.endswith("\n"):
    sys.exit(0)  # never used: the parent closed our stdin (or died while writing the job)
job = json.loads(line)
log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.dup2(log, 1)
os.dup2(log, 2)
os.close(null)
os.close(log)
os.chdir(job["cwd"])
os.environ.clear()
os.environ.update(job["env"])
sys.argv = [job["script"], *job["args"]]
try:
    if job["module"]:
        runpy.run_module(job["script"], run_name="__main__", alter_sys=True)
    else:
        sys.path[0] = os.path.dirname(os.path.abspath(job["script"]))
        runpy.run_path(job["script"], run_name="__main__")
    code = 0
except SystemExit as stop:
    code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    if not isinstance(stop.code, (int, type(None))):
        print(stop.code, file=sys.stderr)
except BaseException:
    import traceback
    traceback.print_exc()
    code = 1
# What interpreter shutdown would do that a job can observe (exit handlers, flushed output),
# without the tenth of a second it spends collecting scikit-learn and pandas.
import atexit
atexit._run_exitfuncs()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""


def imports_of(paths: Iterable[Path]) -> list[str]:
    """Top-level modules the files import, except their own siblings: what to load ahead."""
    paths = list(paths)
    local = {path.stem for path in paths}
    found: list[str] = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from sklearn import metrics` needs sklearn.metrics; a name that is not a module
                # fails to import ahead and is simply imported by the script itself.
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            for name in names:
                if name.split(".")[0] not in (*local, "__future__") and name not in found:
                    found.append(name)
    return found


class WarmInterpreter:
    """One Python process, imports done, waiting for the one script it will run."""

    def __init__(
        self,
        preload: Iterable[str],
        *,
        die_with_parent: bool = True,
        new_session: bool = False,
        env: Mapping[str, str] | None = None,
        tag: str = "",
    ) -> None:
        self.preload = tuple(preload)
        # The tag sits in the command line, so the process can be found by what started it.
        settings = {
            "preload": list(self.preload),
            "die_with_parent": die_with_parent,
            "tag": tag,
            "parent": os.getpid(),
        }
        self.watched = False  # set when a WarmStarts watcher reads the ready byte
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,  # one byte when the imports are done; then the job's log
            stderr=subprocess.DEVNULL,
            env={**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"},
            start_new_session=new_session,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def usable(self) -> bool:
        return self.process.poll() is None and self.process.stdin is not None and not self.process.stdin.closed

    def wait_ready(self) -> bool:
        """Block until the imports are done (False if the interpreter died first); the reader's end.

        Only one thread calls this (WarmStarts' watcher); it owns the pipe and closes it.
        """
        self.watched = True
        stdout = self.process.stdout
        if stdout is None:
            return False
        try:
            return stdout.read(1) == b"R"
        except (OSError, ValueError):
            return False
        finally:
            with contextlib.suppress(OSError):
                stdout.close()

    def run(
        self,
        script: str,
        args: Iterable[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log: Path,
        module: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start the job: `python <script> <args>` (or `python -m <script>` with module=True).

        The interpreter reads the job once its imports are done, so the job starts then.
        """
        job = {
            "script": script,
            "args": list(args),
            "cwd": str(cwd),
            "env": dict(env),
            "log": str(log),
            "module": module,
        }
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write((json.dumps(job) + "\n").encode())
        stdin.close()
        if not self.watched and self.process.stdout is not None:
            self.process.stdout.close()  # nobody waits for its ready byte
        return self.process

    def discard(self) -> None:
        """Stop an interpreter that will not be used."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, None if self.watched else self.process.stdout):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(OSError):
                    pipe.close()


@dataclass
class _Slot:
    key: str
    start: Callable[[], WarmInterpreter]
    interpreter: WarmInterpreter | None = None


@dataclass
class WarmStarts:
    """Interpreters prepared for the processes to come, started in order, a few importing at a time.

    prepare() queues one. They start in order, at most `parallel` importing at once (one per
    core: an importer per core keeps the machine busy; more only slow the job that is running).
    take() hands out the first prepared for a key: started (perhaps still importing, which is
    still a head start) or, if its turn has not come, a new one started now. close() stops
    whatever was prepared and not taken.
    """

    parallel: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    _slots: list[_Slot] = field(default_factory=list)
    _importing: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prepare(self, key: str, start: Callable[[], WarmInterpreter]) -> None:
        with self._lock:
            self._slots.append(_Slot(key, start))
        self._start_next()

    def _start_next(self) -> None:
        with self._lock:
            while self._importing < self.parallel:
                slot = next((s for s in self._slots if s.interpreter is None), None)
                if slot is None:
                    return
                slot.interpreter = slot.start()
                slot.interpreter.watched = True
                self._importing += 1
                threading.Thread(target=self._await_ready, args=(slot.interpreter,), daemon=True).start()

    def _await_ready(self, interpreter: WarmInterpreter) -> None:
        interpreter.wait_ready()  # or died, or was taken or discarded: either way, no longer importing
        with self._lock:
            self._importing -= 1
        self._start_next()

    def take(self, key: str, start: Callable[[], WarmInterpreter]) -> WarmInterpreter:
        with self._lock:
            slot = next((s for s in self._slots if s.key == key), None)
            if slot is not None:
                self._slots.remove(slot)
                if slot.interpreter is not None and slot.interpreter.usable():
                    return slot.interpreter
                if slot.interpreter is not None:
                    slot.interpreter.discard()
        return start()

    def close(self) -> None:
        with self._lock:
            slots, self._slots = self._slots, []
        for slot in slots:
            if slot.interpreter is not None:
                slot.interpreter.discard()


def _watch(parent: int) -> None:
    """In a job: end it when the process that started it is gone (a killed pipeline)."""
    while True:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(137)
        except PermissionError:
            pass
        time.sleep(0.1)


def _job_main(job: dict[str, object], parent: int) -> None:
    """In the forked child: become `python <script> <args>` in the job's directory and environment."""
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    log = os.open(str(job["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    os.chdir(str(job["cwd"]))
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(job["env"]).items()})  # type: ignore[call-overload]
    script = str(job["script"])
    sys.argv = [script, *(str(a) for a in list(job["args"]))]  # type: ignore[call-overload]
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        if job["module"]:
            runpy.run_module(script, run_name="__main__", alter_sys=True)
        else:
            sys.path[0] = str(Path(script).resolve().parent)
            runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    # What interpreter shutdown does that a job can observe (exit handlers, flushed output),
    # without the tenth of a second it spends collecting scikit-learn and pandas.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Job:
    """A job forked from the fork server: wait for it, or kill it."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def wait(self) -> int:
        self._process.join()
        code = self._process.exitcode
        return code if code is not None else 1

    def poll(self) -> int | None:
        return self._process.exitcode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, AttributeError):
            self._process.kill()


class ForkServer:
    """One interpreter per run that imports the jobs' libraries once; each job is a fork of it.

    Built on multiprocessing's fork server: it starts on prepare() (or the first job) and imports
    `preload` while the caller goes on; a job starts as soon as the imports are done. As with any
    multiprocessing start method but fork, a program run as a script (not `python -m`) that
    starts jobs must keep its work under `if __name__ == "__main__":`.
    """

    def __init__(self, preload: Iterable[str]) -> None:
        self.preload = ["ml.backends.warm", *preload]

    def _context(self) -> Any:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(self.preload)
        return context

    def prepare(self) -> None:
        """Start the fork server now, so its imports overlap with what runs before the jobs."""
        from multiprocessing import forkserver

        self._context()
        forkserver.ensure_running()

    def start(
        self,
        script: str,
        args: Iterable[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log: Path,
        module: bool = False,
    ) -> Job:
        job = {
            "script": script,
            "args": list(args),
            "cwd": str(cwd),
            "env": dict(env),
            "log": str(log),
            "module": module,
        }
        # Not daemonic: a job may start processes of its own (joblib, multiprocessing).
        process = self._context().Process(target=_job_main, args=(job, os.getpid()))
        process.start()
        return Job(process)

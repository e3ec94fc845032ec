"""`pilah` commands in new processes forked from one that has already imported TensorFlow and Keras.

A command that trains, evaluates, packages, exports or loads a `.keras` model spends about 4.5 s of processor time
importing TensorFlow and Keras before it does anything, and the suite runs about 25 such commands. Here one parent
per test process imports them once (and nothing else: it runs no model, starts no runtime), and each command runs
in a child forked from it: a new process with the test's arguments, working folder, environment, standard input,
output and error, and exit status, which calls `pilah.cli.main` as `python -m pilah.cli` does and ends the way an
interpreter ends (threads joined, exit handlers run, streams flushed), without then tearing down every module of
TensorFlow one by one (1.3 s of nothing observable). What a command does is unchanged; only its imports are shared.

A command whose environment would change what those imports did (another Keras backend, TensorFlow's, XLA's or
JAX's settings) runs in a fresh interpreter instead, and so does any command when forking is unavailable.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Variables read while TensorFlow, Keras, JAX or the interpreter start: a command that changes one starts afresh.
IMPORT_TIME_PREFIXES = ("KERAS_", "TF_", "XLA_", "JAX_", "PYTHON", "LD_", "OMP_", "OPENBLAS_", "MKL_", "MALLOC_")

PARENT = r"""
import atexit, json, os, sys, threading, traceback
import keras, tensorflow  # the imports every child would otherwise repeat
import pilah.cli, pilah.evaluation.evaluate, pilah.inference.export, pilah.training.strategies


def command(args):
    try:
        code = pilah.cli.main(args)
    except SystemExit as stop:
        code = stop.code
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    return code or 0


requests, replies = os.fdopen(os.dup(0)), os.fdopen(os.dup(1), "w", buffering=1)
for line in requests:
    request = json.loads(line)
    child = os.fork()
    if child == 0:
        requests.close()
        replies.close()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, (path, flags) in enumerate(request["streams"]):
            opened = os.open(path, flags)
            os.dup2(opened, fd)
            os.close(opened)
        sys.argv = [pilah.cli.__file__, *request["args"]]
        code = command(request["args"])
        threading._shutdown()  # an interpreter's exit, in its order: threads joined, exit handlers, streams flushed
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # without tearing down TensorFlow's modules one by one: 1.3 s that change nothing
    replies.write(json.dumps({"pid": child}) + "\n")
    _, status = os.waitpid(child, 0)
    replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
"""


def import_settings(env: dict[str, str]) -> dict[str, str]:
    settings = {key: value for key, value in env.items() if key.startswith(IMPORT_TIME_PREFIXES)}
    if settings.get("KERAS_BACKEND") == "tensorflow":
        del settings["KERAS_BACKEND"]  # the default
    return settings


class ForkingParent:
    """A parent for commands with one set of import-time settings."""

    def __init__(self, env: dict[str, str]) -> None:
        command = [sys.executable, "-c", PARENT]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.unread = b""  # what came from the parent beyond the last reply
        self.lock = threading.Lock()  # one command at a time: the replies come in the order of the requests

    def run(self, args: list[str], cwd: Path, env: dict[str, str], input: str, timeout: float):
        assert self.process.stdin
        with self.lock, tempfile.TemporaryDirectory(prefix="pilah-command-") as folder:
            paths = [Path(folder) / name for name in ("stdin", "stdout", "stderr")]
            paths[0].write_text(input)
            write = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            streams = [[str(paths[0]), os.O_RDONLY], [str(paths[1]), write], [str(paths[2]), write]]
            request = {"args": args, "cwd": str(cwd), "env": env, "streams": streams}
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            child = self._reply(60)["pid"]
            try:
                returncode = self._reply(timeout)["returncode"]
            except subprocess.TimeoutExpired:
                os.kill(child, signal.SIGKILL)
                self._reply(60)
                raise subprocess.TimeoutExpired(["pilah", *args], timeout) from None
            stdout, stderr = (path.read_text() for path in paths[1:])
        return subprocess.CompletedProcess(["pilah", *args], returncode, stdout, stderr)

    def _reply(self, timeout: float) -> dict:
        """The parent's next line. Read unbuffered: both replies may already be there when the first is read."""
        assert self.process.stdout
        pipe, deadline = self.process.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self.unread:
            ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise subprocess.TimeoutExpired("the forking parent", timeout)
            more = os.read(pipe, 65536)
            assert more, f"the forking parent ended (exit status {self.process.wait()})"
            self.unread += more
        line, self.unread = self.unread.split(b"\n", 1)
        return json.loads(line)


PARENTS: dict[tuple, ForkingParent] = {}  # this test process's, one per set of import-time settings


def parent_for(env: dict[str, str]) -> ForkingParent | None:
    """The parent whose imports match `env`, started at its first command; None where a fork would not run what a
    fresh start runs: JAX is multithreaded once loaded, so only TensorFlow's Keras is forked."""
    settings = import_settings(env)
    if not hasattr(os, "fork") or "KERAS_BACKEND" in settings:
        return None
    key = tuple(sorted(settings.items()))
    if key not in PARENTS or PARENTS[key].process.poll() is not None:
        PARENTS[key] = ForkingParent(env)
    return PARENTS[key]


def run_pilah(args: list[str], cwd: Path | None, input: str, timeout: float) -> subprocess.CompletedProcess:
    """The real `pilah` command in a new process: forked where the imports allow it, else a fresh interpreter."""
    env = dict(os.environ)
    parent = parent_for(env)
    if parent:
        return parent.run(args, Path(cwd or os.getcwd()), env, input, timeout)
    command = [sys.executable, "-m", "pilah.cli", *args]
    return subprocess.run(command, input=input, cwd=cwd, capture_output=True, text=True, timeout=timeout)

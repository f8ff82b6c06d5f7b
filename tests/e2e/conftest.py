"""Shared fixtures for the end-to-end tests.

Every test runs real CPython processes with the real libpyprof.so preloaded and talks to
them with the real pyprofctl. Interpreters: every supported CPython (3.9-3.13) found under
pyenv, plus Debian's /usr/bin/python3.11 (static libpython); absent ones are skipped, and
the skip says so.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("PYPROF_BUILD", ROOT / "build"))
LIB = BUILD / "lib" / "libpyprof.so"
CTL = BUILD / "bin" / "pyprofctl"
WORKLOADS = ROOT / "tests" / "workloads"

PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
SUPPORTED = ["3.9", "3.10", "3.11", "3.12", "3.13"]
UNSUPPORTED = ["2.7", "3.6", "3.7", "3.8"]


def find_pyenv(minor):
    """The pyenv interpreter for `minor` ("3.12"), or None."""
    versions = PYENV_ROOT / "versions"
    if not versions.is_dir():
        return None
    for d in sorted(versions.iterdir(), reverse=True):
        if d.name == minor or d.name.startswith(minor + "."):
            exe = d / "bin" / ("python" + minor)
            if exe.exists():
                return str(exe)
    return None


def interpreter_params(minors, with_system=True):
    params = []
    for minor in minors:
        exe = find_pyenv(minor)
        params.append(pytest.param(exe, id="py" + minor,
                                   marks=[] if exe else [pytest.mark.skip(
                                       reason=f"CPython {minor} is not installed under pyenv")]))
    if with_system:
        exe = "/usr/bin/python3.11"
        params.append(pytest.param(exe, id="debian3.11",
                                   marks=[] if os.path.exists(exe) else [pytest.mark.skip(
                                       reason="/usr/bin/python3.11 is absent")]))
    return params


ALL_PYTHONS = interpreter_params(SUPPORTED)
OLD_PYTHONS = interpreter_params(UNSUPPORTED, with_system=False)


@pytest.fixture(params=ALL_PYTHONS)
def python(request):
    return request.param


@pytest.fixture
def sockdir(tmp_path):
    d = tmp_path / "sock"
    d.mkdir(mode=0o700)
    return d


class Env:
    """Environment for one test: a private socket directory and the preload."""

    def __init__(self, sockdir):
        self.sockdir = sockdir
        self.env = dict(os.environ)
        self.env["PYPROF_DIR"] = str(sockdir)
        self.env.pop("LD_PRELOAD", None)
        self.env.pop("PYPROF_OUTPUT", None)
        self.procs = []

    def preload_env(self, **extra):
        env = dict(self.env)
        # A sanitizer build's agent needs the sanitizer runtimes loaded first
        # (PYPROF_PRELOAD_FIRST="libasan.so libubsan.so", set by scripts/test).
        first = os.environ.get("PYPROF_PRELOAD_FIRST", "")
        env["LD_PRELOAD"] = f"{first} {LIB}".strip()
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def spawn(self, argv, preload=True, **extra):
        env = self.preload_env(**extra) if preload else dict(self.env, **extra)
        p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def ctl_env(self, **extra):
        """The environment for pyprofctl: under a sanitizer build, its runtimes preloaded
        (pyprofctl run puts libpyprof.so after what LD_PRELOAD already holds)."""
        env = dict(self.env, **{k: str(v) for k, v in extra.items()})
        if os.environ.get("PYPROF_PRELOAD_FIRST"):
            env["LD_PRELOAD"] = os.environ["PYPROF_PRELOAD_FIRST"]
        return env

    def ctl(self, *args, check=True, timeout=60, **kw):
        env = self.ctl_env()
        r = subprocess.run([str(CTL), *map(str, args)], env=env, capture_output=True,
                           text=kw.pop("text", True), timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"pyprofctl {' '.join(map(str, args))} failed "
                                 f"({r.returncode}): {r.stderr}")
        return r

    def status(self, pid):
        return json.loads(self.ctl("status", pid, "--json").stdout)

    def socket(self, pid):
        return self.sockdir / f"pyprof.{pid}.sock"

    def wait_socket(self, pid, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.socket(pid).exists():
                return
            time.sleep(0.02)
        raise AssertionError(f"no socket for {pid} after {timeout}s")

    def dump(self, pid, *args):
        """Collapsed stacks as {stack: value}, merged."""
        out = self.ctl("dump", pid, *args).stdout
        return parse_collapsed(out)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=10)
            except Exception:
                pass


def parse_collapsed(text):
    stacks = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        stack, _, value = line.rpartition(" ")
        stacks[stack] = stacks.get(stack, 0) + int(value)
    return stacks


@pytest.fixture
def env(sockdir):
    e = Env(sockdir)
    yield e
    e.cleanup()


def workload(name):
    return str(WORKLOADS / name)


def wait_for_line(proc, text, timeout=20):
    """Read the child's stdout until a line containing `text`; returns that line."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise AssertionError(f"process exited ({proc.returncode}) before '{text}': "
                                     f"{proc.stderr.read()}")
            continue
        if text in line:
            return line
    raise AssertionError(f"no '{text}' from the process within {timeout}s")

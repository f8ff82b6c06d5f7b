"""The control plane end to end: `pyprofctl` against real agents in real interpreters.

Every test starts real CPython processes with the real libpyprof.so preloaded and talks to
them with the real pyprofctl (or, for protocol abuse and peer checks, a raw Unix-socket
client); nothing is mocked and no expected value is hard-coded from a previous run: every
expectation is derived from the process under test (its pid, its Python version, its own
output without the preload, the counts the agent reported a moment before).

Workloads: tests/workloads/serve.py (spins until told 'quit') and tests/workloads/ctl_*.py.
"""
import gzip
import json
import os
import random
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import pytest

from conftest import CTL, LIB, OLD_PYTHONS, ROOT, find_pyenv, parse_collapsed, wait_for_line, \
    workload

SERVE = workload("serve.py")
CTL_FORK = workload("ctl_fork.py")
CTL_EXIT = workload("ctl_exit.py")
CTL_WORK = workload("ctl_work.py")
CTL_SUBPROC = workload("ctl_subproc.py")

# Behaviour that does not depend on the interpreter is checked with one of them.
ONE_PYTHON = find_pyenv("3.12") or "/usr/bin/python3.11"
SYSTEM_PYTHON = "/usr/bin/python3"      # the test runner's own, for raw clients as nobody

MAX_REQUEST = 64 * 1024                 # PYPROF_MAX_REQUEST (proto/codec.h)
NOBODY = 65534

needs_root = pytest.mark.skipif(
    os.getuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv(1) to act as another user")


# ---- helpers ----------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def python_version(python):
    """The interpreter's full version ("3.12.1"), asked without the preload."""
    code = "import sys; sys.stdout.write('%d.%d.%d' % sys.version_info[:3])"
    return subprocess.run([python, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def start_serving(env, python, script=SERVE, args=(), **extra):
    """Start `script` under the preload; returns (proc, pid) once its socket exists."""
    proc = env.spawn([python, script, *args], **extra)
    pid = int(wait_for_line(proc, "ready").split()[1])
    env.wait_socket(pid)
    return proc, pid


def quit(proc):
    """Tell serve.py to quit; returns its exit code."""
    proc.stdin.write("quit\n")
    proc.stdin.flush()
    return proc.wait(timeout=30)


def send_line(proc, line=""):
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def wait_samples(env, pid, at_least=1, timeout=20):
    """Poll `status` until the profile holds `at_least` samples; returns the status."""
    deadline = time.time() + timeout
    while True:
        st = env.status(pid)
        if st["samples"] >= at_least:
            return st
        if time.time() > deadline:
            raise AssertionError(f"{pid} has only {st['samples']} samples after {timeout}s: {st}")
        time.sleep(0.05)


def leaves(stacks):
    """Function names of the leaf frames of collapsed stacks."""
    return {s.split(";")[-1].split(" (")[0] for s in stacks}


def frames(stacks):
    """Function names of every frame of collapsed stacks."""
    return {f.split(" (")[0] for s in stacks for f in s.split(";")}


def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}: {text!r}"
    return lines[0]


def sockets_in(directory):
    return sorted(p.name for p in Path(directory).glob("pyprof.*.sock"))


def wait_until(predicate, timeout=15, what="condition"):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def missing_pid():
    """A pid that no process has (checked with kill(pid, 0))."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    for pid in range(pid_max - 1, 1, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no free pid")


def pyprof_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("pyprof[")]


def own_lines(stderr):
    return [l for l in stderr.splitlines() if not l.startswith("pyprof[")]


# ---- a minimal protobuf reader/writer for the raw-socket tests --------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_fields(data):
    """Top-level fields of a protobuf message: {field number: [values]} (varints as int,
    length-delimited as bytes). Raises ValueError on malformed input."""
    fields, i = {}, 0

    def read_varint():
        nonlocal i
        shift = value = 0
        while True:
            if i >= len(data):
                raise ValueError("truncated varint")
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    while i < len(data):
        key = read_varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value = read_varint()
        elif wire == 2:
            n = read_varint()
            if i + n > len(data):
                raise ValueError("truncated field")
            value, i = data[i:i + n], i + n
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


OP_STATUS, OP_DUMP = 1, 5


def request(op, version=1, padding=0):
    """A Request payload; `padding` bytes of an unknown field (15) make it bigger while
    keeping it valid (proto3 parsers skip unknown fields)."""
    payload = b"\x08" + varint(version) + b"\x10" + varint(op)
    if padding:
        for n in range(padding, 0, -1):
            field = b"\x7a" + varint(n) + b"p" * n
            if len(field) == padding:
                return payload + field
        raise AssertionError(f"cannot pad by {padding}")
    return payload


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def raw_exchange(path, data, read=True, timeout=15):
    """Connect, send `data` (as much as the agent takes), read until EOF; returns what came
    back (b"" when the agent closed without answering)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))    # blocking: waits for room in the agent's listen backlog
    s.settimeout(timeout)
    try:
        if data:
            s.sendall(data)
    except OSError:
        pass   # the agent may drop us before we finish sending: that is the point
    got = b""
    if read:
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    s.close()
    return got


def response(raw):
    """Check that `raw` is exactly one frame and return its top-level fields."""
    assert len(raw) >= 4, f"no response frame: {raw!r}"
    (n,) = struct.unpack(">I", raw[:4])
    assert n == len(raw) - 4, f"frame announces {n} bytes, {len(raw) - 4} came"
    return pb_fields(raw[4:])


def assert_error_response(raw):
    """One well-formed frame carrying a non-zero error (Response.error, field 2) and a
    message (field 3)."""
    fields = response(raw)
    assert fields.get(1) == [1], fields            # the agent's protocol version
    assert fields.get(2) and fields[2][0] > 0, fields
    assert fields.get(3) and fields[3][0], fields
    return fields


def assert_alive_and_serving(env, proc, pid):
    assert proc.poll() is None, f"the host died: {proc.returncode} {proc.stderr.read()}"
    assert env.status(pid)["pid"] == pid


# ---- 1. list and status -------------------------------------------------------------------------

def test_list_and_status_describe_the_processes(env, python):
    """`pyprofctl list` and `list --json` show each running profiled process with its pid,
    its real Python version, its state, mode and interval as configured, and the same sample
    and stack counts that `status --json` reports (compared while sampling is stopped, so
    the counts cannot move); `status --json` is self-consistent (stacks <= samples, the
    collapsed dump adds up to `samples` and to `total_weight_ns`)."""
    version = python_version(python)
    cpu, cpu_pid = start_serving(env, python, PYPROF_INTERVAL="2ms")
    wall, wall_pid = start_serving(env, python, PYPROF_INTERVAL="2500us", PYPROF_MODE="wall")
    wait_samples(env, cpu_pid, 20)
    wait_samples(env, wall_pid, 20)
    env.ctl("stop", cpu_pid)
    env.ctl("stop", wall_pid)
    expected = {cpu_pid: ("cpu", 2000, "2ms"), wall_pid: ("wall", 2500, "2500us")}

    statuses = {pid: env.status(pid) for pid in expected}
    listed = env.ctl("list")
    assert listed.stderr == ""
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["PID", "PYTHON", "STATE", "MODE", "INTERVAL", "SAMPLES",
                              "STACKS", "COMMAND"]
    by_pid = {int(r.split()[0]): r for r in rows}
    assert set(by_pid) == set(expected), listed.stdout
    listed_json = {p["pid"]: p for p in json.loads(env.ctl("list", "--json").stdout)}
    assert set(listed_json) == set(expected)

    for pid, (mode, interval_us, interval_text) in expected.items():
        st = statuses[pid]
        cols = by_pid[pid].split()
        assert cols[:7] == [str(pid), version, "stopped", mode, interval_text,
                            str(st["samples"]), str(st["stacks"])], by_pid[pid]
        assert by_pid[pid].rstrip().endswith(SERVE)
        # status --json: what the process is
        assert st["pid"] == pid and st["python"] == version
        assert st["state"] == "stopped" and st["mode"] == mode
        assert st["interval_us"] == interval_us
        assert SERVE in st["cmdline"] and st["cmdline"].startswith(python)
        assert st["max_stacks"] == 65536
        assert st["ticks"] > 0 and st["achieved_hz"] > 0
        assert 0 < st["stacks"] <= st["samples"]
        assert st["total_weight_ns"] > 0
        assert 0 <= st["sampler_cpu_percent"] <= 100
        for key in ("dropped", "torn", "truncated", "sampler_cpu_ns", "sample_cost_ns"):
            assert st[key] >= 0, key
        # the profile's memory: its empty tables at least, and far from unbounded
        assert 64 * 1024 <= st["profile_bytes"] <= 256 * 1024 * 1024, st["profile_bytes"]
        # list --json carries the same record (the counts are frozen while stopped)
        lj = listed_json[pid]
        assert set(lj) == set(st)
        for key in ("pid", "cmdline", "python", "state", "mode", "interval_us", "ticks",
                    "samples", "dropped", "torn", "truncated", "stacks", "max_stacks",
                    "total_weight_ns"):
            assert lj[key] == st[key], key
        # the profile behind the numbers
        counts = env.dump(pid, "--samples")
        assert sum(counts.values()) == st["samples"]
        assert 0 < len(counts) <= st["stacks"]
        micros = env.dump(pid)
        assert set(micros) == set(counts)
        assert abs(sum(micros.values()) - st["total_weight_ns"] / 1000) <= len(micros) + 1
        if mode == "wall":
            assert "[idle]" in leaves(counts)    # the stdin thread, not running

    env.ctl("start", cpu_pid)
    wait_samples(env, cpu_pid, statuses[cpu_pid]["samples"] + 1)
    rows = {int(r.split()[0]): r.split() for r in env.ctl("list").stdout.splitlines()[1:]}
    assert rows[cpu_pid][2] == "sampling" and rows[wall_pid][2] == "stopped"
    assert quit(cpu) == 0 and quit(wall) == 0
    assert env.ctl("list").stdout.splitlines()[1:] == []
    assert json.loads(env.ctl("list", "--json").stdout) == []


# ---- 2. stop, start, reset, dump ------------------------------------------------------------------

def test_stop_freezes_start_resumes(env, python):
    """`stop` freezes the counts (samples, stacks, ticks and weight do not change over half a
    second while the workload keeps burning CPU) and `status` says "stopped"; `start` makes
    the samples grow again and `status` says "sampling"."""
    proc, pid = start_serving(env, python, PYPROF_INTERVAL="1ms")
    wait_samples(env, pid, 20)
    r = env.ctl("stop", pid)
    assert r.stdout == "" and str(pid) in one_line(r.stderr)
    frozen = env.status(pid)
    time.sleep(0.5)
    later = env.status(pid)
    for key in ("samples", "stacks", "ticks", "total_weight_ns"):
        assert later[key] == frozen[key], (key, frozen, later)
    assert later["state"] == "stopped"
    env.ctl("stop", pid)                       # stopping twice is harmless
    assert env.status(pid)["samples"] == frozen["samples"]
    env.ctl("start", pid)
    assert env.status(pid)["state"] == "sampling"
    wait_samples(env, pid, frozen["samples"] + 20)
    assert quit(proc) == 0


def test_reset_zeroes_the_profile(env, python):
    """`reset` empties the profile: samples, stacks and weight go to zero, `dump` returns
    nothing; after `start` the profile fills again from zero."""
    proc, pid = start_serving(env, python, PYPROF_INTERVAL="1ms")
    wait_samples(env, pid, 20)
    env.ctl("stop", pid)
    assert env.status(pid)["samples"] >= 20
    env.ctl("reset", pid)
    st = env.status(pid)
    assert (st["samples"], st["stacks"], st["total_weight_ns"]) == (0, 0, 0), st
    assert st["state"] == "stopped"
    assert env.dump(pid) == {}
    env.ctl("start", pid)
    st = wait_samples(env, pid, 5)
    assert "spin" in leaves(env.dump(pid))
    assert quit(proc) == 0


def test_dump_names_the_workload_and_dump_reset_empties(env, python):
    """`dump` returns collapsed stacks whose leaf is the workload's hot function `spin`
    (with its file); `dump --reset` returns the same data (nothing is sampled meanwhile:
    sampling is stopped) and leaves an empty profile behind."""
    proc, pid = start_serving(env, python, PYPROF_INTERVAL="1ms")
    wait_samples(env, pid, 50)
    stacks = env.dump(pid)
    assert all(v > 0 for v in stacks.values())
    hot = [s for s in stacks if s.split(";")[-1].startswith("spin (" + SERVE + ":")]
    assert hot, stacks
    assert all(s.split(";")[0].startswith("<module> (" + SERVE) for s in hot)
    env.ctl("stop", pid)
    before = env.dump(pid)
    taken = env.dump(pid, "--reset")
    assert taken == before and taken
    st = env.status(pid)
    assert (st["samples"], st["stacks"]) == (0, 0), st
    assert env.dump(pid) == {}
    assert quit(proc) == 0


def test_dump_pprof_decodes_with_protoc(env, python, tmp_path):
    """`dump -o x.pb.gz` writes a gzip file holding a pprof Profile that the real protoc
    decodes with proto/profile.proto; its string table holds the workload's function name
    and file."""
    if not shutil.which("protoc"):
        pytest.skip("protoc (protobuf-compiler) is not installed")
    proc, pid = start_serving(env, python, PYPROF_INTERVAL="1ms")
    wait_samples(env, pid, 30)
    out = tmp_path / "x.pb.gz"
    r = env.ctl("dump", pid, "-o", out)
    assert r.stdout == ""
    raw = out.read_bytes()
    assert raw[:2] == b"\x1f\x8b", "not gzip"
    decoded = subprocess.run(
        ["protoc", "--decode", "perftools.profiles.Profile", "-I", str(ROOT / "proto"),
         str(ROOT / "proto" / "profile.proto")],
        input=gzip.decompress(raw), capture_output=True, timeout=60)
    assert decoded.returncode == 0, decoded.stderr
    text = decoded.stdout.decode()
    strings = [l.split(":", 1)[1].strip() for l in text.splitlines()
               if l.startswith("string_table:")]
    assert '"spin"' in strings, strings[:40]
    assert json.dumps(SERVE) in strings
    assert "sample {" in text and "function {" in text and "location {" in text
    assert quit(proc) == 0


# ---- 3. fork --------------------------------------------------------------------------------------

def run_fork_workload(env, python, extra_thread=False):
    """Drive ctl_fork.py; returns (parent pid, {kind: child pid}, recorded warnings, proc).
    Each child is checked while it runs: its own socket, its own pid in `status`, and a
    fresh profile (its own `child_work`, none of the parent's `parent_burn`)."""
    argv = [python, "-W", "error::DeprecationWarning", CTL_FORK]
    if extra_thread:
        argv.append("--extra-thread")
    proc = env.spawn(argv, PYPROF_INTERVAL="1ms")
    parent = int(wait_for_line(proc, "parent").split()[1])
    env.wait_socket(parent)
    wait_samples(env, parent, 5)
    assert "parent_burn" in frames(env.dump(parent))
    send_line(proc)
    children = {}
    while True:
        line = proc.stdout.readline()
        assert line, f"ctl_fork.py ended early: {proc.wait(30)} {proc.stderr.read()}"
        words = line.split()
        if words[0] == "warnings":
            warned = int(words[1])
            break
        assert words[0] == "child", line
        kind, child = words[1], int(words[2])
        assert child != parent
        try:
            env.wait_socket(child)
        except AssertionError as e:
            proc.kill()
            raise AssertionError(f"{kind} child {child} of {parent}: {e}; sockets: "
                                 f"{sockets_in(env.sockdir)}; stderr: "
                                 f"{proc.communicate(timeout=30)[1]!r}") from None
        st = wait_samples(env, child, 5)
        assert st["pid"] == child, st
        assert st["python"] == python_version(python)
        child_stacks = env.dump(child)
        assert "child_work" in frames(child_stacks), (kind, child_stacks)
        assert "parent_burn" not in frames(child_stacks), (kind, child_stacks)
        children[kind] = child
        send_line(proc)
        joined = wait_for_line(proc, "joined").split()
        assert joined[1:] == [kind, "0"], joined
    return parent, children, warned, proc


def test_fork_children_get_their_own_agent(env, python):
    """The child of os.fork() and multiprocessing children (fork, forkserver and spawn
    contexts) each serve their own socket `pyprof.<childpid>.sock`, answer `status` with
    their own pid and hold a fresh profile (their own work only, not the parent's); the
    parent keeps serving throughout and keeps sampling after the forks; on 3.12+ no
    "multi-threaded" fork DeprecationWarning is raised (run under
    -W error::DeprecationWarning, and recorded inside the program); every socket is gone
    once everything has exited."""
    parent, children, warned, proc = run_fork_workload(env, python)
    assert set(children) == {"os.fork", "fork", "forkserver", "spawn"}
    assert len(set(children.values())) == 4
    assert warned == 0, "the agent's threads made fork() warn about a multi-threaded process"
    after = int(wait_for_line(proc, "after").split()[1])
    assert after == parent
    st = env.status(parent)
    assert st["pid"] == parent and st["state"] == "sampling"
    # the parent resumed sampling after the forks: its later work is in its profile
    wait_until(lambda: "parent_after" in frames(env.dump(parent)), what="parent_after samples")
    assert quit(proc) == 0
    stderr = proc.stderr.read()
    assert "multi-threaded" not in stderr and "DeprecationWarning" not in stderr, stderr
    assert "Traceback" not in stderr, stderr
    wait_until(lambda: sockets_in(env.sockdir) == [], what="every socket to be removed")


EARLY_FORK_RUNS = 6


def test_early_fork_child_gets_its_own_agent(env, python):
    """A program whose very first statement is os.fork() (forking milliseconds after the
    interpreter is initialised, while the agent may still be setting itself up): both the
    parent and the child end up with their own agent and socket, and on 3.12+ the agent's
    start-up thread does not make fork() warn about a multi-threaded process. Repeated a few
    times, since how early "early" is depends on scheduling."""
    failures = []
    for _ in range(EARLY_FORK_RUNS):
        r = subprocess.run([python, "-W", "always::DeprecationWarning", workload("ctl_early_fork.py")],
                           env=env.preload_env(), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        seen = {line.split()[0]: line.split()[2] for line in r.stdout.splitlines()}
        assert set(seen) == {"parent", "child"}, r.stdout
        if seen != {"parent": "True", "child": "True"} or r.stderr:
            failures.append((r.stdout, r.stderr))
    assert failures == [], f"{len(failures)} of {EARLY_FORK_RUNS} runs: {failures}"
    wait_until(lambda: sockets_in(env.sockdir) == [], what="every socket to be removed")


def test_fork_warning_positive_control(env):
    """Control for the test above: with a real extra Python thread alive, 3.12+ does record
    the "multi-threaded" fork DeprecationWarning in ctl_fork.py, so a zero there means the
    agent's threads were really stopped around the fork."""
    python = find_pyenv("3.12") or find_pyenv("3.13")
    if python is None:
        pytest.skip("no CPython 3.12+ under pyenv")
    parent, children, warned, proc = run_fork_workload(env, python, extra_thread=True)
    assert warned >= 2, warned      # os.fork and multiprocessing's fork context
    wait_for_line(proc, "after")
    assert quit(proc) == 0


# ---- 4. subprocess --------------------------------------------------------------------------------

def test_subprocess_running_python_gets_its_own_agent(env, python):
    """A Python program started with subprocess by a profiled program inherits the preload
    and gets its own agent: its own socket, its own pid in `status`, its own profile
    (serve.py's `spin`); the parent's agent keeps answering too."""
    proc = env.spawn([python, CTL_SUBPROC, SERVE], PYPROF_INTERVAL="1ms")
    child = int(wait_for_line(proc, "child").split()[1])
    parent = int(wait_for_line(proc, "parent").split()[1])
    assert child != parent
    env.wait_socket(child)
    env.wait_socket(parent)
    st = wait_samples(env, child, 10)
    assert st["pid"] == child and SERVE in st["cmdline"]
    assert st["python"] == python_version(python)
    assert "spin" in leaves(env.dump(child))
    pst = env.status(parent)
    assert pst["pid"] == parent and CTL_SUBPROC in pst["cmdline"]
    send_line(proc, "quit")
    assert proc.wait(timeout=30) == 0
    wait_until(lambda: sockets_in(env.sockdir) == [], what="both sockets to be removed")


# ---- 4b. the host's descriptors and threads ---------------------------------------------------

CTL_HOST = workload("ctl_host.py")
FD_BASE = 100   # preload/fds.c: where the agent's descriptors go (default RLIMIT_NOFILE)


def run_host(env, python, *args, preload=True, timeout=60, **extra):
    environ = env.preload_env(**extra) if preload else dict(env.env, **extra)
    return subprocess.run([python, CTL_HOST, *map(str, args)], env=environ,
                          capture_output=True, text=True, timeout=timeout)


def test_agent_descriptors_stay_above_the_program_s(env, python):
    """Every descriptor the agent holds (its libuv loop, its listening socket, the
    connection it served, its /proc files) is numbered 100 or more: the descriptors the
    program sees below 100 are exactly those it has without the preload, after the agent
    has started and served a `pyprofctl status`."""
    plain = run_host(env, python, "fds", CTL, preload=False)
    loaded = run_host(env, python, "fds", CTL, PYPROF_INTERVAL="1ms")
    assert plain.returncode == 0 and loaded.returncode == 0, (plain.stderr, loaded.stderr)
    without = {int(n) for n in plain.stdout.split()}
    with_agent = {int(n) for n in loaded.stdout.split()}
    assert {n for n in with_agent if n < FD_BASE} == {n for n in without if n < FD_BASE}, \
        (sorted(without), sorted(with_agent))
    assert len([n for n in with_agent if n >= FD_BASE]) >= 3, sorted(with_agent)   # it ran
    assert loaded.stderr == ""


def test_program_started_with_std_descriptors_closed(env, python, tmp_path):
    """A program started with 0, 1 and 2 closed gets the same descriptor numbers from
    open() as without the preload (0 first: the agent took none of them), and ends with its
    own exit status (libuv aborts the process when told to close a descriptor <= 2: the
    agent must never have held one)."""
    results = []
    for preload in (False, True):
        out = tmp_path / f"std-closed-{preload}.txt"
        environ = env.preload_env(PYPROF_INTERVAL="1ms") if preload else dict(env.env)
        code = subprocess.call([python, CTL_HOST, "std-closed", str(out)], env=environ,
                               stdin=subprocess.DEVNULL, timeout=60,
                               preexec_fn=lambda: [os.close(fd) for fd in (0, 1, 2)])
        assert code == 0, (preload, code)
        first, fds = out.read_text().splitlines()
        results.append((int(first), {int(n) for n in fds.split()}))
    (first_plain, plain), (first_loaded, loaded) = results
    assert first_plain == first_loaded == 0
    assert {n for n in loaded if n < FD_BASE} == {n for n in plain if n < FD_BASE}
    assert any(n >= FD_BASE for n in loaded), loaded   # the agent was there


def test_program_closing_every_descriptor_keeps_running(env, python, tmp_path):
    """A program that closes every descriptor above 2 (os.closerange(3, 65536), as a
    daemon does when it detaches) while its agent serves: the program goes on and exits 0;
    the agent says once that its control socket is off, keeps sampling (the code run after
    the closerange is in PYPROF_OUTPUT) and leaves no socket behind."""
    out, profile = tmp_path / "done.txt", tmp_path / "closerange.folded"
    r = run_host(env, python, "closerange", out, PYPROF_INTERVAL="1ms",
                 PYPROF_OUTPUT=profile)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "done\n"
    lines = pyprof_lines(r.stderr)
    assert len(lines) == 1 and "closed a file descriptor of the agent" in lines[0], r.stderr
    assert own_lines(r.stderr) == [], r.stderr
    assert "after_closerange" in frames(parse_collapsed(profile.read_text()))
    assert sockets_in(env.sockdir) == []


def test_child_forked_from_a_thread_exits_when_its_threads_end(env, python):
    """A child forked from a worker thread (its main thread is that worker, which ends with
    pthread_exit) exits once its last Python thread ends, as without the preload (the
    agent's own threads must not keep it alive; CPython's test_threading
    test_3_join_in_forked_from_thread); its socket is removed."""
    r = subprocess.run([python, "-W", "ignore::DeprecationWarning", CTL_HOST, "thread-fork"],
                       env=env.preload_env(PYPROF_INTERVAL="1ms"), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "child exit status 0\n", r.stdout
    assert pyprof_lines(r.stderr) == [], r.stderr
    wait_until(lambda: sockets_in(env.sockdir) == [], what="every socket to be removed")


# ---- 5. exit --------------------------------------------------------------------------------------

@pytest.mark.parametrize("how,code", [("normal", 0), ("exit3", 3), ("raise", 1), ("os_exit", 6)])
def test_socket_removed_at_exit(env, python, how, code):
    """While the program runs its agent answers on its socket; after a normal exit,
    sys.exit(3), an unhandled exception or os._exit(6) the socket is gone, the exit code is
    the program's own, and stderr holds only what the program itself wrote (the traceback
    for the exception, nothing otherwise)."""
    proc, pid = start_serving(env, python, CTL_EXIT, PYPROF_INTERVAL="1ms")
    wait_samples(env, pid, 1)
    # the first samples may still be the program's imports (slow under a sanitizer build)
    wait_until(lambda: "exit_spin" in frames(env.dump(pid)), what="exit_spin samples")
    send_line(proc, how)
    assert proc.wait(timeout=30) == code
    stderr = proc.stderr.read()
    if how == "raise":
        assert "Traceback (most recent call last)" in stderr
        assert stderr.rstrip().endswith("RuntimeError: ctl_exit boom"), stderr
    else:
        assert stderr == ""
    assert not env.socket(pid).exists()
    assert sockets_in(env.sockdir) == []


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_stale_socket_after_kill_9(env, reaped):
    """After kill -9 the socket stays behind, stale. `pyprofctl status PID` says so in one
    line (the process being gone, reaped, or a zombie that no longer serves), exits 1 and
    removes the socket; a second `status` then finds no process/socket."""
    proc, pid = start_serving(env, ONE_PYTHON)
    proc.kill()
    if reaped:
        proc.wait()
    else:
        wait_until(lambda: Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z",
                   what="the zombie")
    assert env.socket(pid).exists()
    r = env.ctl("status", pid, check=False)
    assert r.returncode == 1
    assert r.stdout == ""
    line = one_line(r.stderr)
    assert "stale" in line and str(pid) in line, line
    assert not env.socket(pid).exists()
    again = env.ctl("status", pid, check=False)
    assert again.returncode == 1 and "removed" not in again.stderr, again.stderr
    assert ("not profiled" if not reaped else "no such process") in again.stderr
    proc.wait()


def test_list_cleans_stale_sockets(env):
    """`pyprofctl list` removes stale sockets (a process killed with -9, and a leftover
    socket file of a live process that does not serve it) and still lists the live profiled
    process; `list --json` likewise."""
    live, live_pid = start_serving(env, ONE_PYTHON)
    dead, dead_pid = start_serving(env, ONE_PYTHON)
    dead.kill()
    dead.wait()
    # A socket file nobody listens on, named after a live process (this test runner).
    leftover = env.socket(os.getpid())
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(leftover))
    s.close()
    assert env.socket(dead_pid).exists() and leftover.exists()
    r = env.ctl("list")
    assert r.returncode == 0
    assert [int(row.split()[0]) for row in r.stdout.splitlines()[1:]] == [live_pid]
    assert sockets_in(env.sockdir) == [env.socket(live_pid).name]
    # once more with --json and a new stale socket
    dead2, dead2_pid = start_serving(env, ONE_PYTHON)
    dead2.kill()
    dead2.wait()
    listed = json.loads(env.ctl("list", "--json").stdout)
    assert [p["pid"] for p in listed] == [live_pid]
    assert sockets_in(env.sockdir) == [env.socket(live_pid).name]
    assert quit(live) == 0


# ---- 6. non-Python programs -------------------------------------------------------------------------

BAD_ENV = {"PYPROF_INTERVAL": "abc", "PYPROF_MODE": "gpu", "PYPROF_START": "maybe",
           "PYPROF_MAX_STACKS": "-4", "PYPROF_LOG": "loud"}


@pytest.mark.parametrize("argv", [
    ["/bin/sh", "-c", "echo hi; echo err >&2; exit 7"],
    ["/bin/sh", "-c", "kill -TERM $$"],
    ["ls", "/"],
    ["git", "--version"],
    ["gcc", "--version"],
], ids=["sh", "sh-killed", "ls", "git", "gcc"])
@pytest.mark.parametrize("bad_env", [False, True], ids=["env-ok", "env-bad"])
def test_non_python_program_is_untouched(env, argv, bad_env):
    """A program that is not CPython behaves byte-identically under the preload (stdout,
    stderr, exit status), even with invalid PYPROF_* values in its environment (the agent
    is not loaded, so nothing is parsed or said), and leaves no socket."""
    if not shutil.which(argv[0]):
        pytest.skip(f"{argv[0]} is not installed")
    extra = BAD_ENV if bad_env else {}
    plain = subprocess.run(argv, env=dict(env.env, **extra), capture_output=True, timeout=60)
    preloaded = subprocess.run(argv, env=env.preload_env(**extra), capture_output=True,
                               timeout=60)
    assert (preloaded.returncode, preloaded.stdout, preloaded.stderr) == \
           (plain.returncode, plain.stdout, plain.stderr)
    assert list(env.sockdir.iterdir()) == []


# ---- 7. other users -------------------------------------------------------------------------------

def as_nobody(argv, **kw):
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           *map(str, argv)], capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture
def open_sockdir(env):
    """A socket directory under /tmp whose parents nobody can traverse (pytest's own tmp
    directories are 0700); created 0700 like the agent wants it."""
    d = Path(tempfile.mkdtemp(prefix="pyprof-ctl-", dir="/tmp"))
    env.sockdir = d
    env.env["PYPROF_DIR"] = str(d)
    yield d
    env.cleanup()
    shutil.rmtree(d, ignore_errors=True)


@needs_root
def test_another_user_is_refused_by_pyprofctl(env):
    """pyprofctl run as nobody against root's profiled process fails with exit 1 and one
    clear line (permission denied / unreachable); the host keeps running and root's
    pyprofctl still works afterwards."""
    proc, pid = start_serving(env, ONE_PYTHON)
    for command in ("status", "stop", "dump"):
        r = as_nobody([CTL, command, pid], env=env.env)
        assert r.returncode == 1, (command, r)
        assert r.stdout == ""
        line = one_line(r.stderr).lower()
        assert "permission denied" in line or "cannot" in line, line
    assert proc.poll() is None
    st = env.status(pid)
    assert st["pid"] == pid and st["state"] == "sampling"   # nobody's stop did nothing
    assert quit(proc) == 0


RAW_STATUS_CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connected": False, "error": str(e)}))
    raise SystemExit
s.settimeout(15)
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
except OSError:
    pass
got = b""
try:
    while True:
        c = s.recv(65536)
        if not c:
            break
        got += c
except OSError as e:
    pass
print(json.dumps({"connected": True, "received": got.hex()}))
"""


@needs_root
def test_peer_credentials_are_checked(env, open_sockdir):
    """With the directory opened to 0711 and the socket to 0666, nobody can connect, yet the
    agent refuses it (SO_PEERCRED): a valid status request gets the connection closed
    without a response, while the same raw client as root gets a valid status frame.
    pyprofctl as nobody exits 1 with one line; the host keeps running and a root client
    still works."""
    proc, pid = start_serving(env, ONE_PYTHON)
    path = env.socket(pid)
    open_sockdir.chmod(0o711)
    path.chmod(0o666)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666
    status_frame = frame(request(OP_STATUS)).hex()

    # control: the same client as root gets the status of `pid`
    r = subprocess.run([SYSTEM_PYTHON, "-c", RAW_STATUS_CLIENT, str(path), status_frame],
                       capture_output=True, text=True, timeout=60)
    ok = json.loads(r.stdout)
    fields = response(bytes.fromhex(ok["received"]))
    assert fields.get(2, [0]) == [0]
    assert pb_fields(fields[4][0])[1] == [pid]

    # nobody: the connection is accepted by the kernel (file permissions allow it), then
    # closed by the agent without a byte of response
    r = as_nobody([SYSTEM_PYTHON, "-c", RAW_STATUS_CLIENT, path, status_frame])
    assert r.returncode == 0, r.stderr
    refused = json.loads(r.stdout)
    assert refused == {"connected": True, "received": ""}, refused

    r = as_nobody([CTL, "status", pid], env=env.env)
    assert r.returncode == 1 and r.stdout == ""
    assert "permission denied" in one_line(r.stderr).lower(), r.stderr
    r = as_nobody([CTL, "stop", pid], env=env.env)
    assert r.returncode == 1
    assert_alive_and_serving(env, proc, pid)
    assert env.status(pid)["state"] == "sampling"
    assert quit(proc) == 0


# ---- 8. protocol abuse ------------------------------------------------------------------------------

def test_protocol_abuse_leaves_the_host_serving(env):
    """A raw client sends garbage, an oversized length prefix (0xFFFFFFFF, and 64 KiB + 1),
    a truncated frame then closes, a valid header over a garbage payload, an empty payload,
    an unknown operation, another protocol version, and connects-and-closes 200 times:
    malformed frames get an error response frame (one frame, length matching, error and
    message set), oversized ones are dropped without an answer; after each, the host is
    still running and `pyprofctl status` still answers. Positive controls: a valid request,
    one split into single bytes, and one padded to exactly 64 KiB get a real status."""
    proc, pid = start_serving(env, ONE_PYTHON)
    path = env.socket(pid)
    rng = random.Random(1234)

    def check_status_reply(raw):
        fields = response(raw)
        assert fields.get(2, [0]) == [0], fields
        assert pb_fields(fields[4][0])[1] == [pid]

    check_status_reply(raw_exchange(path, frame(request(OP_STATUS))))
    assert_alive_and_serving(env, proc, pid)

    # Unframed garbage: its first four bytes announce far more than 64 KiB: dropped.
    assert raw_exchange(path, b"hello, this is not a frame\n" * 10) == b""
    assert_alive_and_serving(env, proc, pid)
    for _ in range(5):
        blob = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 3000)))
        raw_exchange(path, blob)   # whatever it announces, the agent must cope
        assert_alive_and_serving(env, proc, pid)

    # Oversized length prefixes: dropped at once, nothing sent back.
    assert raw_exchange(path, b"\xff\xff\xff\xff" + b"x" * 100) == b""
    assert_alive_and_serving(env, proc, pid)
    assert raw_exchange(path, struct.pack(">I", MAX_REQUEST + 1) + b"x" * 1000) == b""
    assert_alive_and_serving(env, proc, pid)

    # Truncated frames, then close (header only, half a header, half a payload).
    for data in (struct.pack(">I", 100), b"\x00\x00", struct.pack(">I", 100) + b"abc",
                 frame(request(OP_STATUS))[:-1]):
        raw_exchange(path, data, read=False)
        assert_alive_and_serving(env, proc, pid)

    # A valid header over a payload that is not a Request: an error response frame.
    assert_error_response(raw_exchange(path, frame(b"\xff" * 5)))
    assert_alive_and_serving(env, proc, pid)
    assert_error_response(raw_exchange(path, frame(bytes(rng.getrandbits(8) | 0x80
                                                         for _ in range(500)))))
    assert_alive_and_serving(env, proc, pid)
    assert_error_response(raw_exchange(path, frame(b"")))                 # version 0
    assert_error_response(raw_exchange(path, frame(request(99))))         # unknown op
    assert_error_response(raw_exchange(path, frame(request(OP_STATUS, version=2))))
    assert_alive_and_serving(env, proc, pid)

    # A valid request trickled in byte by byte is answered.
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(path))
    s.settimeout(15)
    for b in frame(request(OP_STATUS)):
        s.send(bytes([b]))
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    check_status_reply(got)

    # A frame of exactly 64 KiB (a valid request padded with an unknown field) is answered.
    big = request(OP_STATUS, padding=MAX_REQUEST - 4 - len(request(OP_STATUS)))
    assert len(frame(big)) == MAX_REQUEST
    check_status_reply(raw_exchange(path, frame(big)))

    # Clients that ask for a dump and leave without reading it.
    for _ in range(50):
        raw_exchange(path, frame(request(OP_DUMP)), read=False)
    assert_alive_and_serving(env, proc, pid)

    # Connect-and-close, 200 times.
    for _ in range(200):
        raw_exchange(path, b"", read=False)
    assert_alive_and_serving(env, proc, pid)
    st = wait_samples(env, pid, 1)
    assert st["state"] == "sampling"
    assert quit(proc) == 0
    assert proc.stderr.read() == ""


# ---- 9. invalid environment ---------------------------------------------------------------------------

def run_work(python, environ, code=5):
    return subprocess.run([python, CTL_WORK, str(code)], env=environ, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("var,value,default,status_key,status_value", [
    ("PYPROF_INTERVAL", "abc", "10ms", "interval_us", 10000),
    ("PYPROF_MODE", "gpu", "cpu", "mode", "cpu"),
    ("PYPROF_START", "maybe", "1", "state", "sampling"),
    ("PYPROF_MAX_STACKS", "-4", "65536", "max_stacks", 65536),
    ("PYPROF_LOG", "loud", "warn", None, None),
])
def test_invalid_environment_value_warns_once(env, var, value, default, status_key,
                                              status_value):
    """An invalid value produces exactly one stderr line, naming the variable and the
    default used; the program's own stdout, stderr and exit code are those it has without
    the preload; the agent then runs with that default (seen in `status`); PYPROF_LOG=quiet
    silences the line."""
    plain = run_work(ONE_PYTHON, env.env)
    assert (plain.returncode, plain.stdout, plain.stderr) == (5, "out\n", "err\n")
    r = run_work(ONE_PYTHON, env.preload_env(**{var: value}))
    assert (r.returncode, r.stdout) == (plain.returncode, plain.stdout)
    assert own_lines(r.stderr) == plain.stderr.splitlines()
    line = one_line("\n".join(pyprof_lines(r.stderr)))
    assert var in line and f"using {default}" in line and value in line, line
    assert len(r.stderr.splitlines()) == len(plain.stderr.splitlines()) + 1

    if var != "PYPROF_LOG":
        q = run_work(ONE_PYTHON, env.preload_env(**{var: value, "PYPROF_LOG": "quiet"}))
        assert (q.returncode, q.stdout, q.stderr) == \
               (plain.returncode, plain.stdout, plain.stderr)

    proc, pid = start_serving(env, ONE_PYTHON, **{var: value})
    st = wait_samples(env, pid, 1)
    if status_key:
        assert st[status_key] == status_value, st
    assert quit(proc) == 0
    # the serving process warned once too, the same words after its own pid prefix
    served = one_line(proc.stderr.read())
    assert served.startswith(f"pyprof[{pid}]: ")
    assert served.split("]: ", 1)[1] == line.split("]: ", 1)[1]


def test_invalid_environment_values_warn_once_each(env):
    """Five invalid values at once: five lines, one per variable, and the program's output
    and exit code unchanged; with PYPROF_LOG=quiet (and the four others invalid) nothing is
    added to stderr."""
    plain = run_work(ONE_PYTHON, env.env)
    r = run_work(ONE_PYTHON, env.preload_env(**BAD_ENV))
    assert (r.returncode, r.stdout, own_lines(r.stderr)) == \
           (plain.returncode, plain.stdout, plain.stderr.splitlines())
    lines = pyprof_lines(r.stderr)
    assert len(lines) == len(BAD_ENV), lines
    for var in BAD_ENV:
        assert sum(var + "=" in l for l in lines) == 1, (var, lines)
    quiet = dict(BAD_ENV, PYPROF_LOG="quiet")
    q = run_work(ONE_PYTHON, env.preload_env(**quiet))
    assert (q.returncode, q.stdout, q.stderr) == (plain.returncode, plain.stdout, plain.stderr)


def unsafe_dir(tmp_path, kind):
    """Returns (PYPROF_DIR value, the real directory behind it)."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    if kind == "symlink":
        link = tmp_path / "link"
        link.symlink_to(real)
        return str(link), real
    if kind == "symlink-slash":
        link = tmp_path / "link"
        link.symlink_to(real)
        return str(link) + "/", real
    if kind == "group-writable":
        real.chmod(0o770)
    elif kind == "world-writable":
        real.chmod(0o777)
    elif kind == "sticky-world-writable":
        real.chmod(0o1777)
    elif kind == "other-owner":
        os.chown(real, NOBODY, NOBODY)
    elif kind == "regular-file":
        real.rmdir()
        real.write_text("")
    return str(real), real


@pytest.mark.parametrize("kind", ["symlink", "symlink-slash", "group-writable", "world-writable",
                                  "sticky-world-writable", "other-owner", "regular-file"])
def test_unsafe_socket_directory_is_refused(env, tmp_path, kind):
    """A PYPROF_DIR that is a symlink (also when written with a trailing slash), group- or
    world-writable, owned by another user, or not a directory gets exactly one warning line
    naming it, no socket anywhere (neither there nor behind the link), and the program runs
    as it does without the preload; PYPROF_LOG=quiet silences the warning."""
    if kind == "other-owner" and os.getuid() != 0:
        pytest.skip("needs root to chown a directory to another user")
    value, real = unsafe_dir(tmp_path, kind)
    plain = run_work(ONE_PYTHON, env.env)
    r = run_work(ONE_PYTHON, env.preload_env(PYPROF_DIR=value))
    assert (r.returncode, r.stdout, own_lines(r.stderr)) == \
           (plain.returncode, plain.stdout, plain.stderr.splitlines())
    line = one_line("\n".join(pyprof_lines(r.stderr)))
    assert value.rstrip("/") in line, line
    if real.is_dir():
        assert sockets_in(real) == [], f"a socket was created in {real}"
    assert sockets_in(env.sockdir) == []
    q = run_work(ONE_PYTHON, env.preload_env(PYPROF_DIR=value, PYPROF_LOG="quiet"))
    assert (q.returncode, q.stdout, q.stderr) == (plain.returncode, plain.stdout, plain.stderr)


def test_missing_socket_directory_is_created_private(env, tmp_path):
    """A PYPROF_DIR that does not exist yet is created with mode 0700 and served from
    (the positive counterpart of the unsafe-directory test)."""
    d = tmp_path / "fresh"
    env.sockdir = d
    env.env["PYPROF_DIR"] = str(d)
    proc, pid = start_serving(env, ONE_PYTHON)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert env.status(pid)["pid"] == pid
    assert quit(proc) == 0
    assert proc.stderr.read() == ""


# ---- 10. unsupported interpreters ---------------------------------------------------------------------

OLD_PROGRAM = ("import sys\n"
               "sys.stdout.write('%d.%d.%d\\n' % tuple(sys.version_info[:3]))\n"
               "sys.stderr.write('err\\n')\n"
               "sys.exit(5)\n")


@pytest.mark.parametrize("old", OLD_PYTHONS)
def test_unsupported_python_is_inert(env, old):
    """Python 2.7, 3.6, 3.7 and 3.8: one warning line naming the exact version, no socket,
    and the program's stdout, own stderr and exit code as without the preload;
    PYPROF_LOG=quiet silences the warning."""
    plain = subprocess.run([old, "-c", OLD_PROGRAM], env=env.env, capture_output=True,
                           text=True, timeout=60)
    version = plain.stdout.strip()
    assert plain.returncode == 5 and version
    r = subprocess.run([old, "-c", OLD_PROGRAM], env=env.preload_env(), capture_output=True,
                       text=True, timeout=60)
    assert (r.returncode, r.stdout, own_lines(r.stderr)) == \
           (plain.returncode, plain.stdout, plain.stderr.splitlines())
    line = one_line("\n".join(pyprof_lines(r.stderr)))
    assert version in line, line
    assert list(env.sockdir.iterdir()) == []
    q = subprocess.run([old, "-c", OLD_PROGRAM], env=env.preload_env(PYPROF_LOG="quiet"),
                       capture_output=True, text=True, timeout=60)
    assert (q.returncode, q.stdout, q.stderr) == (plain.returncode, plain.stdout, plain.stderr)


# ---- 11. pyprofctl itself -------------------------------------------------------------------------

def listed_commands(env):
    r = env.ctl("--help")
    lines = r.stdout.split("commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [l.split()[0] for l in lines]


EXPECTED_COMMANDS = ["list", "status", "start", "stop", "reset", "dump", "top", "diff",
                     "convert", "run"]


def test_help_on_every_command(env):
    """`pyprofctl --help` (and -h, help) exit 0 and list every command; `pyprofctl COMMAND
    --help` (and -h) exits 0 and prints that command's usage on stdout, for every command
    the top-level help lists."""
    for flag in ("--help", "-h", "help"):
        r = env.ctl(flag)
        assert r.stdout.startswith("usage: pyprofctl COMMAND") and r.stderr == ""
    commands = listed_commands(env)
    assert set(EXPECTED_COMMANDS) <= set(commands), commands
    for command in commands:
        for flag in ("--help", "-h"):
            r = env.ctl(command, flag)
            assert r.stdout.startswith(f"usage: pyprofctl {command}"), (command, r.stdout)
            assert r.stderr == ""
        # --help anywhere among the arguments
        r = env.ctl(command, "123", "--help")
        assert r.stdout.startswith(f"usage: pyprofctl {command}")


@pytest.mark.parametrize("args", [
    [], ["frobnicate"], ["--frobnicate"],
    ["status"], ["start"], ["stop"], ["reset"], ["dump"], ["top"],
    ["status", "abc"], ["status", "0"], ["status", "-5"], ["status", "12x"],
    ["status", "99999999999"], ["stop", ""], ["dump", "1.5"],
    ["status", "1", "2"], ["dump", "1", "2"], ["dump", "--bogus", "1"], ["list", "extra"],
    ["run"],
], ids=lambda a: " ".join(a) or "no-args")
def test_usage_errors_exit_2(env, args):
    """Unknown commands, missing pids, malformed pids and unknown options exit 2 with a
    usage message on stderr and nothing on stdout."""
    r = env.ctl(*args, check=False)
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert "usage" in r.stderr


@pytest.mark.parametrize("command", ["status", "start", "stop", "reset", "dump"])
def test_missing_and_unprofiled_processes_exit_1(env, command):
    """A pid that no process has: exit 1, one line saying "no such process"; a live process
    without the agent (the test runner itself): exit 1, one line saying "not profiled"."""
    gone = missing_pid()
    r = env.ctl(command, gone, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert "no such process" in one_line(r.stderr)
    r = env.ctl(command, os.getpid(), check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert "not profiled" in one_line(r.stderr)


@pytest.mark.parametrize("code", [0, 3])
def test_run_writes_profile_and_keeps_exit_code(env, python, tmp_path, code):
    """`pyprofctl run -o out.folded -- python ctl_work.py CODE` lets the program's own
    output through, writes collapsed stacks naming its hot function `ctl_work_hot`, and
    exits with the program's exit code; no socket is left behind."""
    out = tmp_path / "out.folded"
    r = subprocess.run([str(CTL), "run", "-o", str(out), "--", python, CTL_WORK, str(code)],
                       env=env.ctl_env(PYPROF_INTERVAL="1ms"), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == code, r.stderr
    assert r.stdout == "out\n"
    assert "err" in own_lines(r.stderr)
    stacks = parse_collapsed(out.read_text())
    assert "ctl_work_hot" in leaves(stacks), stacks
    assert all(v > 0 for v in stacks.values())
    assert sockets_in(env.sockdir) == []


def test_run_propagates_exit_status_of_any_command(env, tmp_path):
    """`pyprofctl run` exits with the command's status for a non-Python command, and with
    128+N when the command is killed by signal N (with -o it still exits that way, saying
    that no profile was written); a missing command exits 127."""
    r = subprocess.run([str(CTL), "run", "--", "/bin/sh", "-c", "echo hi; exit 7"],
                       env=env.ctl_env(), capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (7, "hi\n")
    killer = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    r = subprocess.run([str(CTL), "run", "-o", str(tmp_path / "k.folded"), "--", ONE_PYTHON,
                        "-c", killer], env=env.ctl_env(), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 128 + signal.SIGKILL, r
    r = subprocess.run([str(CTL), "run", "--", str(tmp_path / "no-such-command")],
                       env=env.ctl_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 127 and r.stderr.strip()


def test_pyprof_output_written_at_exit(env, python, tmp_path):
    """PYPROF_OUTPUT=x.folded makes the agent write collapsed stacks naming the program's hot
    function when the program exits (here with sys.exit(3), whose code is kept)."""
    out = tmp_path / "x.folded"
    r = run_work(python, env.preload_env(PYPROF_OUTPUT=out, PYPROF_INTERVAL="1ms"), code=3)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    stacks = parse_collapsed(out.read_text())
    assert "ctl_work_hot" in leaves(stacks), stacks
    assert sockets_in(env.sockdir) == []


def test_pyprof_start_0_waits_for_start(env, python):
    """PYPROF_START=0: the agent serves but status shows "stopped" and 0 samples (while the
    workload burns CPU for half a second) until `pyprofctl start`; then samples come."""
    proc, pid = start_serving(env, python, PYPROF_START="0", PYPROF_INTERVAL="1ms")
    st = env.status(pid)
    assert st["state"] == "stopped" and st["samples"] == 0, st
    time.sleep(0.5)
    st = env.status(pid)
    assert st["state"] == "stopped" and st["samples"] == 0 and st["stacks"] == 0, st
    assert env.dump(pid) == {}
    env.ctl("start", pid)
    assert env.status(pid)["state"] == "sampling"
    wait_samples(env, pid, 10)
    assert "spin" in leaves(env.dump(pid))
    assert quit(proc) == 0


@pytest.mark.parametrize("setting", [{"PYTHONMALLOC": "malloc_debug"}, {"PYTHONDEVMODE": "1"}])
def test_debug_allocator_keeps_the_agent_off(env, python, setting):
    """With a debug allocator requested the agent stays off (its start-up hook's memory
    would be freed through the wrong allocator at exit): the program exits as it does
    without the preload, with no socket and no output of ours."""
    code = "print('ok')"
    plain = subprocess.run([python, "-c", code], env=dict(env.env, **setting),
                           capture_output=True, text=True, timeout=60)
    r = subprocess.run([python, "-c", code], env=env.preload_env(**setting),
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert sockets_in(env.sockdir) == []

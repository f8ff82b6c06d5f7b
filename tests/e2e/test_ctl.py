"""The control plane end to end: pyprofctl against real agents in real interpreters.

Each test starts real CPython processes with the real libpyprof.so preloaded and drives
them with the real pyprofctl; nothing is mocked.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

from conftest import CTL, LIB, OLD_PYTHONS, find_pyenv, wait_for_line, workload

SERVE = workload("serve.py")
ONE_PYTHON = find_pyenv("3.12") or "/usr/bin/python3"


def start_serving(env, python, **extra):
    proc = env.spawn([python, SERVE], **extra)
    pid = int(wait_for_line(proc, "ready").split()[1])
    env.wait_socket(pid)
    return proc, pid


def quit(proc):
    proc.stdin.write("quit\n")
    proc.stdin.flush()
    return proc.wait(timeout=30)


def total_samples(env, pid):
    return env.status(pid)["samples"]


def wait_samples(env, pid, at_least=1, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if total_samples(env, pid) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"no samples from {pid}")


# ---- list, status, start, stop, reset, dump ------------------------------------------------

def test_list_and_status_show_the_process(env, python):
    """`list` and `list --json` show a profiled process with its pid, Python version, state,
    mode and interval; `status --json` agrees with what the process is."""
    proc, pid = start_serving(env, python, PYPROF_INTERVAL="2ms")
    wait_samples(env, pid)
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True).stdout.strip()
    rows = [r for r in env.ctl("list").stdout.splitlines()[1:] if r.split()[0] == str(pid)]
    assert len(rows) == 1, env.ctl("list").stdout
    assert rows[0].split()[1:5] == [version, "sampling", "cpu", "2ms"], rows[0]
    listed = [p for p in json.loads(env.ctl("list", "--json").stdout) if p["pid"] == pid]
    assert listed and listed[0]["python"] == version and listed[0]["interval_us"] == 2000
    st = env.status(pid)
    assert st["pid"] == pid and st["state"] == "sampling" and st["mode"] == "cpu"
    assert SERVE in st["cmdline"]
    assert st["samples"] > 0 and st["stacks"] > 0 and st["ticks"] > 0
    assert quit(proc) == 0


def test_stop_freezes_start_resumes_reset_zeroes(env, python):
    """`stop` freezes the sample count, `start` makes it grow again, `reset` empties the
    profile (samples and stacks back to zero)."""
    proc, pid = start_serving(env, python, PYPROF_INTERVAL="1ms")
    wait_samples(env, pid, 20)
    env.ctl("stop", pid)
    frozen = total_samples(env, pid)
    time.sleep(0.5)
    assert total_samples(env, pid) == frozen
    assert env.status(pid)["state"] == "stopped"
    env.ctl("start", pid)
    wait_samples(env, pid, frozen + 10)
    env.ctl("stop", pid)
    env.ctl("reset", pid)
    st = env.status(pid)
    assert st["samples"] == 0 and st["stacks"] == 0, st
    assert env.dump(pid) == {}
    assert quit(proc) == 0


def test_dump_returns_the_workload_and_dump_reset_empties(env, python):
    """`dump` returns collapsed stacks naming the busy function; `dump --reset` returns the
    data and leaves an empty profile behind, atomically."""
    proc, pid = start_serving(env, python, PYPROF_INTERVAL="1ms")
    wait_samples(env, pid, 50)
    stacks = env.dump(pid)
    assert any(s.split(";")[-1].startswith("spin (") and "serve.py" in s for s in stacks), stacks
    env.ctl("stop", pid)
    taken = env.dump(pid, "--reset", "--samples")
    assert sum(taken.values()) > 0
    assert env.status(pid)["samples"] == 0
    assert env.dump(pid) == {}
    assert quit(proc) == 0


def test_dump_totals_match_status(env, python):
    """Once stopped, the sample counts of `dump --samples` add up to the `samples` that
    `status` reports: nothing is lost or invented between the two."""
    proc, pid = start_serving(env, python, PYPROF_INTERVAL="1ms")
    wait_samples(env, pid, 100)
    env.ctl("stop", pid)
    assert sum(env.dump(pid, "--samples").values()) == env.status(pid)["samples"]
    assert quit(proc) == 0


def test_pprof_output_decodes_with_protoc(env, tmp_path):
    """`dump -o x.pb.gz` writes gzip pprof that the real protoc decodes with our schema,
    with the sample types, the workload's function and thread labels."""
    if not subprocess.run(["which", "protoc"], capture_output=True).returncode == 0:
        pytest.skip("protoc (protobuf-compiler) is not installed")
    proc, pid = start_serving(env, ONE_PYTHON, PYPROF_INTERVAL="1ms")
    wait_samples(env, pid, 30)
    out = tmp_path / "p.pb.gz"
    env.ctl("dump", pid, "-o", out)
    raw = subprocess.run(["gzip", "-dc", str(out)], capture_output=True, check=True).stdout
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = subprocess.run(["protoc", "--decode", "perftools.profiles.Profile", "-I",
                           os.path.join(root, "proto"), "profile.proto"], input=raw,
                          capture_output=True, check=True).stdout.decode()
    for needed in ('"samples"', '"count"', '"cpu"', '"nanoseconds"', '"spin"',
                   '"thread_id"', '"thread_name"', "duration_nanos", "period: 1000000"):
        assert needed in text, needed
    assert quit(proc) == 0


# ---- fork and children -----------------------------------------------------------------------

FORK_CHILDREN = r"""
import json, multiprocessing as mp, os, subprocess, sys, time
def spin(seconds):
    t = time.time()
    while time.time() - t < seconds:
        pass
def report(q):
    spin(0.4)
    q.put(os.getpid())
    time.sleep(0.8)
if __name__ == "__main__":
    spin(0.2)
    pids = []
    pid = os.fork()
    if pid == 0:
        spin(0.4)
        print("forked", os.getpid(), flush=True)
        time.sleep(0.8)
        os._exit(0)
    pids.append(pid)
    for method in ("fork", "forkserver", "spawn"):
        ctx = mp.get_context(method)
        q = ctx.Queue()
        p = ctx.Process(target=report, args=(q,))
        p.start()
        print(method, q.get(timeout=30), flush=True)
        p.join()
    os.waitpid(pid, 0)
    print("done", flush=True)
    sys.stdin.readline()
"""


def test_fork_and_multiprocessing_children_get_their_own_agent(env, python, tmp_path):
    """The child of os.fork and multiprocessing children (fork, forkserver, spawn) each
    answer on their own socket with their own pid while they run; the parent keeps
    serving; 3.12+ prints no "multi-threaded fork" DeprecationWarning caused by the agent."""
    script = tmp_path / "children.py"
    script.write_text(FORK_CHILDREN)
    proc = env.spawn([python, "-W", "always::DeprecationWarning", str(script)],
                     PYPROF_INTERVAL="1ms")
    seen = {}
    while True:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        kind, *rest = line.split()
        if kind == "done":
            break
        child = int(rest[0])
        # The child is alive (it sleeps after printing): its own agent answers.
        st = env.status(child)
        assert st["pid"] == child, st
        seen[kind] = child
    assert set(seen) == {"forked", "fork", "forkserver", "spawn"}
    assert env.status(proc.pid)["pid"] == proc.pid
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=30) == 0
    assert "multi-threaded" not in proc.stderr.read()


def test_subprocess_running_python_is_profiled(env, python):
    """A Python program started with subprocess inherits LD_PRELOAD and gets its own agent."""
    code = ("import subprocess, sys\n"
            "p = subprocess.Popen([sys.executable, %r], stdin=subprocess.PIPE,"
            " stdout=subprocess.PIPE, text=True)\n"
            "print(p.stdout.readline().strip(), flush=True)\n"
            "sys.stdin.readline()\n"
            "p.stdin.write('quit\\n'); p.stdin.flush(); p.wait()\n") % SERVE
    proc = env.spawn([python, "-c", code])
    child = int(wait_for_line(proc, "ready").split()[1])
    env.wait_socket(child)
    assert env.status(child)["pid"] == child
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=30) == 0


# ---- exit -------------------------------------------------------------------------------------

@pytest.mark.parametrize("ending,code", [
    ("pass", 0),
    ("import sys; sys.exit(3)", 3),
    ("raise ValueError('boom')", 1),
    ("os._exit(6)", 6),
])
def test_socket_removed_at_exit(env, python, ending, code):
    """The socket exists while the program runs and is gone after a normal exit, sys.exit,
    an unhandled exception and os._exit; the exit code (and the traceback) are the
    program's own."""
    program = ("import os, time\n"
               "t = time.time()\n"
               "while time.time() - t < 0.3:\n    pass\n"
               "print(os.path.exists(os.environ['PYPROF_DIR'] + '/pyprof.%d.sock' % os.getpid()),"
               " flush=True)\n" + ending + "\n")
    r = subprocess.run([python, "-c", program], env=env.preload_env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == code, r.stderr
    assert r.stdout.strip() == "True"
    if code == 1:
        assert "ValueError: boom" in r.stderr
    assert list(env.sockdir.glob("pyprof.*.sock")) == []


def test_stale_socket_after_kill(env):
    """After kill -9 the socket is stale: `status` says so in one line, exits 1 and removes
    it; `list` then shows nothing."""
    proc, pid = start_serving(env, ONE_PYTHON)
    proc.kill()
    proc.wait()
    assert env.socket(pid).exists()
    r = env.ctl("status", pid, check=False)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "no such process" in r.stderr, r.stderr
    assert not env.socket(pid).exists()
    assert env.ctl("list").stdout.splitlines()[1:] == []


# ---- the host must not notice ------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["/bin/sh", "-c", "echo hi; echo err >&2; exit 7"],
    ["ls", "/"],
    ["git", "--version"],
    ["gcc", "--version"],
])
def test_non_python_program_is_untouched(env, argv):
    """A program that is not CPython behaves byte-identically under the preload (stdout,
    stderr, exit code) and leaves no socket."""
    plain = subprocess.run(argv, env=env.env, capture_output=True, timeout=60)
    preloaded = subprocess.run(argv, env=env.preload_env(), capture_output=True, timeout=60)
    assert (preloaded.returncode, preloaded.stdout, preloaded.stderr) == \
           (plain.returncode, plain.stdout, plain.stderr)
    assert list(env.sockdir.glob("*")) == []


@pytest.mark.parametrize("old", OLD_PYTHONS)
def test_unsupported_python_stays_inert(env, old):
    """Python 2.7, 3.6, 3.7 and 3.8: one warning line naming the version, no socket, and
    the program's output and exit code unchanged."""
    prog = "import sys; print('out'); sys.exit(5)"
    r = subprocess.run([old, "-c", prog], env=env.preload_env(), capture_output=True,
                       text=True, timeout=60)
    assert (r.returncode, r.stdout) == (5, "out\n")
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not supported" in lines[0], r.stderr
    assert list(env.sockdir.glob("*")) == []


@pytest.mark.parametrize("var,value,fallback", [
    ("PYPROF_INTERVAL", "abc", "10ms"),
    ("PYPROF_MODE", "gpu", "cpu"),
    ("PYPROF_START", "maybe", "1"),
    ("PYPROF_MAX_STACKS", "-4", "65536"),
    ("PYPROF_LOG", "loud", "warn"),
])
def test_invalid_environment_values_warn_once(env, var, value, fallback):
    """An invalid value gives exactly one stderr line naming the variable and the default
    used; the program's output and exit code are unchanged; PYPROF_LOG=quiet silences it."""
    prog = "print('out')"
    r = subprocess.run([ONE_PYTHON, "-c", prog], env=env.preload_env(**{var: value}),
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "out\n")
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and var in lines[0] and f"using {fallback}" in lines[0], r.stderr
    if var != "PYPROF_LOG":
        q = subprocess.run([ONE_PYTHON, "-c", prog],
                           env=env.preload_env(**{var: value, "PYPROF_LOG": "quiet"}),
                           capture_output=True, text=True, timeout=60)
        assert q.stderr == ""


def unsafe_dirs(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    wide = tmp_path / "wide"
    wide.mkdir()
    wide.chmod(0o777)
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    os.chown(other, 65534, 65534)
    return {"symlink": link, "world-writable": wide, "other owner": other}


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to chown a directory to another user")
@pytest.mark.parametrize("kind", ["symlink", "world-writable", "other owner"])
def test_unsafe_socket_directory_is_refused(env, tmp_path, kind):
    """A PYPROF_DIR that is a symlink, group/world-writable or owned by another user gets one
    warning and no socket; the program runs normally."""
    d = unsafe_dirs(tmp_path)[kind]
    code = ("import time\nt = time.time()\nwhile time.time() - t < 0.3:\n    pass\n"
            "print('out')\n")
    r = subprocess.run([ONE_PYTHON, "-c", code], env=env.preload_env(PYPROF_DIR=d),
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "out\n")
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "socket directory" in lines[0], r.stderr
    assert not list(d.glob("pyprof.*.sock"))


# ---- who may talk to the agent, and what they may send --------------------------------------

@pytest.mark.skipif(os.getuid() != 0 or not os.path.exists("/usr/bin/setpriv"),
                    reason="needs root and setpriv to act as another user")
def test_another_user_is_refused(env):
    """Another uid is refused even when file permissions would let it in: the directory and
    socket are opened up to everyone, yet a client running as nobody gets no answer (the
    agent checks SO_PEERCRED), pyprofctl exits 1 with one line, and the host keeps serving."""
    proc, pid = start_serving(env, ONE_PYTHON)
    env.sockdir.chmod(0o755)
    env.socket(pid).chmod(0o777)
    os.chmod(env.sockdir.parent, 0o755)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        str(CTL), "status", str(pid)], env=env.env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1, r
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "permission denied" in r.stderr
    assert proc.poll() is None
    assert env.status(pid)["pid"] == pid
    assert quit(proc) == 0


def raw_exchange(path, data, read=True):
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(path))   # blocking: waits for room in the listen backlog
    s.settimeout(10)
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
        except OSError:
            pass
    s.close()
    return got


def test_protocol_abuse_leaves_host_serving(env):
    """Garbage, an oversized length, a truncated frame, a valid header over a garbage
    payload and 200 connect-and-close clients: malformed requests get an error response
    frame, the others are dropped; the host keeps running and the agent keeps answering."""
    proc, pid = start_serving(env, ONE_PYTHON)
    path = env.socket(pid)
    # A well-framed payload that is not a valid request: an error response comes back.
    reply = raw_exchange(path, struct.pack(">I", 5) + b"\xff\xff\xff\xff\xff")
    assert len(reply) >= 4 and struct.unpack(">I", reply[:4])[0] == len(reply) - 4
    # An oversized length: dropped at once, nothing sent back.
    assert raw_exchange(path, b"\xff\xff\xff\xff" + b"x" * 100) == b""
    # Unframed garbage: whatever its first four bytes claim, the agent copes.
    raw_exchange(path, b"\x00\x00\x00\x08garbage!" + os.urandom(64))
    # Half a frame then close.
    raw_exchange(path, struct.pack(">I", 100) + b"abc", read=False)
    for _ in range(200):
        raw_exchange(path, b"", read=False)
    assert proc.poll() is None
    assert env.status(pid)["pid"] == pid
    assert quit(proc) == 0


# ---- pyprofctl itself ----------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["list", "status", "start", "stop", "reset", "dump", "top",
                                     "run", "convert"])
def test_every_command_has_help(env, command):
    """`pyprofctl COMMAND --help` prints the command's usage and exits 0."""
    r = env.ctl(command, "--help")
    assert r.stdout.startswith(f"usage: pyprofctl {command}")


@pytest.mark.parametrize("args", [["frobnicate"], ["status"], ["status", "abc"],
                                  ["dump", "1", "2"], ["dump", "--bogus", "1"], []])
def test_usage_errors_exit_2(env, args):
    """Unknown commands, missing or malformed pids and unknown options exit 2."""
    assert env.ctl(*args, check=False).returncode == 2


def test_errors_for_missing_and_unprofiled_processes(env):
    """A pid that does not exist: "no such process"; a live process without the agent:
    "not profiled"; both exit 1 with one line."""
    r = env.ctl("status", 4000000, check=False)
    assert r.returncode == 1 and "no such process" in r.stderr
    r = env.ctl("status", os.getpid(), check=False)
    assert r.returncode == 1 and "not profiled" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_run_writes_profile_and_keeps_exit_code(env, tmp_path):
    """`pyprofctl run -o out.folded -- python prog` profiles the program, writes collapsed
    stacks naming its function at exit, and exits with the program's exit code."""
    out = tmp_path / "out.folded"
    prog = ("import sys, time\n"
            "def work():\n"
            "    t = time.time()\n"
            "    while time.time() - t < 0.5:\n        pass\n"
            "work()\nsys.exit(4)\n")
    run_env = dict(env.env, PYPROF_INTERVAL="1ms")
    if os.environ.get("PYPROF_PRELOAD_FIRST"):   # the sanitizer pass of scripts/test
        run_env["LD_PRELOAD"] = os.environ["PYPROF_PRELOAD_FIRST"]
    r = subprocess.run([str(CTL), "run", "-o", str(out), "--", ONE_PYTHON, "-c", prog],
                       env=run_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 4, r.stderr
    text = out.read_text()
    assert any(line.split(";")[-1].startswith("work (") for line in text.splitlines()), text


def test_pyprof_output_written_at_exit(env, tmp_path):
    """PYPROF_OUTPUT=x.folded writes the profile when the process exits."""
    out = tmp_path / "x.folded"
    prog = ("import time\n"
            "def work():\n"
            "    t = time.time()\n"
            "    while time.time() - t < 0.5:\n        pass\n"
            "work()\n")
    r = subprocess.run([ONE_PYTHON, "-c", prog],
                       env=env.preload_env(PYPROF_OUTPUT=out, PYPROF_INTERVAL="1ms"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "work (" in out.read_text()


def test_start_paused_with_pyprof_start_0(env):
    """PYPROF_START=0: the agent serves but does not sample until `pyprofctl start`."""
    proc, pid = start_serving(env, ONE_PYTHON, PYPROF_START="0", PYPROF_INTERVAL="1ms")
    time.sleep(0.3)
    st = env.status(pid)
    assert st["state"] == "stopped" and st["samples"] == 0
    env.ctl("start", pid)
    wait_samples(env, pid, 5)
    assert quit(proc) == 0

"""Real servers under the preload: gunicorn's prefork workers and uvicorn on uvloop (which
brings its own use of libuv), from Debian's packages, driven with real HTTP requests."""
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import CTL, LIB, WORKLOADS

SYSTEM_PYTHON = "/usr/bin/python3"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path="/", timeout=10):
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.read().decode()
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def module_available(name):
    return subprocess.run([SYSTEM_PYTHON, "-c", f"import {name}"],
                          capture_output=True).returncode == 0


def socket_pids(env):
    return sorted(int(p.name.split(".")[1]) for p in env.sockdir.glob("pyprof.*.sock"))


@pytest.mark.skipif(not module_available("gunicorn"), reason="Debian's gunicorn is not installed")
def test_gunicorn_prefork_workers_each_get_an_agent(env):
    """gunicorn's master and each prefork worker (forked with os.fork) get their own socket
    and a fresh profile; the worker that served requests shows the app's function. Once
    gunicorn exits, `pyprofctl list` shows none of them and leaves no socket behind (a
    worker that gunicorn ends with a signal cannot remove its own: list cleans it)."""
    port = free_port()
    proc = env.spawn([SYSTEM_PYTHON, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
                      "--chdir", str(WORKLOADS), "wsgi_app:app"], PYPROF_INTERVAL="1ms")
    served = set()
    for _ in range(60):
        served.add(int(get(port).split()[0]))
    pids = socket_pids(env)
    assert proc.pid in pids, pids
    assert served <= set(pids), (served, pids)
    assert len(pids) == 3, pids   # master + 2 workers
    found = False
    for pid in served:
        st = env.status(pid)
        assert st["pid"] == pid
        found |= any("handle (" in stack and "wsgi_app.py" in stack for stack in env.dump(pid))
    assert found, "no worker profile shows wsgi_app.handle"
    proc.terminate()
    proc.wait(timeout=30)
    time.sleep(0.2)
    listing = env.ctl("list").stdout.splitlines()
    assert len(listing) == 1, listing   # the header only
    assert socket_pids(env) == []


@pytest.mark.skipif(not (module_available("uvicorn") and module_available("uvloop")),
                    reason="Debian's python3-uvicorn and python3-uvloop are not installed")
def test_uvicorn_on_uvloop_serves_and_is_profiled(env):
    """uvicorn on uvloop (an extension built on libuv, like the agent) serves requests
    correctly under the preload, and the profile shows the app's code: the agent's libuv
    does not get in the way of the host's."""
    port = free_port()
    proc = env.spawn([SYSTEM_PYTHON, "-m", "uvicorn", "--loop", "uvloop", "--port", str(port),
                      "--app-dir", str(WORKLOADS), "asgi_app:app"], PYPROF_INTERVAL="1ms")
    bodies = [get(port) for _ in range(40)]
    assert all(b.split()[0] == str(proc.pid) for b in bodies)
    stacks = env.dump(proc.pid)
    assert any("handle (" in s and "asgi_app.py" in s for s in stacks), list(stacks)[:5]
    proc.terminate()
    proc.wait(timeout=30)


def test_agent_libraries_stay_out_of_the_global_scope(env, python):
    """The agent is loaded with RTLD_LOCAL: a lookup in the process's global scope (what an
    extension bundling its own libuv would bind to) finds neither libuv nor the agent, only
    the loader's constructor-less presence. (Proves the isolation uvloop-style wheels need.)"""
    code = ("import ctypes, os, time\n"
            "time.sleep(0.3)\n"
            "g = ctypes.CDLL(None)\n"
            "print(hasattr(g, 'uv_version'), hasattr(g, 'pyprof_agent_start'),"
            " os.path.exists(os.environ['PYPROF_DIR'] + '/pyprof.%d.sock' % os.getpid()))\n")
    r = subprocess.run([python, "-c", code], env=env.preload_env(), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False", "True"], r.stdout


UWSGI_LIBPYTHON = "/lib/x86_64-linux-gnu/libpython3.11.so.1.0"


@pytest.mark.skipif(not (os.path.exists("/usr/bin/uwsgi") and os.path.exists(UWSGI_LIBPYTHON)),
                    reason="Debian's uwsgi-core and uwsgi-plugin-python3 are not installed")
def test_uwsgi_workers_each_get_an_agent(env):
    """uWSGI loads libpython with its python3 plugin (dlopen) after start-up. With the
    README's recipe (libpython preloaded ahead of libpyprof.so, and uWSGI's own
    --py-call-osafterfork so that its C-level fork runs Python's after-fork hooks), the
    master and every worker get their own agent, and the workers' profiles show the app."""
    port = free_port()
    proc = subprocess.Popen(
        ["/usr/bin/uwsgi", "--plugin", "python3", "--py-call-osafterfork",
         "--http-socket", f"127.0.0.1:{port}", "--chdir", str(WORKLOADS),
         "--wsgi-file", "wsgi_app.py", "--callable", "app", "--processes", "2", "--master",
         "--die-on-term"],
        env=dict(env.preload_env(PYPROF_INTERVAL="1ms"),
                 LD_PRELOAD=f"{UWSGI_LIBPYTHON} {env.preload_env()['LD_PRELOAD']}"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    env.procs.append(proc)
    served = set()
    for _ in range(60):
        served.add(int(get(port).split()[0]))
    pids = socket_pids(env)
    assert proc.pid in pids, pids
    assert served and served <= set(pids), (served, pids)
    found = any(any("handle (" in s and "wsgi_app.py" in s for s in env.dump(pid))
                for pid in served)
    assert found, "no uWSGI worker profile shows wsgi_app.handle"
    proc.terminate()
    proc.wait(timeout=30)

"""Helpers shared by the stress workloads (tests/workloads/stress_*.py, driven by
tests/stress/test_stress.py): a CPU-bound leaf, the names of every code object of a source
file (what the profile may call its frames), running a function in several threads, and
the RESULT/stdin protocol."""
import json
import sys
import threading


def crunch(n):
    """Pure-Python work: the leaf of most stress stacks."""
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def code_names(path):
    """Every name the interpreter gives a code object of `path` (co_qualname on 3.11+,
    co_name before): the only names a frame of that file can be reported with."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    todo, names = [compile(source, path, "exec")], set()
    while todo:
        code = todo.pop()
        names.add(getattr(code, "co_qualname", code.co_name))
        todo.extend(c for c in code.co_consts if hasattr(c, "co_consts"))
    return sorted(names)


def frame_names(*paths):
    """{path: [names]} for the workload's own files (itself and this module)."""
    return {p: code_names(p) for p in paths + (__file__,)}


def qualname(function):
    code = function.__code__
    return getattr(code, "co_qualname", code.co_name)


def in_threads(n, target, *args):
    """Run target(*args) in n threads at once, the calling one among them, and join them.
    Threads get a large C stack: 3.9 and 3.10 use it for Python calls too."""
    threading.stack_size(64 * 1024 * 1024)
    threads = [threading.Thread(target=target, args=args) for _ in range(n - 1)]
    for t in threads:
        t.start()
    target(*args)
    for t in threads:
        t.join()


def emit(marker, payload):
    print(marker + " " + json.dumps(payload), flush=True)


def wait_for_stdin():
    """Block until the test writes a line (or closes stdin)."""
    sys.stdin.readline()

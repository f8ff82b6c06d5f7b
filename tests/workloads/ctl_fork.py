"""Fork workload for the control tests (test_control.py).

The parent burns CPU in `parent_burn` first, then creates, one after the other, a child
with os.fork() and children with multiprocessing's fork, forkserver and spawn contexts.
Each child burns CPU in `child_work` until the parent lets it go. Protocol on stdout /
stdin (one line each):

    parent <pid>                 the parent has burnt its share; waits for a line
    child <kind> <pid>           a child is running; the parent waits for a line, then
    joined <kind> <exitcode>     lets the child go and reaps it
    warnings <n>                 "multi-threaded" fork DeprecationWarnings recorded (3.12+)
    after <pid>                  the parent burns in `parent_after`; waits for 'quit'

`--extra-thread` keeps a Python thread alive during the forks: a positive control that the
warning recording does catch the 3.12+ "multi-threaded" DeprecationWarning.
"""
import multiprocessing as mp
import os
import select
import sys
import threading
import time
import warnings


def burn(seconds):
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        for i in range(2000):
            x += i * i
    return x


def parent_burn():
    return burn(0.3)


def parent_after():
    return burn(0.3)


def child_work():
    x = 0
    for i in range(20000):
        x += i * i
    return x


def mp_child(q, done):
    q.put(os.getpid())
    while not done.is_set():
        child_work()


def recorded(caught):
    return sum("multi-threaded" in str(w.message) for w in caught)


def main():
    extra = "--extra-thread" in sys.argv
    if extra:
        stop = threading.Event()
        threading.Thread(target=stop.wait, daemon=True).start()
    parent_burn()
    print("parent", os.getpid(), flush=True)
    sys.stdin.readline()
    n_warnings = 0

    # os.fork()
    r, w = os.pipe()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os.close(w)
        while not select.select([r], [], [], 0)[0]:
            child_work()
        os._exit(0)
    n_warnings += recorded(caught)
    os.close(r)
    print("child os.fork", pid, flush=True)
    sys.stdin.readline()
    os.close(w)
    _, status = os.waitpid(pid, 0)
    print("joined os.fork", os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode")
          else status >> 8, flush=True)

    # multiprocessing
    for method in ("fork", "forkserver", "spawn"):
        ctx = mp.get_context(method)
        q = ctx.Queue()
        done = ctx.Event()
        p = ctx.Process(target=mp_child, args=(q, done))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeprecationWarning)
            p.start()
        n_warnings += recorded(caught)
        child = q.get(timeout=60)
        print("child", method, child, flush=True)
        sys.stdin.readline()
        done.set()
        p.join(60)
        print("joined", method, p.exitcode, flush=True)

    print("warnings", n_warnings, flush=True)
    if extra:
        stop.set()
    parent_after()
    print("after", os.getpid(), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break


if __name__ == "__main__":
    main()

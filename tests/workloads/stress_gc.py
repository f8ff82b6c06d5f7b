"""Heavy garbage collection: the main thread keeps 50,000 objects in reference cycles alive
and, in collect_loop(), makes cyclic garbage (some of it with finalizers: Finalized.__del__
computes when the collector frees it) and calls gc.collect() over and over; two threads
make cyclic garbage all the time with low thresholds (gc.set_threshold(200, 5, 5)), so that
automatic collections run in them too; a gc callback (on_gc) computes at the start of
every collection. on_gc and Finalized.__del__ only ever run inside a collection. Runs for
SECONDS, prints RESULT {"collections", "callbacks", "finalized", "pid", "names"} and waits
on stdin. Usage: stress_gc.py SECONDS"""
import gc
import os
import sys
import threading
import time

from stress_common import crunch, emit, frame_names, wait_for_stdin

DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
counts = {"callbacks": 0, "finalized": 0}


class Node:
    def __init__(self):
        self.other = None


class Finalized(Node):
    def __del__(self):
        counts["finalized"] += 1
        crunch(300)


def cycle(kind=Node):
    a, b = kind(), Node()
    a.other, b.other = b, a
    return a


def on_gc(phase, info):
    if phase == "start":
        counts["callbacks"] += 1
        crunch(300)


def churn_cycles(deadline):
    while time.monotonic() < deadline:
        for _ in range(500):
            cycle()


def collect_loop(deadline):
    keep = [cycle() for _ in range(25000)]
    n = 0
    while time.monotonic() < deadline:
        for i in range(2000):
            cycle(Finalized if i % 100 == 0 else Node)
        gc.collect()
        n += 1
    return n, len(keep)


def main():
    gc.set_threshold(200, 5, 5)
    gc.callbacks.append(on_gc)
    deadline = time.monotonic() + DURATION
    threads = [threading.Thread(target=churn_cycles, args=(deadline,)) for _ in range(2)]
    for t in threads:
        t.start()
    collections = collect_loop(deadline)[0]
    for t in threads:
        t.join()
    gc.callbacks.remove(on_gc)
    emit("RESULT", dict(counts, collections=collections, pid=os.getpid(),
                        names=frame_names(__file__)))
    wait_for_stdin()


if __name__ == "__main__":
    main()

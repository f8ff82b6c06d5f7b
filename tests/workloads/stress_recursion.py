"""Deep recursion in several threads at once: THREADS threads (the main one among them)
each recurse DEPTH levels through dive() down to bottom(), which computes, then unwind and
dive again, for SECONDS. bottom() is only ever called from the deepest dive() frame, so
every stack ending in it holds exactly DEPTH + 1 dive() frames. Prints RESULT {"depth",
"frames", "threads", "tids", "names"} and waits on stdin.
Usage: stress_recursion.py DEPTH THREADS SECONDS"""
import sys
import threading
import time

from stress_common import crunch, emit, frame_names, in_threads, wait_for_stdin

DEPTH, THREADS, DURATION = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])


def bottom():
    return crunch(30000)


def dive(n):
    if n == 0:
        return bottom()
    return dive(n - 1)


def worker(deadline, tids):
    tids.append(threading.get_native_id())
    while time.monotonic() < deadline:
        dive(DEPTH)


def main():
    sys.setrecursionlimit(DEPTH + 1000)
    tids = []
    in_threads(THREADS, worker, time.monotonic() + DURATION, tids)
    emit("RESULT", {"depth": DEPTH, "frames": DEPTH + 1, "threads": THREADS,
                    "tids": sorted(tids), "names": frame_names(__file__)})
    wait_for_stdin()


if __name__ == "__main__":
    main()

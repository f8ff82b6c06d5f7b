"""Exceptions thrown through deep stacks, over and over, in THREADS threads at once: each
throw goes down DEPTH levels of throw_down() to raise_at_bottom(), which computes and
raises Boom; on its way up the exception passes a `finally` at every level (every 10th
level computes in unwind_work() there), a context manager's __exit__ every 25th level,
and is caught and re-raised wrapped (`raise Wrapped(n) from e`) every 50th level, to be
caught at the top. raise_at_bottom() only runs under exactly DEPTH + 1 throw_down() frames,
and unwind_work() only under DEPTH + 1 - n of them for n a multiple of 10. Runs for
SECONDS, prints RESULT {"depth", "throws", "chain", "names"} and waits on stdin.
Usage: stress_exceptions.py DEPTH THREADS SECONDS"""
import sys
import time

from stress_common import crunch, emit, frame_names, in_threads, wait_for_stdin

DEPTH, THREADS, DURATION = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])


class Boom(Exception):
    pass


class Wrapped(Boom):
    pass


class Guard:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        crunch(50)
        return False   # let it propagate


def unwind_work():
    return crunch(2000)


def raise_at_bottom():
    crunch(3000)
    raise Boom("from the bottom")


def throw_down(n):
    try:
        if n == 0:
            return raise_at_bottom()
        if n % 25 == 0:
            with Guard():
                return throw_down(n - 1)
        return throw_down(n - 1)
    except Boom as e:
        if n % 50 == 0:
            raise Wrapped(n) from e
        raise
    finally:
        if n % 10 == 0:
            unwind_work()


def chain_length(e):
    n = 0
    while e is not None:
        n, e = n + 1, e.__cause__
    return n


def worker(deadline, counts):
    while time.monotonic() < deadline:
        try:
            throw_down(DEPTH)
        except Boom as e:
            counts.append(chain_length(e))


def main():
    sys.setrecursionlimit(DEPTH + 1000)
    counts = []
    in_threads(THREADS, worker, time.monotonic() + DURATION, counts)
    emit("RESULT", {"depth": DEPTH, "throws": len(counts), "chain": sorted(set(counts)),
                    "names": frame_names(__file__)})
    wait_for_stdin()


if __name__ == "__main__":
    main()

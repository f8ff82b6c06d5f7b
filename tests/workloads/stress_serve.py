"""A busy host for the control-socket stress tests: three threads (the main one among
them) compute rounds of work() until a line comes on stdin. A round walks stacks of 40
shapes (shape(d) recurses d levels), so the profile holds a few hundred stacks. work() is
deterministic: every round must return what the first one did. Prints "ready PID" once
running and, at the end, "result VALUE consistent": the same line with or without the
profiler, however many rounds ran. Usage: stress_serve.py"""
import os
import sys
import threading

from stress_common import crunch


def shape(d):
    if d == 0:
        return crunch(300)
    return shape(d - 1) + d


def work():
    return sum(shape(d) for d in range(40)) % 1000003


def rounds(stop, values):
    while not stop.is_set():
        values.append(work())


def main():
    stop, values = threading.Event(), [work()]
    threads = [threading.Thread(target=rounds, args=(stop, values)) for _ in range(2)]
    for t in threads:
        t.start()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    print("ready", os.getpid(), flush=True)
    rounds(stop, values)
    for t in threads:
        t.join()
    print("result", values[0], "consistent" if set(values) == {values[0]} else "INCONSISTENT",
          flush=True)


if __name__ == "__main__":
    main()

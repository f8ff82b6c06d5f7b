"""A process that exits while it is sampled and while its large profile is being dumped.

A thread builds a large profile of many distinct, deep stacks: over and over it descends a
random 100-300 levels through generated functions level0..., level1..., ... (each with a
2,000-character name and file name, so that the string table alone is hundreds of
kilobytes) and, at the bottom, runs many_lines(), a generated function of 200 distinct
lines, so that nearly every sample is a stack of its own. After SECONDS the program
prints READY {"pid"} and keeps building; the first line on stdin then says how it ends,
at once, while the thread is still computing:

    sys.exit        the main thread stops the builder and calls sys.exit(7)
    os._exit        the main thread calls os._exit(9) (the builder still computing)
    thread-os._exit the builder thread calls os._exit(11) at the bottom of its next descent

Usage: stress_exit.py SECONDS"""
import os
import random
import sys
import threading
import time

from stress_common import emit

DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 1.5
LINES, LEVELS = 200, 300
PAD = "_" + "deep" * 500   # every level's name is 2,000 characters long

namespace = {}
exec(compile("def many_lines(x):\n" +
             "".join(f"    x = (x * {i + 3} + {i}) % 1000003\n" for i in range(LINES)) +
             "    return x\n", "<many_lines>", "exec"), namespace)
for i in range(LEVELS + 1):   # each level in a "file" of its own, with a long name too
    call = f"level{i + 1}{PAD}(n - 1, x)" if i < LEVELS else "bottom(x)"
    exec(compile(f"def level{i}{PAD}(n, x):\n"
                 f"    if n == 0:\n"
                 f"        return bottom(x)\n"
                 f"    return {call}\n", f"<level {i}{PAD}>", "exec"), namespace)
many_lines = namespace["many_lines"]
descend = namespace[f"level0{PAD}"]


def bottom(x):
    for _ in range(20):
        x = many_lines(x)
    return x


namespace["bottom"] = bottom


def build(stop, exit_now):
    rng = random.Random(99)
    x = 1
    while not stop.is_set():
        x = descend(rng.randrange(100, 300), x)
        if exit_now.is_set():
            os._exit(11)


def main():
    sys.setrecursionlimit(2000)
    stop, exit_now = threading.Event(), threading.Event()
    builder = threading.Thread(target=build, args=(stop, exit_now))
    builder.start()
    time.sleep(DURATION)
    emit("READY", {"pid": os.getpid()})
    how = sys.stdin.readline().strip()
    if how == "sys.exit":
        stop.set()
        builder.join()
        sys.exit(7)
    if how == "os._exit":
        os._exit(9)
    if how == "thread-os._exit":
        exit_now.set()
        builder.join()
    stop.set()
    raise SystemExit(f"unknown ending {how!r}")


if __name__ == "__main__":
    main()

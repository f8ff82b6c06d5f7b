"""Labels. Usage: sampler_labels.py busy|gc [SECONDS]

  busy: a thread computes in pure Python in busy_loop() (it holds the GIL) while the main
        thread waits for it; prints RESULT {"pid", "busy_tid"} and waits on stdin.
  gc:   the main thread keeps 100,000 objects in reference cycles alive and, in
        collect_loop(), makes more cyclic garbage and calls gc.collect() over and over;
        prints RESULT {"pid", "main_tid", "collections"} and waits on stdin.
"""
import gc
import json
import os
import sys
import threading
import time

DURATION = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0


class Node:
    def __init__(self):
        self.other = None


def pair():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


def busy_loop(deadline, out):
    out["busy_tid"] = threading.get_native_id()
    x = 0
    while time.monotonic() < deadline:
        for i in range(10000):
            x = (x * 31 + i) % 1000003
    return x


def collect_loop(deadline):
    keep = [pair() for _ in range(50000)]
    n = 0
    while time.monotonic() < deadline:
        for _ in range(2000):
            pair()
        gc.collect()
        n += 1
    return n, len(keep)


def main():
    mode = sys.argv[1]
    deadline = time.monotonic() + DURATION
    out = {"pid": os.getpid()}
    if mode == "busy":
        t = threading.Thread(target=busy_loop, args=(deadline, out))
        t.start()
        t.join()
    elif mode == "gc":
        out["main_tid"] = threading.get_native_id()
        out["collections"] = collect_loop(deadline)[0]
    else:
        raise SystemExit("unknown mode " + mode)
    print("RESULT " + json.dumps(out), flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()

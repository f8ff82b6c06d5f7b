"""Distinct-stack generator for scripts/bench (dump latency and profile memory at 1k/10k/100k
distinct stacks): THREADS threads each walk a random path DEPTH calls deep through WIDTH
generated functions and sleep a moment at the bottom, over and over, so that a wall-mode
sampler sees a new stack in nearly every thread on every tick. A line on stdin stops the
threads (the process then only waits, so that what is measured next is the agent alone);
the program ends when stdin closes.

Usage: stacks.py [THREADS] [WIDTH] [DEPTH]"""
import random
import sys
import threading
import time

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
WIDTH = int(sys.argv[2]) if len(sys.argv) > 2 else 16
DEPTH = int(sys.argv[3]) if len(sys.argv) > 3 else 6

ns = {"time": time}
for i in range(WIDTH):
    exec(f"def step{i}(path):\n"
         f"    if not path:\n"
         f"        time.sleep(0.002)\n"
         f"        return\n"
         f"    return STEPS[path[0]](path[1:])\n", ns)
ns["STEPS"] = [ns[f"step{i}"] for i in range(WIDTH)]


def wander(seed, stop):
    rng = random.Random(seed)
    while not stop.is_set():
        path = [rng.randrange(WIDTH) for _ in range(DEPTH)]
        ns["STEPS"][path[0]](path[1:])


stop = threading.Event()
threads = [threading.Thread(target=wander, args=(i, stop), daemon=True) for i in range(THREADS)]
for t in threads:
    t.start()
print("ready", flush=True)
sys.stdin.readline()
stop.set()
for t in threads:
    t.join()
print("quiet", flush=True)
sys.stdin.read()

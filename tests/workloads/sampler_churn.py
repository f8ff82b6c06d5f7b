"""Thread churn: for SECONDS, keep about four short-lived threads alive at all times, each
living 1-10 ms (computing, sleeping, or both), joined as they finish. Prints CHURNING when
it starts, RESULT {"threads": N} at the end, then waits on stdin.
Usage: sampler_churn.py [SECONDS]"""
import json
import random
import sys
import threading
import time

DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0


def spin_for(seconds):
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        for i in range(200):
            x = (x * 31 + i) % 1000003
    return x


def short_life(ms, kind):
    if kind == 0:
        spin_for(ms / 1000.0)
    elif kind == 1:
        time.sleep(ms / 1000.0)
    else:
        spin_for(ms / 2000.0)
        time.sleep(ms / 2000.0)


def main():
    rng = random.Random(1234)
    deadline = time.monotonic() + DURATION
    alive = []
    created = 0
    print("CHURNING", flush=True)
    while time.monotonic() < deadline:
        while len(alive) < 4:
            t = threading.Thread(target=short_life, args=(rng.uniform(1, 10), rng.randrange(3)))
            t.start()
            alive.append(t)
            created += 1
        alive[0].join()
        alive = [t for t in alive if t.is_alive()]
    for t in alive:
        t.join()
    print("RESULT " + json.dumps({"threads": created}), flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()

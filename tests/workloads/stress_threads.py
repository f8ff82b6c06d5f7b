"""Thread churn with deep stacks: for SECONDS (and at most MAX_ROUNDS rounds), each round
creates a fresh ThreadPoolExecutor of 4 threads and gives it 12 tasks that recurse 50-400
frames deep and compute at the bottom, while 4 short-lived threading.Threads dive 100-600
frames deep and end there: by returning, by an uncaught exception thrown from the bottom
(counted by a quiet threading.excepthook), or by SystemExit. The pool is shut down
(its threads joined) at the end of every round, so threads are born and die all the time.
The churn ends after SECONDS, MAX_ROUNDS rounds, or a first line on stdin, whichever
comes first. Prints CHURNING when it starts, RESULT {"threads" (short-lived ones),
"rounds" (pools), "tasks", "uncaught", "names"} at the end, then waits for another line.
Usage: stress_threads.py SECONDS"""
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from stress_common import crunch, emit, frame_names, wait_for_stdin

DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
MAX_ROUNDS = 400


def pool_dive(n, work):
    if n == 0:
        return crunch(work)
    return pool_dive(n - 1, work) + 1


class DeepEnd(Exception):
    pass


def thread_dive(n, work, ending):
    if n > 0:
        return thread_dive(n - 1, work, ending)
    crunch(work)
    if ending == 1:
        raise DeepEnd("thrown from the bottom of a deep stack")
    if ending == 2:
        sys.exit(0)   # SystemExit ends a thread silently
    return work


def main():
    rng = random.Random(4321)
    uncaught = []
    threading.excepthook = lambda args: uncaught.append(args.exc_type.__name__)
    sys.setrecursionlimit(2000)
    deadline = time.monotonic() + DURATION
    enough = threading.Event()
    threading.Thread(target=lambda: (wait_for_stdin(), enough.set()), daemon=True).start()
    threads = rounds = tasks = 0
    print("CHURNING", flush=True)
    while time.monotonic() < deadline and rounds < MAX_ROUNDS and not enough.is_set():
        pool = ThreadPoolExecutor(max_workers=4)
        futures = [pool.submit(pool_dive, rng.randrange(50, 400), rng.randrange(2000, 8000))
                   for _ in range(12)]
        short = [threading.Thread(target=thread_dive,
                                  args=(rng.randrange(100, 600), rng.randrange(5000, 30000), k % 3))
                 for k in range(4)]
        for t in short:
            t.start()
        for f in futures:
            f.result()
        for t in short:
            t.join()
        pool.shutdown(wait=True)
        threads += len(short)
        tasks += len(futures)
        rounds += 1
    emit("RESULT", {"threads": threads, "rounds": rounds, "tasks": tasks,
                    "uncaught": sorted(set(uncaught)), "n_uncaught": len(uncaught),
                    "names": frame_names(__file__)})
    wait_for_stdin()


if __name__ == "__main__":
    main()

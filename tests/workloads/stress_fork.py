"""Fork storms: a thread computes in Python all along while the main thread, ROUNDS times
over and for each multiprocessing context in (fork, forkserver): creates a Pool of 3
workers, maps 12 tasks on it, closes and joins it (close + join, never terminate: each
worker leaves by itself); then starts 4 Processes at once and joins them. Every child
(pool worker or process) asks its own agent, once, with `$PYPROFCTL status OWN_PID`, for
its status: pool tasks report whether their worker's agent answered with the worker's
pid; a process exits 0 only if its agent did (3 if not). The exit codes of every worker
and process are collected. The busy thread runs busy_loop() throughout.
Prints STORMING when it starts, RESULT {"codes", "answers", "children", "rounds"}
(answers: for each pool worker, whether its agent answered), then the main thread
computes in after_storm() until a line comes on stdin. Usage: stress_fork.py ROUNDS"""
import functools
import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import warnings

from stress_common import crunch, emit, wait_for_stdin

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3


@functools.lru_cache(maxsize=None)
def own_agent_answers():
    """Whether our own agent answers `pyprofctl status` with our pid (asked once per
    process)."""
    r = subprocess.run([os.environ["PYPROFCTL"], "status", str(os.getpid()), "--json"],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and json.loads(r.stdout)["pid"] == os.getpid()


def task(n):
    crunch(n)
    return os.getpid(), own_agent_answers()


def process_main(n):
    crunch(n)
    sys.exit(0 if own_agent_answers() else 3)


def storm_round(ctx, codes, answers):
    pool = ctx.Pool(3)
    workers = list(pool._pool)   # the Process objects: their exit codes, after join()
    answers.update(pool.map(task, [20000] * 12))
    pool.close()
    pool.join()
    codes += [w.exitcode for w in workers]
    procs = [ctx.Process(target=process_main, args=(20000,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    codes += [p.exitcode for p in procs]


def busy_loop(stop):
    while not stop.is_set():
        crunch(10000)


def after_storm(stop):
    while not stop.is_set():
        crunch(10000)


def main():
    # 3.12+ warns that forking a multi-threaded process (our busy thread) may deadlock:
    # that is the program's own doing, not the agent's (whose threads stop around a fork).
    warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
    stop = threading.Event()
    busy = threading.Thread(target=busy_loop, args=(stop,))
    busy.start()
    print("STORMING", flush=True)
    codes, answers = [], {}
    for _ in range(ROUNDS):
        for method in ("fork", "forkserver"):
            storm_round(mp.get_context(method), codes, answers)
    emit("RESULT", {"codes": codes, "answers": list(answers.values()),
                    "children": len(codes), "rounds": ROUNDS})
    waiter = threading.Thread(target=lambda: (wait_for_stdin(), stop.set()), daemon=True)
    waiter.start()
    after_storm(stop)
    busy.join()


if __name__ == "__main__":
    main()

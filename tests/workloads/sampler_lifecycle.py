"""Process life-cycle events while the sampler runs.

  sampler_lifecycle.py exit KIND DELAY_MS
      two threads compute in Python and two daemon threads compute in C without the GIL
      (hashlib.pbkdf2_hmac, one call of about 2 s); the main thread computes for
      DELAY_MS, then the process ends by KIND: "return" (exit 0), "sys.exit" (3),
      "os._exit" (5) or "raise" (an uncaught exception: 1). The Python threads are told
      to stop as the main thread leaves, so they are still computing while the
      interpreter starts to exit; the daemon threads are computing until the end.
  sampler_lifecycle.py fork N
      a thread computes in Python while the main thread forks N children, one by one; each
      child computes in child_work() (and starts a thread of its own), then leaves with
      os._exit(10 + i). The parent prints RESULT {"children": [...]} (exit code, or
      -signal), then computes in after_forks() until stdin is closed.
  sampler_lifecycle.py shutdown
      daemon threads computing (in C, without the GIL) through the interpreter's
      finalisation, and atexit handlers (registered once the program runs) that compute
      and allocate.

Why the daemon threads compute in C rather than in Python: CPython 3.10 itself crashes
now and then (about 1 run in 80 here, without any profiler) when a daemon thread that
waits for the GIL wakes up after the interpreter was freed (take_gil resetting a drop
request on the freed interpreter). A daemon thread inside one long GIL-free call never
waits for the GIL at exit, so a crash here is never CPython's own.
"""
import atexit
import hashlib
import json
import os
import sys
import threading
import time


def spin(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def spin_for(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        spin(5000)


def pbkdf2_forever():
    while True:
        hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 10000000)


def spin_until(stop):
    while not stop.is_set():
        spin(5000)


def start_daemons():
    for _ in range(2):
        threading.Thread(target=pbkdf2_forever, daemon=True).start()


def exit_mode(kind, delay_ms):
    start_daemons()
    stop = threading.Event()
    for _ in range(2):
        threading.Thread(target=spin_until, args=(stop,)).start()
    try:
        spin_for(delay_ms / 1000.0)
        if kind == "os._exit":
            os._exit(5)
    finally:
        stop.set()
    if kind == "return":
        return
    if kind == "sys.exit":
        sys.exit(3)
    if kind == "raise":
        raise RuntimeError("exit by an uncaught exception")
    raise SystemExit("unknown kind " + kind)


def child_work(i):
    t = threading.Thread(target=spin_for, args=(0.05,))
    t.start()
    spin_for(0.1)
    t.join()
    os._exit(10 + i)


def after_forks(stop):
    while not stop.is_set():
        spin(10000)


def fork_mode(n):
    stop = threading.Event()
    busy = threading.Thread(target=spin_until, args=(stop,))
    busy.start()
    spin_for(0.2)
    codes = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                child_work(i)
            finally:
                os._exit(99)
        spin_for(0.05)
        _, status = os.waitpid(pid, 0)
        codes.append(os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status))
    t = threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True)
    print("RESULT " + json.dumps({"children": codes}), flush=True)
    t.start()
    after_forks(stop)
    busy.join()


def exit_work():
    junk = [[i, str(i)] for i in range(20000)]
    spin_for(0.2)
    return len(junk)


def exit_alloc():
    d = {}
    for i in range(50000):
        d[i] = [i] * 3
    spin_for(0.05)


def shutdown_mode():
    start_daemons()
    spin_for(0.3)   # the agent's own atexit hook is in place long before ours
    atexit.register(exit_work)
    atexit.register(exit_alloc)
    spin_for(0.1)


def main():
    mode = sys.argv[1]
    if mode == "exit":
        exit_mode(sys.argv[2], int(sys.argv[3]))
    elif mode == "fork":
        fork_mode(int(sys.argv[2]))
    elif mode == "shutdown":
        shutdown_mode()
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()

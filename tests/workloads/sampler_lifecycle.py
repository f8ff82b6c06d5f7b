"""Process life-cycle events while the sampler runs.

  sampler_lifecycle.py exit KIND DELAY_MS
      three daemon threads compute (two in Python, one hashing with the GIL released),
      the main thread computes for DELAY_MS, then the process ends by KIND: "return"
      (exit 0), "sys.exit" (3), "os._exit" (5) or "raise" (an uncaught exception: 1).
  sampler_lifecycle.py fork N
      a busy daemon thread runs while the main thread forks N children, one by one; each
      child computes in child_work() (and starts a thread of its own), then leaves with
      os._exit(10 + i). The parent prints RESULT {"children": [...]} (exit code, or
      -signal), then computes in after_forks() until stdin is closed.
  sampler_lifecycle.py shutdown
      daemon threads still computing at exit, and atexit handlers (registered once the
      program runs) that compute and allocate: the interpreter finalises with both.
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


def spin_forever():
    while True:
        spin(10000)


def hash_forever():
    buf = b"\x11" * (1 << 20)
    while True:
        hashlib.sha256(buf).digest()


def spin_for(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        spin(5000)


def start_daemons():
    for target in (spin_forever, spin_forever, hash_forever):
        threading.Thread(target=target, daemon=True).start()


def exit_mode(kind, delay_ms):
    start_daemons()
    spin_for(delay_ms / 1000.0)
    if kind == "return":
        return
    if kind == "sys.exit":
        sys.exit(3)
    if kind == "os._exit":
        os._exit(5)
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
    threading.Thread(target=spin_forever, daemon=True).start()
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
    stop = threading.Event()
    t = threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True)
    print("RESULT " + json.dumps({"children": codes}), flush=True)
    t.start()
    after_forks(stop)


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

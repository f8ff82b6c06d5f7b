"""Ground truth for attribution: three threads run functions in fixed proportions and
measure the CPU time of each call with time.thread_time(). At the end the measured CPU per
function is printed as JSON (RESULT {...}) and the process waits on stdin, still profiled.

Threads: one runs spin_alpha and spin_beta (1:3 by work), one runs spin_gamma; with
"mixed", a third one hashes in hash_delta (hashlib releases the GIL, so it runs beside the
others) and spins in spin_epsilon. Usage: sampler_attribution.py pure|mixed [SECONDS]
"""
import hashlib
import json
import sys
import threading
import time

MIXED = sys.argv[1] == "mixed"
DURATION = float(sys.argv[2]) if len(sys.argv) > 2 else 2.5
measured = {}
measured_lock = threading.Lock()


def account(name, fn, *args):
    t0 = time.thread_time()
    fn(*args)
    dt = time.thread_time() - t0
    with measured_lock:
        measured[name] = measured.get(name, 0.0) + dt


def spin_alpha(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def spin_beta(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def spin_gamma(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def spin_epsilon(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def hash_delta(buf, n):
    for _ in range(n):
        hashlib.sha256(buf).digest()


def worker_one(deadline):
    while time.monotonic() < deadline:
        account("spin_alpha", spin_alpha, 60000)
        account("spin_beta", spin_beta, 180000)


def worker_two(deadline):
    while time.monotonic() < deadline:
        account("spin_gamma", spin_gamma, 120000)


def worker_three(deadline):
    buf = b"\x5a" * (4 << 20)
    while time.monotonic() < deadline:
        account("hash_delta", hash_delta, buf, 4)
        account("spin_epsilon", spin_epsilon, 60000)


def main():
    deadline = time.monotonic() + DURATION
    threads = [threading.Thread(target=w, args=(deadline,), name=w.__name__)
               for w in (worker_one, worker_two) + ((worker_three,) if MIXED else ())]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("RESULT " + json.dumps(measured), flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()

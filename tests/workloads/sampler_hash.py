"""A thread hashing large buffers with hashlib.sha256 (the GIL is released while it
hashes) for SECONDS, measuring its own CPU time with time.thread_time(). Prints
RESULT {"cpu_s": ..., "tid": ...} and waits on stdin. Usage: sampler_hash.py [SECONDS]"""
import hashlib
import json
import sys
import threading
import time

DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
result = {}


def hash_worker(deadline):
    buf = b"\xa5" * (4 << 20)
    t0 = time.thread_time()
    n = 0
    while time.monotonic() < deadline:
        hashlib.sha256(buf).digest()
        n += 1
    result["cpu_s"] = time.thread_time() - t0
    result["hashes"] = n
    result["tid"] = threading.get_native_id()


def main():
    t = threading.Thread(target=hash_worker, args=(time.monotonic() + DURATION,))
    t.start()
    t.join()
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()

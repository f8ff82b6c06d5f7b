"""A thread blocked in one long time.sleep beside a pure-Python busy thread. Prints
READY {...} once the sleeper is asleep, then waits on stdin (the busy thread spins until
then, and is joined; the sleeper is a daemon, asleep at exit). Usage: sampler_idle.py"""
import json
import sys
import threading
import time

stop = threading.Event()
ids = {}


def spin(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def sleeper():
    ids["sleeper"] = threading.get_native_id()
    time.sleep(3600)


def busy():
    ids["busy"] = threading.get_native_id()
    while not stop.is_set():
        spin(20000)


def main():
    threading.Thread(target=sleeper, daemon=True).start()
    worker = threading.Thread(target=busy)
    worker.start()
    while len(ids) < 2:
        time.sleep(0.01)
    time.sleep(0.3)   # the sleeper is in time.sleep by now
    print("READY " + json.dumps(ids), flush=True)
    sys.stdin.readline()
    stop.set()
    worker.join()


if __name__ == "__main__":
    main()

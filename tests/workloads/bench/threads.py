"""Multi-threaded benchmark: N threads each running pure-Python work (GIL contention), or
many mostly-idle threads (the many-threads case) with one busy one."""
import sys
import threading
import time


def work(n):
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


def idle(stop):
    while not stop.is_set():
        time.sleep(0.01)


if __name__ == "__main__":
    busy = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    idlers = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2500000
    stop = threading.Event()
    sleepers = [threading.Thread(target=idle, args=(stop,)) for _ in range(idlers)]
    workers = [threading.Thread(target=work, args=(n,)) for _ in range(busy)]
    for t in sleepers + workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    for t in sleepers:
        t.join()
    print("done")

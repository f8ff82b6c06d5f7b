"""A long-running workload for control tests: burns CPU in `spin` until stdin closes or
it is told 'quit'. Prints 'ready <pid>' once running."""
import os
import sys
import threading


def spin():
    x = 0
    for i in range(20000):
        x += i * i
    return x


stop = threading.Event()


def watch_stdin():
    for line in sys.stdin:
        if line.strip() == "quit":
            break
    stop.set()


threading.Thread(target=watch_stdin, daemon=True).start()
print("ready", os.getpid(), flush=True)
while not stop.is_set():
    spin()

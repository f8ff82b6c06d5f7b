"""An example service for scripts/demo: a few worker threads handling fake requests that
parse JSON, render templates, hash payloads (GIL released) and wait on I/O. Runs until
stdin closes or for --seconds."""
import argparse
import hashlib
import json
import os
import random
import re
import sys
import threading
import time

WORDS = re.compile(r"[a-z]+")


def parse_request(raw):
    return json.loads(raw)


def render(order):
    lines = [f"{item['name']:<20}{item['qty']:>5}{item['price']:>10.2f}" for item in order["items"]]
    total = sum(item["qty"] * item["price"] for item in order["items"])
    return "\n".join(lines) + f"\nTOTAL {total:.2f}"


def tokenize(text):
    return WORDS.findall(text.lower())


def checksum(payload):
    return hashlib.sha256(payload).hexdigest()


def wait_for_database():
    time.sleep(0.002)


def handle(rng):
    order = {"id": rng.randrange(10**6),
             "items": [{"name": f"item{rng.randrange(100)}", "qty": rng.randrange(1, 9),
                        "price": rng.random() * 100} for _ in range(40)]}
    request = parse_request(json.dumps(order))
    page = render(request)
    words = tokenize(page * 3)
    wait_for_database()
    digest = checksum(page.encode() * 200)
    return len(words), digest


def worker(stop, seed):
    rng = random.Random(seed)
    while not stop.is_set():
        handle(rng)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=0, help="run this long (0: until stdin closes)")
    ap.add_argument("--threads", type=int, default=3)
    args = ap.parse_args()
    stop = threading.Event()
    threads = [threading.Thread(target=worker, args=(stop, i), name=f"worker-{i}")
               for i in range(args.threads)]
    for t in threads:
        t.start()
    print("ready", os.getpid(), flush=True)
    if args.seconds > 0:
        time.sleep(args.seconds)
    else:
        sys.stdin.read()
    stop.set()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()

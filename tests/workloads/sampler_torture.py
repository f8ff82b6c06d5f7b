"""Stacks that change as fast as possible, for a stack walker that reads them while they
change: threads make calls of varying depth through functions with different numbers of
locals (so frames start at ever different addresses), run generators, raise and catch
exceptions, compile and unmarshal code, and import modules afresh (the import system
goes back and forth between C and Python, leaving C-stack entry frames behind).
Runs for SECONDS, prints RESULT {...} and exits 0. Usage: sampler_torture.py [SECONDS]"""
import importlib
import json
import marshal
import random
import sys
import threading
import time

DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0


def few(n):
    return many(n - 1) if n > 0 else 0


def many(n):
    a, b, c, d, e, f, g, h = n, -1, n * 2, None, (), "x", 1.5, [n]
    if n <= 0:
        return a
    return few(n - 1) + (b if d is None else 0) + c + len(e) + len(f) + int(g) + len(h)


def gen(n):
    for i in range(n):
        yield few(i % 7)


def thrower(n):
    if n <= 0:
        raise ValueError(n)
    return thrower(n - 1)


MODULES = ["json", "email.message", "http.client", "xml.dom.minidom", "argparse",
           "decimal", "logging.handlers", "csv", "textwrap", "difflib", "fractions",
           "configparser", "ipaddress", "statistics", "string", "calendar", "pprint"]
import_lock = threading.Lock()


def fresh_import(rng):
    name = rng.choice(MODULES)
    with import_lock:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        importlib.import_module(name)


def caller(rng, deadline, counts):
    source = "def f(x):\n    return [x * i for i in range(10)]\n" * 3
    while time.monotonic() < deadline:
        k = rng.randrange(6)
        if k == 0:
            few(rng.randrange(1, 60))
        elif k == 1:
            sum(gen(rng.randrange(1, 30)))
        elif k == 2:
            try:
                thrower(rng.randrange(1, 40))
            except ValueError:
                pass
        elif k == 3:
            exec(marshal.loads(marshal.dumps(compile(source, "<torture>", "exec"))), {})
        elif k == 4:
            fresh_import(rng)
        else:
            many(rng.randrange(1, 60))
        counts[0] += 1


def main():
    deadline = time.monotonic() + DURATION
    counts = [0]
    threads = [threading.Thread(target=caller, args=(random.Random(i), deadline, counts))
               for i in range(3)]
    for t in threads:
        t.start()
    caller(random.Random(99), deadline, counts)
    for t in threads:
        t.join()
    print("RESULT " + json.dumps({"calls": counts[0]}), flush=True)


if __name__ == "__main__":
    main()

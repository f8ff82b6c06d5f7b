"""Line numbers: hot() spends nearly all its time on the line marked HOT below; it is
called through middle() and outer() (the latter with a call spread over two lines).
Inside hot(), traceback.extract_stack() records the line of every caller's call site.
Runs for SECONDS, then prints RESULT {"hot_line": ..., "call_sites": {name: line}} and
waits on stdin. Usage: sampler_lines.py [SECONDS]"""
import json
import sys
import time
import traceback

DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
CALL_SITES = {}


def hot(n):
    if not CALL_SITES:
        CALL_SITES.update({f.name: f.lineno for f in traceback.extract_stack()[:-1]})
    acc = 0
    for i in range(n): acc = (acc * 31 + i) % 1000003  # HOT
    return acc


def middle(n):
    return hot(n)


def outer(n):
    x = middle(
        n)
    return x


def find_marker():
    marker = "# " + "HOT"
    with open(__file__, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.rstrip().endswith(marker):
                return number
    raise AssertionError("no marker")


def main():
    deadline = time.monotonic() + DURATION
    while time.monotonic() < deadline:
        outer(100000)
    print("RESULT " + json.dumps({"hot_line": find_marker(), "call_sites": CALL_SITES}),
          flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()

"""Deep recursion: recurse(DEPTH) calls itself down to 0, where spin_bottom computes for a
while; repeated for SECONDS. Prints RESULT {"depth": DEPTH, "frames": DEPTH + 1} and
waits on stdin. Usage: sampler_recursion.py [DEPTH] [SECONDS]"""
import json
import sys
import time

DEPTH = int(sys.argv[1]) if len(sys.argv) > 1 else 600
DURATION = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0


def spin_bottom(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def recurse(n):
    if n == 0:
        return spin_bottom(200000)
    return recurse(n - 1)


def main():
    sys.setrecursionlimit(max(sys.getrecursionlimit(), DEPTH + 200))
    deadline = time.monotonic() + DURATION
    while time.monotonic() < deadline:
        recurse(DEPTH)
    print("RESULT " + json.dumps({"depth": DEPTH, "frames": DEPTH + 1}), flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()

"""A short program for the control tests (test_control.py): burns about 0.4 s of CPU in
`ctl_work_hot`, prints 'out' on stdout and 'err' on stderr, and exits with the code given
as its first argument (0 by default)."""
import sys
import time


def ctl_work_hot(seconds):
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        for i in range(2000):
            x += i * i
    return x


ctl_work_hot(0.4)
print("out", flush=True)
print("err", file=sys.stderr, flush=True)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)

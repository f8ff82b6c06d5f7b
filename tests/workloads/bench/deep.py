"""Sampler cost probe: one thread busy DEPTH Python frames deep (50 by default), so that the
agent's own counters (pyprofctl status: cost per thread stack walked) measure a walk of
that depth. Usage: deep.py [SECONDS] [DEPTH]; prints `pyprofctl status --json` at the end."""
import os
import subprocess
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
DEPTH = int(sys.argv[2]) if len(sys.argv) > 2 else 50
sys.setrecursionlimit(DEPTH + 100)
ns = {"time": time, "SECONDS": SECONDS}
exec("\n".join(f"def f{i}():\n    return f{i + 1}()" for i in range(DEPTH - 1)) +
     f"\ndef f{DEPTH - 1}():\n    t = time.time()\n    while time.time() - t < SECONDS:\n        pass\n",
     ns)
ns["f0"]()
ctl = os.environ["PYPROFCTL"]
print(subprocess.run([ctl, "status", str(os.getpid()), "--json"], capture_output=True,
                     text=True).stdout)

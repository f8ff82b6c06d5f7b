"""Subprocess workload for the control tests (test_control.py): starts the Python program
given as its first argument (serve.py) with subprocess, relays its 'ready <pid>' line as
'child <pid>', prints 'parent <pid>', and on 'quit' tells the child to quit, reaps it and
exits with the child's exit code."""
import os
import subprocess
import sys

child = subprocess.Popen([sys.executable, sys.argv[1]], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
line = child.stdout.readline().split()
print("child", line[1], flush=True)
print("parent", os.getpid(), flush=True)
for line in sys.stdin:
    if line.strip() == "quit":
        break
child.stdin.write("quit\n")
child.stdin.flush()
sys.exit(child.wait())

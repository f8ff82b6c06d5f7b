"""Early-fork workload for the control tests (test_control.py): os.fork() is the very first
thing the program does, a few milliseconds after the interpreter is initialised, the way a
process that forks at once (a pre-fork server, multiprocessing's forkserver under load)
does. Parent and child then each wait (at most DEADLINE seconds) for their own agent's
socket in $PYPROF_DIR and print 'parent|child <pid> <socket seen: True|False>'."""
import os

pid = os.fork()

import time  # noqa: E402  (after the fork on purpose)

DEADLINE = 3.0
me = os.getpid()
path = os.path.join(os.environ["PYPROF_DIR"], "pyprof.%d.sock" % me)
end = time.time() + DEADLINE
x = 0
while not os.path.exists(path) and time.time() < end:
    for i in range(1000):   # keep the interpreter busy: pending calls run between bytecodes
        x += i
line = "%s %d %s\n" % ("child" if pid == 0 else "parent", me, os.path.exists(path))
os.write(1, line.encode())   # one write: parent and child share the pipe
if pid:
    os.waitpid(pid, 0)

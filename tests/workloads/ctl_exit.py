"""Exit workload for the control tests (test_control.py): burns CPU in `exit_spin` in the
main thread, prints 'ready <pid>', and ends the way stdin says:

    normal   fall off the end of the program (exit code 0)
    exit3    sys.exit(3)
    raise    an unhandled RuntimeError('ctl_exit boom') (exit code 1, traceback)
    os_exit  os._exit(6) (no atexit, no destructors)
"""
import os
import sys
import threading

command = []


def exit_spin():
    x = 0
    for i in range(20000):
        x += i * i
    return x


def read_command():
    command.append(sys.stdin.readline().strip())


threading.Thread(target=read_command, daemon=True).start()
print("ready", os.getpid(), flush=True)
while not command:
    exit_spin()

how = command[0]
if how == "exit3":
    sys.exit(3)
elif how == "raise":
    raise RuntimeError("ctl_exit boom")
elif how == "os_exit":
    os._exit(6)

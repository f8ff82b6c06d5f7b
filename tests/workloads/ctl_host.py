"""What a host does to its own process that the agent must survive unnoticed
(test_control.py, "the host's descriptors and threads"). Usage: ctl_host.py MODE [ARGS]

    fds             print the numbers of every open descriptor, one line, after the agent
                    (if any) has started and served a request: the program waits for its
                    own socket, asks `pyprofctl status` (argv[2]) for itself, then lists
    std-closed OUT  started with 0, 1 and 2 closed: open a file and write to OUT the
                    number it got, then the numbers of every open descriptor (as soon
                    as two looks in a row agree)
    closerange OUT  wait for the agent's socket, close every descriptor above 2 as a
                    daemon does, compute in `after_closerange` for a second, write 'done'
                    to OUT (opened afterwards) and exit 0
    thread-fork     fork in a worker thread; in the child, a second thread joins the
                    worker; both end, which must end the child (the main thread of the
                    child is the worker, and it exits through pthread_exit); the parent
                    waits for the child and prints its exit status
"""
import os
import subprocess
import sys
import threading
import time


def own_socket():
    return os.path.join(os.environ["PYPROF_DIR"], "pyprof.%d.sock" % os.getpid())


def wait_for_agent(deadline=15.0):
    end = time.time() + deadline
    while "LD_PRELOAD" in os.environ and not os.path.exists(own_socket()):
        if time.time() > end:
            raise SystemExit("no agent socket")
        time.sleep(0.01)


def open_fds():
    return sorted(int(n) for n in os.listdir("/proc/self/fd"))


def list_fds(ctl):
    wait_for_agent()
    if "LD_PRELOAD" in os.environ:
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        subprocess.run([ctl, "status", str(os.getpid())], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    fds = open_fds()
    print(" ".join(map(str, fds)), flush=True)


def std_closed(out):
    wait_for_agent()
    # The agent opens a /proc file for a moment when it first sees a thread (at the lowest
    # free number, then moves it to 100+; README: limits): an open that races it gets the
    # next number. Observe until two looks in a row agree.
    previous = None
    for attempt in range(20):
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        fds = open_fds()
        if (fd, fds) == previous or attempt == 19:
            break
        os.close(fd)
        previous = (fd, fds)
        time.sleep(0.01)
    os.write(fd, ("%d\n%s\n" % (fd, " ".join(map(str, fds)))).encode())
    os.close(fd)


def after_closerange():
    x = 0
    end = time.time() + 1.0
    while time.time() < end:
        for i in range(10000):
            x += i * i
    return x


def closerange(out):
    wait_for_agent()
    os.closerange(3, 65536)
    after_closerange()
    time.sleep(1.2)   # the agent's server looks at its descriptors every second
    with open(out, "w") as f:
        f.write("done\n")


def thread_fork():
    def joiner(worker):
        worker.join()

    def worker():
        pid = os.fork()
        if pid:
            _, status = os.waitpid(pid, 0)
            print("child exit status", status, flush=True)
            return
        t = threading.Thread(target=joiner, args=(threading.current_thread(),))
        t.start()
        sys.stdout.flush()

    w = threading.Thread(target=worker)
    w.start()
    w.join()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "fds":
        list_fds(sys.argv[2])
    elif mode == "std-closed":
        std_closed(sys.argv[2])
    elif mode == "closerange":
        closerange(sys.argv[2])
    elif mode == "thread-fork":
        thread_fork()
    else:
        raise SystemExit("unknown mode %r" % mode)

"""Stress tests: the agent under conditions that break profilers (threads born and dying
deep in their stacks, fork storms, 900-deep recursion, thousands of coroutines and
generators in flight, exceptions unwinding deep stacks, heavy garbage collection, the
process exiting while a dump is in flight, clients that vanish, many clients at once).

Every scenario runs real interpreters with the real preload, sampling at 1 kHz
(PYPROF_INTERVAL=1ms), and is bounded by count and time (a few seconds each; a watchdog in
conftest.py kills what hangs). Each checks that nothing crashed (exit code, no signal, no
crash marker, no `pyprof[` line on stderr), that nothing hung (every wait has a timeout),
that the profile still dumps, and that its totals are consistent: once sampling is stopped,
`status --json` and the dump agree exactly (samples = the sum of `dump --samples` = the
sum of the pprof counts; total_weight_ns = the sum of the pprof weights; `[truncated]` =
truncated; one pprof sample per distinct stack) and do not move between two reads.

Workloads: tests/workloads/stress_*.py (stress_common.py holds what they share). Each
reports, from its own code objects, the names its frames may have; no expected value is
hard-coded from a previous run. Helpers come from tests/e2e (test_sampler.py,
test_control.py), imported rather than copied.
"""
import json
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import CTL, parse_collapsed, wait_for_line, workload
from test_control import OP_DUMP, OP_STATUS, frame, one_line, pb_fields, pyprof_lines, \
    request, response, send_line, sockets_in, start_serving, wait_samples, wait_until
from test_sampler import assert_no_crash, dump_pprof, finish, frames_of, needs_protoc, \
    short_name, start, weight_with

INTERVAL = "1ms"


# ---- helpers --------------------------------------------------------------------------------

def assert_quiet(stderr, allowed=()):
    """No crash marker, and no `pyprof[` line but those containing an allowed text."""
    assert_no_crash(0, stderr)
    unexpected = [l for l in pyprof_lines(stderr) if not any(a in l for a in allowed)]
    assert unexpected == [], stderr[-3000:]


def result_line(proc, timeout=60):
    return json.loads(wait_for_line(proc, "RESULT", timeout=timeout).split("RESULT", 1)[1])


FROZEN = ("samples", "stacks", "truncated", "total_weight_ns", "ticks", "dropped", "torn")


def stopped_totals(env, pid, tmp_path):
    """Stop sampling, then read status, the collapsed counts and the pprof profile, and
    status again: the two statuses agree, and the dumps add up to them exactly. Returns
    (status, {collapsed stack: count}, decoded pprof)."""
    env.ctl("stop", pid)
    before = env.status(pid)
    counts = env.dump(pid, "--samples")
    pprof = dump_pprof(env, pid, tmp_path)
    after = env.status(pid)
    assert before["state"] == "stopped", before
    assert {k: before[k] for k in FROZEN} == {k: after[k] for k in FROZEN}, (before, after)
    assert before["samples"] > 0, before
    assert sum(counts.values()) == before["samples"], \
        f"dump --samples sums to {sum(counts.values())}, status says {before['samples']}"
    assert counts.get("[truncated]", 0) == before["truncated"], (counts.get("[truncated]"), before)
    assert pprof.count(pprof.samples) == before["samples"], before
    assert sum(s["values"][1] for s in pprof.samples) == before["total_weight_ns"], before
    assert all(s["values"][0] >= 1 for s in pprof.samples)
    assert len(pprof.samples) == before["stacks"] + (before["truncated"] > 0), \
        f"{len(pprof.samples)} pprof samples for {before['stacks']} stacks: {before}"
    return before, counts, pprof


def assert_known_frames(stacks, names):
    """Every frame of the workload's own files has a name one of that file's code objects
    has (`names`: {file: [names]}, from the workload) and a line inside the file: a frame
    read from a torn stack would carry anything."""
    lengths = {path: len(open(path, encoding="utf-8").read().splitlines()) for path in names}
    bad = set()
    for s in stacks:
        for name, file, line in frames_of(s):
            if file in names and (name not in names[file] or
                                  line is not None and not 1 <= line <= lengths[file]):
                bad.add((name, file, line))
    assert not bad, sorted(bad)[:10]


def names_of(stack):
    return [short_name(n) for n, _, _ in frames_of(stack)]


def runs_of(stack, name):
    """(number of `name` frames in the one contiguous run of them, the frame before the
    run, the frames after it); None if the stack has no such frame. A second, separate
    run of `name` is an impossible stack: reported as a run length of -1."""
    names = names_of(stack)
    if name not in names:
        return None
    first = names.index(name)
    end = first
    while end < len(names) and names[end] == name:
        end += 1
    if name in names[end:]:
        return -1, None, names[end:]
    parent = frames_of(stack)[first - 1] if first > 0 else None
    return end - first, parent, names[end:]


def dive_runs(counts, name, parent_name, parent_file=""):
    """For each stack of `counts` holding a frame of `name`: (value, run length, the
    frames above the run), once checked possible: one unbroken run of `name` frames, right
    under a frame of `parent_name` (of a file ending with `parent_file`)."""
    for s, v in counts.items():
        shape = runs_of(s, name)
        if shape is None:
            continue
        n, parent, above = shape
        assert n > 0, f"two separate runs of {name}: {s[-500:]}"
        assert parent is not None and short_name(parent[0]) == parent_name and \
            parent[1].endswith(parent_file), (name, parent, s[:500])
        yield v, n, above


def ends_with_chain(stack, chain):
    """The stack's frames end with the qualified names `chain` (leaf last), all in a row."""
    names = [n for n, _, _ in frames_of(stack)]
    return names[-len(chain):] == chain


# ---- raw requests ---------------------------------------------------------------------------

def varints(data):
    """A packed run of varints -> [int]; raises on a truncated one."""
    out, shift, value = [], 0, 0
    for b in data:
        value |= (b & 0x7F) << shift
        if b & 0x80:
            shift += 7
        else:
            out.append(value)
            shift = value = 0
    if shift:
        raise ValueError("truncated varint")
    return out


def profile_counts(data):
    """A pprof Profile message -> ([sample count per sample], [string table]); raises
    ValueError on malformed input."""
    fields = pb_fields(data)
    counts = []
    for sample in fields.get(2, []):
        values = pb_fields(sample).get(2, [])
        values = varints(values[0]) if values and isinstance(values[0], bytes) else values
        counts.append(values[0])
    return counts, [t.decode("utf-8") for t in fields.get(6, [])]


def connect(path, timeout=15):
    """A connected client socket. The connect itself blocks: with a timeout set, Python
    makes the socket non-blocking and a full listen backlog fails at once (EAGAIN) instead
    of waiting for the agent to accept; a hung agent is the watchdog's business."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    s.settimeout(timeout)
    return s


def read_to_eof(s):
    got = b""
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                return got
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return got
    finally:
        s.close()


def in_client_threads(n, client, timeout=120):
    """Run client(k) for k in range(n), each in a thread of its own, all at once; fail if
    one is still running after `timeout` seconds."""
    threads = [threading.Thread(target=client, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"a client hung for over {timeout}s"


def call(path, op):
    """One raw request; returns the response's top-level fields (one whole frame, no
    error)."""
    s = connect(path)
    s.sendall(frame(request(op)))
    fields = response(read_to_eof(s))
    assert fields.get(2, [0]) == [0], fields
    return fields


def raw_samples(path):
    """`samples` (Status.thread_samples) as a raw status request reports it."""
    return pb_fields(call(path, OP_STATUS)[4][0]).get(8, [0])[0]


# ---- 1. threads born and dying with deep stacks ---------------------------------------------

def test_thread_pools_and_deep_short_lived_threads(env, python, tmp_path):
    """Harder than test_sampler.py's churn test (short threads, shallow stacks): every
    round a fresh ThreadPoolExecutor runs tasks 50-400 frames deep and is shut down, while
    short-lived threads dive 100-600 frames deep and die there (returning, by an uncaught
    exception, by SystemExit); PYPROF_MAX_STACKS=1024, so the stack table overflows.
    Sampling is stopped mid-churn: the totals are consistent, including a non-zero
    [truncated] count; the deep stacks were captured (300+ pool_dive frames, 400+
    thread_dive frames) and every stack holding them is possible: one unbroken run of the
    recursive function, right under the `run` of concurrent.futures or threading, with
    nothing above but the leaf crunch; every frame of the workload has a real name and
    line. The workload runs to its end and exits 0. (Sampling runs for at least 1.5 s and
    until the table overflowed, at most 10 s.)"""
    proc = env.spawn([python, workload("stress_threads.py"), "10"], PYPROF_INTERVAL=INTERVAL,
                     PYPROF_MAX_STACKS=1024)
    wait_for_line(proc, "CHURNING")
    started = time.monotonic()
    wait_until(lambda: env.status(proc.pid)["truncated"] > 0 and
               time.monotonic() - started >= 1.5, timeout=9, what="the stack table to overflow")
    status, counts, _ = stopped_totals(env, proc.pid, tmp_path)
    send_line(proc)   # ends the churn
    result = result_line(proc)
    _, err = finish(proc)
    assert_quiet(err)
    assert status["truncated"] > 0, status
    assert result["rounds"] >= 20 and result["threads"] >= 80, result
    assert set(result["uncaught"]) == {"DeepEnd", "SystemExit"}, result
    assert_known_frames(counts, result["names"])
    deepest = {}
    for fn, parent_file in (("pool_dive", "concurrent/futures/thread.py"),
                            ("thread_dive", "threading.py")):
        for _, depth, above in dive_runs(counts, fn, "run", parent_file):
            assert above in ([], ["crunch"]), (fn, above)
            if above == ["crunch"]:
                deepest[fn] = max(deepest.get(fn, 0), depth)
    assert deepest.get("pool_dive", 0) >= 300 and deepest.get("thread_dive", 0) >= 400, deepest


# ---- 2. fork storms -------------------------------------------------------------------------

# What `pyprofctl status` may say while the parent forks: its agent stops serving (its
# socket name removed first) before each fork and serves again right after (the name back
# only once it listens). Never "stale socket": pyprofctl removes a name that refuses it,
# and removed the live agent's socket when the name existed before it listened.
FORK_WINDOW_ERRORS = ("is not profiled", "closed the connection")


def poll_status(env, pid, stop, ok, failures):
    """Ask `status` of `pid` every 20 ms until `stop` is set."""
    while not stop.is_set():
        r = env.ctl("status", pid, "--json", check=False, timeout=30)
        if r.returncode == 0 and json.loads(r.stdout)["pid"] == pid:
            ok.append(1)
        else:
            failures.append((r.returncode, r.stdout, r.stderr))
        time.sleep(0.02)


def test_fork_storm(env, python, tmp_path):
    """Three rounds of fork storms from a parent with a busy thread: for the fork and
    forkserver contexts in turn, a Pool of 3 is created, maps 12 tasks and is closed and
    joined, then 4 Processes run at once (42 children in all). Every child exits 0, and
    every one's own agent answered `pyprofctl status` with its own pid. The parent keeps
    serving throughout: `status` polled every 20 ms during the storm answers (a poll that
    falls in the instant of a fork may get one of the one-line errors of a process that is
    not serving: no socket, or the connection closed; never a "stale" socket, which
    pyprofctl would remove), and it answers after the storm; its sampling resumed (its
    after_storm() is in a fresh profile); its totals are consistent; it exits 0 without a
    `pyprof[` line, and no socket at all is left in PYPROF_DIR once it is gone (the
    forkserver's and every child's were removed)."""
    proc = env.spawn([python, workload("stress_fork.py"), "3"], PYPROF_INTERVAL=INTERVAL,
                     PYPROFCTL=CTL)
    wait_for_line(proc, "STORMING")
    env.wait_socket(proc.pid)
    stop, ok, failures = threading.Event(), [], []
    poller = threading.Thread(target=poll_status, args=(env, proc.pid, stop, ok, failures))
    poller.start()
    try:
        result = result_line(proc, timeout=100)
    finally:
        stop.set()
        poller.join(60)
    assert result["codes"] == [0] * result["children"], result
    assert result["children"] == result["rounds"] * 2 * (3 + 4), result
    assert result["answers"] and all(result["answers"]), result
    assert ok, failures[:5]
    for rc, out, err in failures:
        assert rc == 1 and out == "" and any(e in one_line(err) for e in FORK_WINDOW_ERRORS), \
            (rc, out, err)
    assert env.status(proc.pid)["pid"] == proc.pid
    env.ctl("reset", proc.pid)
    wait_until(lambda: weight_with(env.dump(proc.pid, "--functions"), "after_storm") > 0,
               what="after_storm() samples in the parent")
    stopped_totals(env, proc.pid, tmp_path)
    _, err = finish(proc)
    assert_quiet(err)
    assert "Traceback" not in err, err
    wait_until(lambda: sockets_in(env.sockdir) == [], what="every socket to be removed")


# ---- 3. recursion 900 deep ------------------------------------------------------------------

def test_recursion_900_deep_in_three_threads(env, python, tmp_path):
    """Three threads recurse 900 levels deep at once (901 dive() frames, then bottom()):
    each thread's stack is captured whole (a stack of that thread with all 901 frames),
    every stack ending in bottom() has exactly 901 dive() frames in one run (never a cut
    or a spliced stack), nothing is truncated, the totals are consistent, and every frame
    has a real name and line."""
    proc, result = start(env, python, "stress_recursion.py", [900, 3, 2.0],
                         PYPROF_INTERVAL=INTERVAL)
    status, counts, _ = stopped_totals(env, proc.pid, tmp_path)
    per_thread = env.dump(proc.pid, "--samples", "--threads")
    _, err = finish(proc)
    assert_quiet(err)
    assert status["truncated"] == 0, status
    assert_known_frames(counts, result["names"])
    depths = {}
    for v, depth, above in dive_runs(counts, "dive", "worker"):
        if above[:1] == ["bottom"]:
            depths[depth] = depths.get(depth, 0) + v
    assert set(depths) == {result["frames"]}, \
        f"stacks ending in bottom() with a dive() count other than {result['frames']}: {depths}"
    whole = {int(s.split(";", 1)[0].rsplit("(", 1)[1].rstrip(")")) for s in per_thread
             if names_of(s).count("dive") == result["frames"]}   # root: "NAME (TID)"
    assert whole == set(result["tids"]), (whole, result["tids"])


# ---- 4. coroutines and generators in flight -------------------------------------------------

def test_coroutines_and_generators_in_flight(env, python, tmp_path):
    """300 asyncio tasks in flight at all times for 2.5 s (thousands created, dozens
    cancelled mid-await), each running a chain of coroutines (a method among them), an
    async generator, or nested `yield from` generators (some closed half-way): each chain
    shows up whole in the profile, leaf last, with the names the interpreter gives the
    functions (qualified names on 3.11+); every frame of the workload has a real name and
    line; the totals are consistent; the process exits 0."""
    proc, result = start(env, python, "stress_async.py", [300, 2.5], PYPROF_INTERVAL=INTERVAL)
    status, counts, _ = stopped_totals(env, proc.pid, tmp_path)
    _, err = finish(proc)
    assert_quiet(err)
    assert result["tasks"] >= 1000 and result["cancelled"] >= 10, result
    assert_known_frames(counts, result["names"])
    missing = {kind: chain for kind, chain in result["chains"].items()
               if not any(ends_with_chain(s, chain) for s in counts)}
    assert not missing, f"chains never seen whole: {missing}; status {status}"


# ---- 5. exceptions through deep stacks ------------------------------------------------------

def test_exceptions_thrown_through_deep_stacks(env, python, tmp_path):
    """Three threads throw exceptions through 300 frames over and over (a `finally` at
    every level, a context manager's __exit__ every 25th, caught and re-raised wrapped every
    50th): the exceptions behave as without a profiler (every chain of causes is as long as
    the depth makes it), the stacks read while exceptions unwind are possible ones
    (raise_at_bottom() under exactly 301 throw_down() frames; unwind_work(), run in the
    finally of levels that are multiples of 10, under 301 - n of them with n a multiple
    of 10, seen at several depths; Guard's methods likewise, for multiples of 25; nothing
    else right above a throw_down() frame), the totals are consistent, and every frame has
    a real name and line."""
    depth = 300
    proc, result = start(env, python, "stress_exceptions.py", [depth, 3, 2.5],
                         PYPROF_INTERVAL=INTERVAL)
    status, counts, _ = stopped_totals(env, proc.pid, tmp_path)
    _, err = finish(proc)
    assert_quiet(err)
    assert result["throws"] >= 30, result
    assert result["chain"] == [depth // 50 + 2], result   # Boom, then Wrapped at 0, 50, ...
    assert_known_frames(counts, result["names"])
    unwind_depths, bottoms = set(), 0
    for _, n, above in dive_runs(counts, "throw_down", "worker"):
        if above[:1] == ["raise_at_bottom"]:
            assert n == depth + 1, (n, above)
            bottoms += 1
        elif above[:1] == ["unwind_work"]:
            assert (depth + 1 - n) % 10 == 0, (n, above)
            unwind_depths.add(n)
        elif above:   # the context manager of the levels that are multiples of 25
            assert above[0] in ("__enter__", "__exit__") and (depth + 1 - n) % 25 == 0, \
                (n, above)
    assert bottoms > 0, status
    assert len(unwind_depths) >= 3, unwind_depths


# ---- 6. heavy garbage collection ------------------------------------------------------------

@needs_protoc
def test_heavy_garbage_collection(env, python, tmp_path):
    """gc.collect() in a loop over cyclic garbage with finalizers, two threads making
    cycles under low thresholds (automatic collections in them too), and a gc callback:
    the totals are consistent, every frame has a real name and line, and the pprof `gc`
    label shows: only on samples holding the GIL, on samples of collect_loop, and on at
    least 90% of the GIL-holding samples of the code that only ever runs inside a
    collection (the callback on_gc and Finalized.__del__, in every thread)."""
    proc, result = start(env, python, "stress_gc.py", [2.5], PYPROF_INTERVAL=INTERVAL)
    status, counts, pprof = stopped_totals(env, proc.pid, tmp_path)
    _, err = finish(proc)
    assert_quiet(err)
    assert result["collections"] > 0 and result["callbacks"] > 0 and result["finalized"] > 0
    assert_known_frames(counts, result["names"])
    gc_samples = [s for s in pprof.samples if s["labels"].get("gc") == 1]
    assert all(s["labels"].get("gil") == 1 for s in gc_samples), gc_samples[:3]
    in_loop = [s for s in gc_samples if "collect_loop" in map(short_name, s["names"])]
    assert pprof.count(in_loop) >= 5, (pprof.count(in_loop), status)
    # gc is only told for the thread seen holding the GIL (a thread that waits for the GIL
    # mid-collection is not collecting); the collector's state and the thread's stack are
    # read a little apart, so a sample on the edge of a collection may miss its label.
    inside = [s for s in pprof.samples if s["labels"].get("gil") == 1 and
              {"on_gc", "__del__"} & set(map(short_name, s["names"]))]
    labelled = pprof.count([s for s in inside if s["labels"].get("gc") == 1])
    assert pprof.count(inside) >= 5, status
    assert labelled >= 0.9 * pprof.count(inside), (labelled, pprof.count(inside))


# ---- 7. exit while sampling and while a dump is in flight -----------------------------------

EXIT_KINDS = [("sys.exit", 7), ("os._exit", 9), ("thread-os._exit", 11)]


def dump_client(env, pid, out):
    return subprocess.Popen([str(CTL), "dump", str(pid), "-o", str(out)], env=env.ctl_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check_dump_client(client, out, what):
    """A pyprofctl dump racing the exit: a complete profile (exit 0, a pprof file that
    decodes whole and names the workload) or one line of error (exit 1, no file, nothing on
    stdout); never a hang, a signal or a truncated file. Returns which it was."""
    try:
        stdout, stderr = client.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        client.kill()
        pytest.fail(f"{what}: pyprofctl dump hung")
    assert stdout == "", (what, stdout)
    if client.returncode == 0:
        assert stderr == "", (what, stderr)
        counts, strings = profile_counts(out.read_bytes())
        assert counts and min(counts) >= 1 and "many_lines" in strings, what
        return "complete"
    assert client.returncode == 1, (what, client.returncode, stderr)
    assert one_line(stderr).startswith("pyprofctl: "), (what, stderr)
    assert not out.exists(), (what, "a file was written despite the error")
    return "error"


def test_exit_while_a_large_dump_is_in_flight(env, python, tmp_path):
    """A process sampled at 1 kHz builds for 2 s a profile of hundreds of distinct stacks
    100-300 frames deep through functions with long names (a pprof response of over half a
    megabyte, more than a socket buffer holds), then ends by sys.exit(7), os._exit(9) from
    the main thread or os._exit(11) from the thread being sampled, right while: a raw
    client has asked for a dump and not read it (its response cannot fit in the socket:
    the agent is still sending it when the process ends; a `pyprofctl dump` served after it
    completed before the exit), and five more `pyprofctl dump`s are started around the
    exit. Each run: the process exits with its own code, no signal and no `pyprof[` line;
    the raw client gets EOF after a prefix of one frame (its header at least) or the whole
    frame (never more, never a hang); each pyprofctl gets a complete, decodable profile or
    one line of error, never a truncated file; no socket is left. Over the runs, at least
    one raw response was cut by the exit (the case was really exercised)."""
    cut = 0
    for kind, code in EXIT_KINDS:
        proc, _ = start(env, python, "stress_exit.py", [2.0], marker="READY",
                        PYPROF_INTERVAL=INTERVAL)
        pending = connect(env.socket(proc.pid))
        pending.sendall(frame(request(OP_DUMP)))
        outs = [tmp_path / f"{kind}-{i}.pb" for i in range(6)]
        # The first dump, served after the pending one, completes: the pending one was
        # built and its sending began.
        first = dump_client(env, proc.pid, outs[0])
        assert check_dump_client(first, outs[0], f"{kind} first client") == "complete"
        clients = [dump_client(env, proc.pid, out) for out in outs[1:3]]
        send_line(proc, kind)
        clients += [dump_client(env, proc.pid, out) for out in outs[3:]]
        try:
            assert proc.wait(timeout=30) == code, (kind, proc.returncode, proc.stderr.read())
        except subprocess.TimeoutExpired:
            pytest.fail(f"{kind}: the process did not exit")
        assert_quiet(proc.stderr.read())
        got = read_to_eof(pending)
        assert len(got) >= 4, (kind, got)   # its sending began before the first client's
        (n,) = struct.unpack(">I", got[:4])
        assert len(got) - 4 <= n, (kind, n, len(got))
        if len(got) - 4 == n:
            counts, _ = profile_counts(response(got)[5][0])
            assert counts, kind
        else:
            cut += 1
        for i, (client, out) in enumerate(zip(clients, outs[1:])):
            check_dump_client(client, out, f"{kind} client {i + 1}")
        assert sockets_in(env.sockdir) == [], kind
    assert cut >= 1, "no raw dump was in flight when a process exited"


# ---- 8. clients that connect and vanish -----------------------------------------------------

def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def vanish(path, i):
    """Client i of the abuse loop: connect and close; connect, send part of a frame and
    close; or connect, send a whole status or dump request and close without reading."""
    s = connect(path)
    try:
        whole = frame(request(OP_DUMP if i % 2 else OP_STATUS))
        kind = i % 3
        if kind == 1:
            s.sendall(whole[:1 + i % (len(whole) - 1)])
        elif kind == 2:
            s.sendall(whole)
    finally:
        s.close()


def test_clients_that_connect_and_vanish(env, python):
    """While the host computes in three threads, four client threads connect to its
    socket 3,000 times in all (bounded to 30 s) and vanish: connect + close, connect + part
    of a frame + close, connect + a whole status or dump request + close without reading.
    Every connection is accepted (none refused, none timing out), and afterwards the agent
    has closed every one of them (the host's open file descriptors are back to what they
    were), `pyprofctl dump` works and names the workload, sampling goes on, and the host's
    own output is the very one it prints without the preload and without the abuse."""
    script = workload("stress_serve.py")
    plain = subprocess.run([python, script], input="\n", env=env.env, capture_output=True,
                           text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
    proc, pid = start_serving(env, python, script, PYPROF_INTERVAL=INTERVAL)
    path = env.socket(pid)
    wait_samples(env, pid, 50)
    fds = open_fds(pid)
    total, deadline, errors, done = 3000, time.monotonic() + 30, [], []

    def abuse(k):
        for i in range(k, total, 4):
            if time.monotonic() > deadline:
                return
            try:
                vanish(path, i)
                done.append(i)
            except OSError as e:
                errors.append((i, repr(e)))

    in_client_threads(4, abuse)
    assert errors == [], errors[:10]
    assert len(done) >= 1000, len(done)
    assert proc.poll() is None, proc.stderr.read()
    wait_until(lambda: open_fds(pid) <= fds, what=f"the host's descriptors back to {fds}")
    before = env.status(pid)["samples"]
    assert weight_with(env.dump(pid, "--functions"), "shape") > 0
    wait_samples(env, pid, before + 20)
    out, err = finish(proc)   # its "ready PID" line was read by start_serving()
    assert out.splitlines() == plain.stdout.splitlines()[1:], (out, plain.stdout)
    assert err == plain.stderr, err
    assert sockets_in(env.sockdir) == []


# ---- 9. many clients dumping at once --------------------------------------------------------

def ctl_dump_once(env, pid, path):
    """`pyprofctl dump --samples` bracketed by raw status requests: the dump is complete
    (every line parses) and its total lies between the two."""
    before = raw_samples(path)
    r = env.ctl("dump", pid, "--samples", timeout=60)
    after = raw_samples(path)
    assert r.stderr == "", r.stderr
    counts = parse_collapsed(r.stdout)
    assert weight_with(counts, "shape") > 0
    assert before <= sum(counts.values()) <= after, (before, sum(counts.values()), after)


def raw_dump_once(path):
    """A raw dump request: one whole frame, no error, a profile that decodes, whose total
    lies between a status taken before and one taken after."""
    before = raw_samples(path)
    fields = call(path, OP_DUMP)
    after = raw_samples(path)
    counts, strings = profile_counts(fields[5][0])
    assert min(counts) >= 1 and "shape" in strings
    assert pb_fields(fields[4][0])[1] == [int(path.name.split(".")[1])]   # Status.pid
    assert before <= sum(counts) <= after, (before, sum(counts), after)


def test_many_clients_dump_at_once(env, python, tmp_path):
    """16 client threads released together dump the busy host 6 times each (96 dumps):
    half with `pyprofctl dump --samples`, half with raw dump requests. Every one gets a
    complete, decodable answer whose total lies between the samples counted just before
    and just after it (the live profile is read consistently while the sampler writes);
    afterwards the host's totals are consistent, it exits 0 and says nothing on stderr."""
    proc, pid = start_serving(env, python, workload("stress_serve.py"), PYPROF_INTERVAL=INTERVAL)
    path = env.socket(pid)
    wait_samples(env, pid, 200)
    barrier, failures, done = threading.Barrier(16), [], []

    def client(k):
        barrier.wait(timeout=30)
        for _ in range(6):
            try:
                ctl_dump_once(env, pid, path) if k % 2 else raw_dump_once(path)
                done.append(k)
            except Exception as e:   # reported below, with the others
                failures.append((k, repr(e)[:500]))

    in_client_threads(16, client)
    assert failures == [], failures[:5]
    assert len(done) == 96
    stopped_totals(env, pid, tmp_path)
    _, err = finish(proc)
    assert err == ""

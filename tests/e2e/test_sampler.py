"""End-to-end tests of the sampler: what it records, against what the workloads measure
about themselves (CPU time per function, line numbers from traceback, names from the code
objects), and that it survives thread churn, exit, fork and interpreter shutdown.

Every test runs a real interpreter with the real preload, and reads the profile with the
real pyprofctl (collapsed stacks, or raw pprof decoded with protoc). Workloads live in
tests/workloads/sampler_*.py; each prints one RESULT/READY line of JSON and, where the test
dumps a live process, waits on stdin so that it is still profiled while the test reads it.
"""
import json
import re
import shutil
import subprocess
import time
from functools import lru_cache

import pytest

from conftest import ROOT, parse_collapsed, wait_for_line, workload

PROTO_DIR = ROOT / "proto"
CRASH_MARKERS = ("Segmentation fault", "core dumped", "Fatal Python error", "Aborted",
                 "AddressSanitizer")


# ---- helpers ------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def version_of(python):
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=30).stdout.split()
    return int(out[0]), int(out[1])


FRAME_RE = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse_frame(frame):
    """'qualname (file:line)' -> (qualname, file, line or None);
    '[idle]' -> ('[idle]', '', None)."""
    m = FRAME_RE.match(frame)
    if m is None:
        return frame, "", None
    return m["name"], m["file"], int(m["line"]) if m["line"] else None


def frames_of(stack):
    return [parse_frame(f) for f in stack.split(";")]


def short_name(qualname):
    """The function's own name: 'Class.method' -> 'method' (3.9/3.10 have no qualname)."""
    return qualname.rsplit(".", 1)[-1]


def weight_with(stacks, name):
    """Sum of the values of the stacks that contain a frame of function `name`."""
    return sum(v for s, v in stacks.items()
               if any(short_name(n) == name for n, _, _ in frames_of(s)))


def start(env, python, script, args=(), marker="RESULT", timeout=60, **extra):
    """Spawn a workload under the preload; wait for its `marker` line; (proc, its JSON)."""
    proc = env.spawn([python, workload(script), *map(str, args)], **extra)
    line = wait_for_line(proc, marker, timeout=timeout)
    return proc, json.loads(line.split(marker, 1)[1])


def finish(proc, timeout=30):
    """Let a workload waiting on stdin exit; it must exit 0 without a crash."""
    out, err = proc.communicate(input="\n", timeout=timeout)
    assert_no_crash(proc.returncode, err)
    assert proc.returncode == 0, err
    return out, err


def assert_no_crash(returncode, stderr):
    assert returncode is not None and returncode >= 0, \
        f"killed by signal {-returncode}: {stderr[-2000:]}"
    for marker in CRASH_MARKERS:
        assert marker not in stderr, stderr[-2000:]


_RUNS = {}


def shared_run(key, run):
    """Several tests check different things of one run of a workload: run it once per
    key (interpreter, workload, settings) and hand every test the same result."""
    if key not in _RUNS:
        _RUNS[key] = run()
    return _RUNS[key]


def stop_and_dump(env, pid, *args):
    env.ctl("stop", pid)
    return env.dump(pid, *args)


# -- pprof, decoded by protoc into text format, parsed here --

TOKEN_RE = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([A-Za-z_][\w.]*)|(-?\d+)|([{}:]))', re.S)


def unescape_c(body):
    """protoc's text-format string (C escapes, octal for bytes >= 0x80) -> bytes."""
    out = bytearray()
    i = 0
    simple = {"n": 10, "t": 9, "r": 13, '"': 34, "'": 39, "\\": 92, "a": 7, "b": 8, "f": 12,
              "v": 11, "?": 63}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        n = body[i + 1]
        if n in simple:
            out.append(simple[n])
            i += 2
        elif n in "01234567":
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(int(body[i + 1:j], 8))
            i = j
        elif n == "x":
            j = i + 2
            while j < len(body) and j < i + 4 and body[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(body[i + 2:j], 16))
            i = j
        else:
            raise ValueError(f"unknown escape \\{n}")
    return bytes(out)


def parse_textproto(text):
    """Protobuf text format -> {field: [values]}; messages become dicts the same way."""
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        assert m and m.end() > pos, f"cannot parse protoc output at {text[pos:pos + 80]!r}"
        pos = m.end()
        if m.group(1) is not None:
            tokens.append(("str", unescape_c(m.group(1)[1:-1])))
        elif m.group(2) is not None:
            tokens.append(("id", m.group(2)))
        elif m.group(3) is not None:
            tokens.append(("int", int(m.group(3))))
        else:
            tokens.append(("sym", m.group(4)))

    def message(i):
        msg = {}
        while i < len(tokens) and tokens[i] != ("sym", "}"):
            kind, field = tokens[i]
            assert kind == "id", tokens[i]
            if tokens[i + 1] == ("sym", "{"):
                value, i = message(i + 2)
                i += 1   # the closing brace
            else:
                assert tokens[i + 1] == ("sym", ":"), tokens[i:i + 3]
                value = tokens[i + 2][1]
                i += 3
            msg.setdefault(field, []).append(value)
        return msg, i

    msg, i = message(0)
    assert i == len(tokens)
    return msg


class Pprof:
    """A decoded pprof Profile: samples as (frame names leaf first, values, labels)."""

    def __init__(self, raw):
        self.strings = [s.decode("utf-8") for s in raw.get("string_table", [])]
        fns = {f["id"][0]: (self.strings[f.get("name", [0])[0]],
                            self.strings[f.get("filename", [0])[0]])
               for f in raw.get("function", [])}
        locs = {loc["id"][0]: [fns[line["function_id"][0]] for line in loc.get("line", [])]
                for loc in raw.get("location", [])}
        self.samples = []
        for s in raw.get("sample", []):
            names = []
            for lid in s.get("location_id", []):
                names += [name for name, _ in locs[lid]]
            labels = {}
            for label in s.get("label", []):
                key = self.strings[label["key"][0]]
                labels[key] = self.strings[label["str"][0]] if "str" in label \
                    else label.get("num", [0])[0]
            self.samples.append({"names": names, "values": s.get("value", []),
                                 "labels": labels})

    def count(self, samples):
        return sum(s["values"][0] for s in samples)


def dump_pprof(env, pid, tmp_path):
    path = tmp_path / f"profile-{pid}.pb"
    env.ctl("dump", pid, "-o", path)
    with open(path, "rb") as f:
        r = subprocess.run(["protoc", "--decode", "perftools.profiles.Profile", "-I",
                            str(PROTO_DIR), str(PROTO_DIR / "profile.proto")], stdin=f,
                           capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return Pprof(parse_textproto(r.stdout.decode("utf-8")))


needs_protoc = pytest.mark.skipif(shutil.which("protoc") is None,
                                  reason="protoc (protobuf-compiler) is not installed")


# ---- 1. attribution against ground truth ----------------------------------------------------

ATTRIBUTION = {
    "pure": {"spin_alpha", "spin_beta", "spin_gamma"},
    "mixed": {"spin_alpha", "spin_beta", "spin_gamma", "hash_delta", "spin_epsilon"},
}


@pytest.mark.parametrize("variant", ["pure", "mixed"])
def test_cpu_attribution_matches_thread_time(env, python, variant):
    """Threads run functions in fixed proportions and measure each call's CPU with
    time.thread_time(): "pure", two pure-Python threads contending for the GIL (three
    functions); "mixed", plus a third thread alternating between hashing with the GIL
    released (hash_delta) and pure Python (spin_epsilon), so that the machine's two CPUs
    are oversubscribed. In cpu mode, each function's share of the profile (the values of
    the stacks that contain it) is within 5 percentage points of its measured share of
    the CPU: weights are CPU time, charged to the function that used it."""
    proc, measured = start(env, python, "sampler_attribution.py", [variant, 2.5],
                           PYPROF_INTERVAL="1ms")
    stacks = stop_and_dump(env, proc.pid, "--functions")
    finish(proc)
    assert set(measured) == ATTRIBUTION[variant], measured
    profiled = {f: weight_with(stacks, f) for f in measured}
    total_measured, total_profiled = sum(measured.values()), sum(profiled.values())
    assert total_profiled > 0, stacks
    report = {f: (round(100 * measured[f] / total_measured, 1),
                  round(100 * profiled[f] / total_profiled, 1)) for f in measured}
    for f, (want, got) in report.items():
        assert abs(want - got) <= 5.0, \
            f"{f}: measured {want}% profiled {got}% (all, measured vs profiled: {report})"


# ---- 2. sleeping threads: absent in cpu mode, [idle] in wall mode ---------------------------

def idle_profile(env, python, mode, tmp_path):
    def run():
        proc, ids = start(env, python, "sampler_idle.py", marker="READY",
                          PYPROF_INTERVAL="2ms", PYPROF_MODE=mode)
        env.ctl("reset", proc.pid)
        time.sleep(2.0)
        env.ctl("stop", proc.pid)
        stacks = env.dump(proc.pid)
        pprof = dump_pprof(env, proc.pid, tmp_path) if shutil.which("protoc") else None
        finish(proc)
        return stacks, pprof, ids
    return shared_run((python, "idle", mode), run)


def test_sleeping_thread_is_absent_in_cpu_mode(env, python, tmp_path):
    """cpu mode: a thread blocked in one long time.sleep uses no CPU, so no stack of it is
    recorded (not even with zero weight), while the busy thread beside it is; no [idle]
    frame appears in cpu mode."""
    stacks, _, _ = idle_profile(env, python, "cpu", tmp_path)
    assert weight_with(stacks, "busy") > 0, stacks
    sleeper = [s for s in stacks if any(short_name(n) == "sleeper" for n, _, _ in frames_of(s))]
    assert sleeper == [], sleeper
    assert not any("[idle]" in s for s in stacks), stacks


def test_sleeping_thread_is_idle_in_wall_mode(env, python, tmp_path):
    """wall mode: the sleeping thread is present, every one of its stacks ends with the
    [idle] pseudo-frame right under sleeper(), and the busy thread is mostly not idle."""
    stacks, _, _ = idle_profile(env, python, "wall", tmp_path)
    sleeper = {s: v for s, v in stacks.items()
               if any(short_name(n) == "sleeper" for n, _, _ in frames_of(s))}
    assert sleeper, stacks
    for s in sleeper:
        names = [n for n, _, _ in frames_of(s)]
        assert names[-1] == "[idle]" and short_name(names[-2]) == "sleeper", s
    busy = {s: v for s, v in stacks.items()
            if any(short_name(n) == "busy" for n, _, _ in frames_of(s))}
    busy_idle = sum(v for s, v in busy.items() if s.endswith("[idle]"))
    assert sum(busy.values()) - busy_idle > busy_idle, busy


@needs_protoc
def test_idle_label_in_wall_mode(env, python, tmp_path):
    """wall mode, pprof: the sleeping thread's samples have the [idle] leaf and carry the
    `idle` label and the sleeper's own thread_id (same run as the test above)."""
    _, pprof, ids = idle_profile(env, python, "wall", tmp_path)
    samples = [s for s in pprof.samples if any(short_name(n) == "sleeper" for n in s["names"])]
    assert samples
    for s in samples:
        assert s["names"][0] == "[idle]", s
        assert s["labels"].get("idle") == 1, s
        assert s["labels"].get("thread_id") == ids["sleeper"], s


# ---- 3. GIL-free C code ---------------------------------------------------------------------

def test_hashing_thread_is_attributed_to_its_function(env, python):
    """cpu mode: a thread spending its time inside hashlib.sha256 (C code that releases
    the GIL) is seen running although it does not hold the GIL, and is charged to its
    Python function hash_worker (the leaf Python frame): at least 95% of its weight has
    hash_worker as leaf, it is at least 80% of the profile, and the CPU charged to it
    agrees with the CPU the thread measured itself (within 15%)."""
    proc, result = start(env, python, "sampler_hash.py", [2.0], PYPROF_INTERVAL="1ms")
    stacks = stop_and_dump(env, proc.pid)
    finish(proc)
    hashing = {s: v for s, v in stacks.items()
               if any(short_name(n) == "hash_worker" for n, _, _ in frames_of(s))}
    total_us = sum(hashing.values())
    leaf_us = sum(v for s, v in hashing.items()
                  if short_name(frames_of(s)[-1][0]) == "hash_worker")
    measured_us = result["cpu_s"] * 1e6
    assert result["hashes"] > 0
    assert leaf_us >= 0.95 * total_us, hashing
    assert 0.85 * measured_us <= total_us <= 1.15 * measured_us, \
        f"profile {total_us}us, measured {measured_us:.0f}us"
    assert total_us >= 0.8 * sum(stacks.values()), stacks


# ---- 4. deep recursion ----------------------------------------------------------------------

def recursion_profile(env, python):
    def run():
        proc, result = start(env, python, "sampler_recursion.py", [600, 2.0],
                             PYPROF_INTERVAL="2ms")
        stacks = stop_and_dump(env, proc.pid, "--functions")
        status = env.status(proc.pid)
        finish(proc)
        return stacks, status, result
    return shared_run((python, "recursion"), run)


def recurse_depths(stacks):
    """{number of recurse() frames: weight} over the stacks whose leaf is spin_bottom()."""
    depths = {}
    for s, v in stacks.items():
        names = [short_name(n) for n, _, _ in frames_of(s)]
        if names[-1] == "spin_bottom":
            depths[names.count("recurse")] = depths.get(names.count("recurse"), 0) + v
    return depths


def test_deep_recursion_is_captured_whole(env, python):
    """A 600-deep recursion is recorded whole: some stack holds all 601 frames of
    recurse(), at least 90% of the leaf spin_bottom()'s weight is in such whole stacks,
    and nothing was counted as truncated."""
    stacks, status, result = recursion_profile(env, python)
    depths = recurse_depths(stacks)
    assert depths, (status, list(stacks)[:5])
    assert max(depths) >= 600, depths
    assert depths.get(result["frames"], 0) >= 0.9 * sum(depths.values()), depths
    assert status["truncated"] == 0, status


def test_deep_recursion_has_no_impossible_stacks(env, python):
    """The same run: no recorded stack is one the program never had. spin_bottom() only
    runs at the bottom of the full recursion, so every stack ending in it has exactly 601
    recurse() frames (never fewer, never more), and every stack with a recurse() frame
    starts at the workload's <module>. A stack read while the program unwinds must be
    dropped (counted as torn), not recorded as something else."""
    stacks, status, result = recursion_profile(env, python)
    depths = recurse_depths(stacks)
    wrong = {d: v for d, v in depths.items() if d != result["frames"]}
    assert not wrong, f"stacks ending in spin_bottom with a recurse() count other than " \
                      f"{result['frames']}: {wrong} (us); status: {status}"
    path = workload("sampler_recursion.py")
    rootless = [s for s in stacks
                if any(short_name(n) == "recurse" for n, _, _ in frames_of(s)) and
                frames_of(s)[0][:2] != ("<module>", path)]
    assert not rootless, [s[:300] for s in rootless[:5]]


# ---- 5. names -------------------------------------------------------------------------------

def expected_names(version):
    qualified = version >= (3, 11)
    return {
        "generator": "gen_numbers",
        "method": "Worker.method" if qualified else "method",
        "nested": "make_nested.<locals>.inner" if qualified else "inner",
        "lambda": "<lambda>",
        "class_body": "define_class.<locals>.Body" if qualified else "Body",
        "coroutine": "coro_work",
        "cafe": "caf\u00e9",
        "sleep_cjk": "\u7761\u7720",
    }


def test_names_of_every_kind_of_code(env, python):
    """Generators, asyncio coroutines, lambdas, nested functions, methods, class bodies
    and non-ASCII names (café, 睡眠) are each named as the interpreter names them
    (qualified names on 3.11+), appear as the caller of the leaf spin() in their own file,
    and the whole collapsed output is valid UTF-8."""
    proc, names = start(env, python, "sampler_names.py", [2.5], PYPROF_INTERVAL="2ms")
    env.ctl("stop", proc.pid)
    raw = env.ctl("dump", proc.pid, text=False).stdout
    status = env.status(proc.pid)
    finish(proc)
    expected = expected_names(version_of(python))
    assert names == expected, names
    text = raw.decode("utf-8")   # strict: raises on invalid UTF-8
    stacks = parse_collapsed(text)
    path = workload("sampler_names.py")
    callers = set()
    for s in stacks:
        frames = frames_of(s)
        for (name, file, _), (leaf, _, _) in zip(frames, frames[1:]):
            if short_name(leaf) == "spin" and file == path:
                callers.add(name)
    missing = {kind: name for kind, name in expected.items() if name not in callers}
    assert not missing, f"not found as callers of spin: {missing}; callers: " \
                        f"{sorted(callers)}; status: {status}"


# ---- 6. line numbers ------------------------------------------------------------------------

def test_line_numbers_match_source_and_traceback(env, python):
    """The hot loop of hot() sits on one line (found by the workload from a marker
    comment): at least 90% of hot()'s leaf weight is reported at that line. The callers'
    frames (middle, outer with a call spread over two lines, main, <module>) are reported
    at the very lines traceback.extract_stack() gives for them, in at least 99% of the
    weight: a sample read just as a call returns may rarely be torn, but never more."""
    proc, result = start(env, python, "sampler_lines.py", [2.0], PYPROF_INTERVAL="1ms")
    stacks = stop_and_dump(env, proc.pid)
    finish(proc)
    path = workload("sampler_lines.py")
    hot_line, call_sites = result["hot_line"], result["call_sites"]
    assert {"middle", "outer", "main", "<module>"} <= set(call_sites), call_sites
    at_line = {}
    wrong_callers = {}
    for s, v in stacks.items():
        frames = frames_of(s)
        if short_name(frames[-1][0]) != "hot" or frames[-1][1] != path:
            continue
        at_line[frames[-1][2]] = at_line.get(frames[-1][2], 0) + v
        if any(file == path and short_name(name) in call_sites and
               line != call_sites[short_name(name)] for name, file, line in frames[:-1]):
            wrong_callers[s] = v
    total = sum(at_line.values())
    assert at_line, list(stacks)[:5]
    assert at_line.get(hot_line, 0) >= 0.9 * total, (hot_line, at_line)
    assert sum(wrong_callers.values()) <= 0.01 * total, \
        (call_sites, total, list(wrong_callers.items())[:5])


# ---- 7. thread churn ------------------------------------------------------------------------

def test_thread_churn_keeps_counts_consistent(env, python):
    """Threads living 1-10 ms are created and joined continuously while sampling at
    1 kHz: the process runs to the end and exits 0, and once sampling is stopped the
    sample counts of `dump --samples` add up exactly to status's `samples`."""
    proc = env.spawn([python, workload("sampler_churn.py"), "3"], PYPROF_INTERVAL="1ms")
    wait_for_line(proc, "CHURNING")
    time.sleep(2.0)
    env.ctl("stop", proc.pid)   # in the middle of the churn
    status = env.status(proc.pid)
    counts = env.dump(proc.pid, "--samples")
    status_after = env.status(proc.pid)
    result = json.loads(wait_for_line(proc, "RESULT", timeout=30).split("RESULT", 1)[1])
    finish(proc)
    assert status["state"] == "stopped", status
    assert status["samples"] == status_after["samples"], (status, status_after)
    assert status["samples"] > 0, status
    assert sum(counts.values()) == status["samples"], \
        f"dump --samples sums to {sum(counts.values())}, status says {status['samples']}"
    assert weight_with(counts, "short_life") > 0, list(counts)[:10]
    assert result["threads"] >= 100, result


# ---- 8. exit, fork, shutdown ----------------------------------------------------------------

EXIT_KINDS = [("return", 0), ("sys.exit", 3), ("os._exit", 5), ("raise", 1)]


def test_exit_while_threads_are_busy(env, python):
    """20 processes, sampled at 1 kHz, end while their threads compute (two in Python,
    told to stop only as the main thread leaves; two daemon threads in C without the GIL,
    computing until the end): by returning, sys.exit, os._exit or an uncaught exception,
    after 20-300 ms. Each exits with the code it chose, without a crash or a hang."""
    for i in range(20):
        kind, code = EXIT_KINDS[i % len(EXIT_KINDS)]
        delay = 20 + (i * 47) % 280
        argv = [python, workload("sampler_lifecycle.py"), "exit", kind, str(delay)]
        try:
            r = subprocess.run(argv, env=env.preload_env(PYPROF_INTERVAL="1ms"),
                               capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run {i} ({kind}, {delay} ms) hung: {' '.join(argv)}")
        assert_no_crash(r.returncode, r.stderr)
        assert r.returncode == code, f"run {i} ({kind}, {delay} ms): {r.returncode} {r.stderr}"
        if kind == "raise":
            assert "RuntimeError: exit by an uncaught exception" in r.stderr, r.stderr


def test_fork_while_sampling(env, python):
    """A process sampled at 1 kHz, with a thread computing in Python, forks 8 children
    one by one; each child computes (with a thread of its own) and leaves with
    os._exit(10 + i). Every child exits with its code (none killed by a signal), and the
    parent goes on being sampled after the forks: its after_forks() function shows up in
    a fresh profile, and it exits 0."""
    proc, result = start(env, python, "sampler_lifecycle.py", ["fork", 8], timeout=60,
                         PYPROF_INTERVAL="1ms")
    assert result["children"] == [10 + i for i in range(8)], result
    env.ctl("reset", proc.pid)
    time.sleep(0.5)
    stacks = stop_and_dump(env, proc.pid)
    status = env.status(proc.pid)
    finish(proc)
    assert status["pid"] == proc.pid
    assert weight_with(stacks, "after_forks") > 0, list(stacks)[:10]


def test_sampling_through_interpreter_shutdown(env, python, tmp_path):
    """Five runs at 1 kHz end with daemon threads still computing (in C, without the
    GIL: see sampler_lifecycle.py for why not in Python) and atexit handlers that compute
    and allocate: each exits 0 without a crash or a hang, and the profile written at exit
    (PYPROF_OUTPUT) holds the atexit handler's work, sampled during shutdown."""
    for i in range(5):
        out = tmp_path / f"shutdown-{i}.folded"
        argv = [python, workload("sampler_lifecycle.py"), "shutdown"]
        try:
            r = subprocess.run(argv, env=env.preload_env(PYPROF_INTERVAL="1ms",
                                                         PYPROF_OUTPUT=out),
                               capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run {i} hung: {' '.join(argv)}")
        assert_no_crash(r.returncode, r.stderr)
        assert r.returncode == 0, r.stderr
        assert out.exists(), f"run {i}: no profile written at exit; {r.stderr}"
        stacks = parse_collapsed(out.read_text(encoding="utf-8"))
        assert weight_with(stacks, "exit_work") > 0, f"run {i}: {list(stacks)[:10]}"


def test_stack_walk_survives_fast_changing_stacks(env, python):
    """Sampling at 100 us (the fastest interval short of the 50 us floor), four threads
    whose stacks change all the time (calls of varying depth, generators, exceptions,
    exec of unmarshalled code, fresh imports that go back and forth between C and
    Python): the stack walker reads frames while they are being pushed, popped and
    reused, and must reject what it cannot trust rather than crash. Four runs of 2.5 s
    each exit 0 with their result printed."""
    for i in range(4):
        argv = [python, workload("sampler_torture.py"), "2.5"]
        try:
            r = subprocess.run(argv, env=env.preload_env(PYPROF_INTERVAL="100us"),
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run {i} hung: {' '.join(argv)}")
        assert_no_crash(r.returncode, r.stderr)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.split("RESULT", 1)[1])["calls"] > 0, r.stdout


# ---- 9. labels ------------------------------------------------------------------------------

@needs_protoc
def test_gil_and_thread_labels(env, python, tmp_path):
    """pprof labels: the samples of a pure-Python busy thread carry the `gil` label
    (at least 90% of them), and `thread_id` (its native id, as threading.get_native_id()
    says) and a non-empty `thread_name`; every sample carries thread_id and thread_name."""
    proc, result = start(env, python, "sampler_labels.py", ["busy", 2.0], PYPROF_INTERVAL="2ms")
    env.ctl("stop", proc.pid)
    pprof = dump_pprof(env, proc.pid, tmp_path)
    status = env.status(proc.pid)
    finish(proc)
    assert pprof.samples, status
    for s in pprof.samples:
        assert isinstance(s["labels"].get("thread_id"), int), s
        assert s["labels"].get("thread_name"), s
    busy = [s for s in pprof.samples if any(short_name(n) == "busy_loop" for n in s["names"])]
    assert busy, pprof.samples[:5]
    assert {s["labels"]["thread_id"] for s in busy} == {result["busy_tid"]}, busy[:5]
    with_gil = pprof.count([s for s in busy if s["labels"].get("gil") == 1])
    assert with_gil >= 0.9 * pprof.count(busy), (with_gil, pprof.count(busy))


@needs_protoc
def test_gc_label(env, python, tmp_path):
    """pprof labels: a main thread that calls gc.collect() in a loop over 100,000 objects
    in cycles has samples labelled `gc` in collect_loop (at least 5); every sample
    labelled `gc` also holds the GIL (automatic collections elsewhere, during start-up
    imports say, may be labelled too); the loop's samples carry thread_id = the process
    id and thread_name = MainThread."""
    proc, result = start(env, python, "sampler_labels.py", ["gc", 2.0], PYPROF_INTERVAL="2ms")
    env.ctl("stop", proc.pid)
    pprof = dump_pprof(env, proc.pid, tmp_path)
    status = env.status(proc.pid)
    finish(proc)
    assert result["collections"] > 0
    loop = [s for s in pprof.samples if any(short_name(n) == "collect_loop" for n in s["names"])]
    assert loop, (status, pprof.samples[:5])
    for s in loop:
        assert s["labels"].get("thread_id") == result["pid"] == result["main_tid"], s
        assert s["labels"].get("thread_name") == "MainThread", s
    gc_samples = [s for s in pprof.samples if s["labels"].get("gc") == 1]
    for s in gc_samples:
        assert s["labels"].get("gil") == 1, s
    in_loop = [s for s in gc_samples if any(short_name(n) == "collect_loop" for n in s["names"])]
    assert pprof.count(in_loop) >= 5, (pprof.count(in_loop), pprof.count(loop))

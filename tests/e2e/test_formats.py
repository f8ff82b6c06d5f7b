"""Outputs end to end: a real profiled process dumped in every format, read back, converted,
and malformed inputs refused with one line."""
import gzip
import json
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT, find_pyenv, parse_collapsed, wait_for_line, workload

PYTHON = find_pyenv("3.12") or "/usr/bin/python3"


@pytest.fixture
def served(env):
    proc = env.spawn([PYTHON, workload("demo_app.py")], PYPROF_INTERVAL="1ms")
    pid = int(wait_for_line(proc, "ready").split()[1])
    env.wait_socket(pid)
    while env.status(pid)["samples"] < 50:
        time.sleep(0.05)
    env.ctl("stop", pid)
    yield pid
    proc.stdin.close()
    proc.wait(timeout=30)


def test_every_format_from_one_dump(env, served, tmp_path):
    """One stopped profile dumped as collapsed, pprof, raw pprof, speedscope and svg: each
    file is well formed for its format, and all of them carry the same total."""
    pid = served
    paths = {ext: tmp_path / f"p.{ext}" for ext in ("folded", "pb.gz", "pb", "json", "svg")}
    for path in paths.values():
        env.ctl("dump", pid, "--samples", "-o", path)
    folded = parse_collapsed(paths["folded"].read_text())
    total = sum(folded.values())
    assert total == env.status(pid)["samples"]
    gzip.decompress(paths["pb.gz"].read_bytes())   # a real gzip stream
    for pprof in (paths["pb.gz"], paths["pb"]):
        assert parse_collapsed(env.ctl("convert", pprof, "--samples").stdout) == folded
    doc = json.loads(paths["json"].read_text())
    assert doc["$schema"].startswith("https://www.speedscope.app/")
    assert sum(sum(p["weights"]) for p in doc["profiles"]) == total
    frames = doc["shared"]["frames"]
    for p in doc["profiles"]:
        assert p["type"] == "sampled" and len(p["samples"]) == len(p["weights"])
        assert all(0 <= i < len(frames) for s in p["samples"] for i in s)
    svg = ET.parse(paths["svg"]).getroot()
    assert svg.get("data-total") == str(total)


def test_svg_widths_are_proportional(env, served, tmp_path):
    """In the SVG, every drawn frame's width is its value over the total times the chart
    width, and its details (data-t, shown on hover) carry the same value."""
    out = tmp_path / "p.svg"
    env.ctl("dump", served, "--samples", "-o", out)
    root = ET.parse(out).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    width, total = float(root.get("data-width")), float(root.get("data-total"))
    groups = root.findall(".//s:g[@class='f']", ns)
    assert groups
    for g in groups:
        rect = g.find("s:rect", ns)
        value = float(g.get("data-w"))
        assert abs(float(rect.get("width")) - value / total * width) < 0.01
        assert re.search(r"%d samples" % value, g.get("data-t"))


def test_convert_round_trips_and_refuses_garbage(env, served, tmp_path):
    """convert reads pprof and collapsed files back: pprof -> collapsed gives the same stacks
    as dump; collapsed -> pprof -> collapsed keeps them; a corrupt, truncated or empty file
    gets one line and exit 1."""
    pid = served
    pb, folded = tmp_path / "p.pb.gz", tmp_path / "p.folded"
    env.ctl("dump", pid, "-o", pb)
    env.ctl("dump", pid, "-o", folded)
    direct = parse_collapsed(folded.read_text())
    assert parse_collapsed(env.ctl("convert", pb).stdout) == direct
    back = tmp_path / "back.pb"
    env.ctl("convert", folded, "-o", back)
    assert parse_collapsed(env.ctl("convert", back).stdout) == direct
    bad = {"garbage.pb": b"\x00\x01garbage" * 10, "cut.pb.gz": pb.read_bytes()[:60],
           "empty.pb": b"", "text.folded": b"a;b 10\nnot a stack line\n"}
    for name, data in bad.items():
        path = tmp_path / name
        path.write_bytes(data)
        r = env.ctl("convert", path, check=False)
        assert r.returncode == 1, name
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_dump_all_merges_processes(env, tmp_path):
    """dump --all merges every profiled process: one root frame per process, named with its
    pid; --match keeps only matching command lines."""
    procs = []
    for _ in range(2):
        p = env.spawn([PYTHON, workload("serve.py")], PYPROF_INTERVAL="1ms")
        pid = int(wait_for_line(p, "ready").split()[1])
        env.wait_socket(pid)
        procs.append((p, pid))
    while min(env.status(pid)["samples"] for _, pid in procs) < 20:
        time.sleep(0.05)
    merged = parse_collapsed(env.ctl("dump", "--all").stdout)
    roots = {s.split(";")[0] for s in merged}
    for _, pid in procs:
        assert any(r.startswith(f"process {pid}:") for r in roots), roots
    assert env.ctl("dump", "--all", "--match", "no-such-command", check=False).returncode == 1
    for p, _ in procs:
        p.stdin.write("quit\n")
        p.stdin.flush()
        p.wait(timeout=30)


def test_dump_duration_profiles_for_that_long(env):
    """dump --duration resets, waits and dumps: the result covers about that window (its
    profile's duration is at least the requested time) and is not empty."""
    p = env.spawn([PYTHON, workload("serve.py")], PYPROF_INTERVAL="1ms")
    pid = int(wait_for_line(p, "ready").split()[1])
    env.wait_socket(pid)
    r = env.ctl("dump", pid, "--duration", "700ms", "-f", "speedscope")
    doc = json.loads(r.stdout)
    assert sum(sum(x["weights"]) for x in doc["profiles"]) > 0
    assert r.stderr == ""   # no countdown when stderr is not a terminal
    p.stdin.write("quit\n")
    p.stdin.flush()
    p.wait(timeout=30)


def test_top_once_shows_the_hot_function(env):
    """`top --once` prints the hottest functions of the last interval, the busy one first,
    with its self and total shares, without resetting the profile."""
    p = env.spawn([PYTHON, workload("serve.py")], PYPROF_INTERVAL="1ms")
    pid = int(wait_for_line(p, "ready").split()[1])
    env.wait_socket(pid)
    time.sleep(0.3)
    before = env.status(pid)["samples"]
    out = env.ctl("top", pid, "--once", "--interval", "500ms", "--rows", "5").stdout
    rows = [l for l in out.splitlines() if l.strip()[:1].isdigit()]
    assert rows and rows[0].split()[-2].startswith("spin"), out
    self_share = float(rows[0].split()[0].rstrip("%"))
    assert 50.0 <= self_share <= 100.0, out
    assert env.status(pid)["samples"] >= before   # not reset
    p.stdin.write("quit\n")
    p.stdin.flush()
    p.wait(timeout=30)


SHIFT = """
import sys, time
def fast():
    t = time.time()
    while time.time() - t < 0.1:
        pass
def slow():
    t = time.time()
    while time.time() - t < 0.1 * float(sys.argv[1]):
        pass
for _ in range(3):
    fast(); slow()
"""


def test_diff_finds_what_grew(env, tmp_path):
    """diff of two real runs where slow() takes three times longer in the second: the
    summary lists slow() as grown and fast() as shrunk, and the differential flamegraph
    colours slow() red and fast() blue."""
    prog = tmp_path / "shift.py"
    prog.write_text(SHIFT)
    runs = {}
    for name, factor in (("before", "1"), ("after", "3")):
        runs[name] = tmp_path / f"{name}.pb.gz"
        env.ctl("run", "-o", runs[name], "--", PYTHON, prog, factor)
    svg = tmp_path / "diff.svg"
    r = env.ctl("diff", runs["before"], runs["after"], "-o", svg, "--functions")
    rows = {l.split()[-2]: float(l.split()[2].rstrip("%")) for l in r.stdout.splitlines()[1:]}
    assert rows["slow"] > 10 and rows["fast"] < -10, r.stdout
    root = ET.parse(svg).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    fills = {g.get("data-t").split(" (")[0]: g.find("s:rect", ns).get("fill")
             for g in root.findall(".//s:g[@class='f']", ns)}
    assert fills["slow"].startswith("rgb(255,"), fills["slow"]
    assert fills["fast"].endswith(",255)"), fills["fast"]
    assert env.ctl("diff", runs["before"], check=False).returncode == 2
    # a corrupt, truncated, empty or missing input on either side: one line, exit 1, no SVG
    bad = {"garbage.pb": b"\x00\x01garbage" * 10, "cut.pb.gz": runs["after"].read_bytes()[:60],
           "empty.pb": b""}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    for name in list(bad) + ["missing.pb"]:
        for pair in ((tmp_path / name, runs["after"]), (runs["before"], tmp_path / name)):
            out = tmp_path / "bad-diff.svg"
            r = env.ctl("diff", *pair, "-o", out, check=False)
            assert r.returncode == 1 and r.stdout == "", (name, r)
            assert len(r.stderr.strip().splitlines()) == 1 and name in r.stderr, r.stderr
            assert not out.exists(), name


def readme_block(first_line):
    """The lines of the README's code block that starts with `first_line`."""
    text = (ROOT / "README.md").read_text()
    start = text.index("```\n" + first_line) + 4
    return text[start:text.index("```", start)].splitlines()


def test_readme_examples_run_as_written(env, tmp_path):
    """The README's opening example, run as written against a real profiled server (its
    workload and the build's paths in place of gunicorn and /usr/local, its pid in place of
    4242): `pyprofctl list` names the process, and each `dump` writes the file the README
    says, in the format its comment says (collapsed stacks naming the workload's function;
    gzip-compressed pprof)."""
    lines = readme_block("LD_PRELOAD=/usr/local/lib/libpyprof.so gunicorn app:app")
    assert lines[0].startswith("LD_PRELOAD=/usr/local/lib/libpyprof.so ")
    proc = env.spawn([PYTHON, workload("demo_app.py")], PYPROF_INTERVAL="1ms")
    pid = int(wait_for_line(proc, "ready").split()[1])
    env.wait_socket(pid)
    while env.status(pid)["samples"] < 50:
        time.sleep(0.05)
    try:
        for line in lines[1:]:
            command = line.split("#")[0].split()
            assert command[0] == "pyprofctl", line
            args = [str(pid) if a == "4242" else a for a in command[1:]]
            r = env.ctl(*args, cwd=tmp_path)
            if args[0] == "list":
                assert str(pid) in r.stdout and "demo_app.py" in r.stdout, r.stdout
        stacks = parse_collapsed((tmp_path / "profile.folded").read_text())
        assert any("worker" in s for s in stacks), list(stacks)[:5]
        raw = gzip.decompress((tmp_path / "profile.pb.gz").read_bytes())
        assert b"worker" in raw
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


@pytest.mark.parametrize("ext", ["svg", "json", "pb.gz", "folded"])
def test_pyprof_output_any_format(env, tmp_path, ext):
    """PYPROF_OUTPUT writes every format at exit, and the profile includes work done in an
    atexit handler (sampling goes on until the very end of finalisation)."""
    out = tmp_path / f"out.{ext}"
    prog = ("import atexit, time\n"
            "def exit_work():\n"
            "    t = time.time()\n"
            "    while time.time() - t < 0.3:\n        pass\n"
            "atexit.register(exit_work)\n")
    r = subprocess.run([PYTHON, "-c", prog], env=env.preload_env(PYPROF_OUTPUT=out,
                                                                  PYPROF_INTERVAL="1ms"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    if ext == "svg":
        ET.parse(out)
    elif ext == "json":
        json.loads(out.read_text())
    text = env.ctl("convert", out).stdout if ext in ("pb.gz", "folded") else out.read_text()
    assert "exit_work" in text

"""Fixtures for the stress tests: those of tests/e2e/conftest.py (python over every
interpreter, sockdir, env, parse_collapsed, wait_for_line, ...), loaded by path under the
module name `e2e_conftest` (this file is `conftest` itself), plus a watchdog.

tests/e2e is put on sys.path so that test_stress.py can import the helpers of
test_sampler.py and test_control.py instead of copying them; their own
`from conftest import ...` then resolves to this module, which re-exports everything.
"""
import importlib.util
import os
import sys
import threading
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parents[1] / "e2e"

_spec = importlib.util.spec_from_file_location("e2e_conftest", E2E / "conftest.py")
e2e_conftest = importlib.util.module_from_spec(_spec)
sys.modules["e2e_conftest"] = e2e_conftest
_spec.loader.exec_module(e2e_conftest)

from e2e_conftest import *  # noqa: E402,F401,F403  (fixtures and helpers, re-exported)

if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

# Far above what any scenario needs (each is bounded to well under a minute): only a hang
# gets there. wait_for_line() blocks in readline(), which no timeout can interrupt; killing
# the test's processes makes it return.
WATCHDOG_SECONDS = float(os.environ.get("PYPROF_STRESS_WATCHDOG", "120"))


@pytest.fixture(autouse=True)
def watchdog(env):
    """Kill every process the test spawned if the test runs over WATCHDOG_SECONDS, and
    fail it as a hang."""
    fired = []

    def fire():
        fired.append([p.pid for p in env.procs if p.poll() is None])
        for p in env.procs:
            if p.poll() is None:
                p.kill()

    timer = threading.Timer(WATCHDOG_SECONDS, fire)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()
    if fired:
        pytest.fail(f"hang: the test ran over {WATCHDOG_SECONDS:g}s; the watchdog killed "
                    f"{fired[0]}")

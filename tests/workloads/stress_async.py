"""Generators and coroutines in flight: for SECONDS, an asyncio loop keeps TASKS tasks
alive at all times, created as others finish and now and then cancelled mid-flight, of
three kinds: a method coroutine awaiting a chain of coroutines (Service.handle ->
coro_outer -> coro_mid -> coro_leaf), a coroutine consuming an async generator
(agen_consumer -> agen_numbers), and a coroutine draining nested generators (gen_task ->
gen_outer -> gen_mid -> gen_leaf, by `yield from`), some of them closed half-way. Each
chain computes in crunch() at its end and yields to the loop between steps.
Prints RESULT {"tasks", "cancelled", "chains", "names"} (chains: the qualified names the
interpreter gives each chain's functions, leaf last) and waits on stdin.
Usage: stress_async.py TASKS SECONDS"""
import asyncio
import random
import sys
import time

from stress_common import crunch, emit, frame_names, qualname, wait_for_stdin

TASKS, DURATION = int(sys.argv[1]), float(sys.argv[2])


async def coro_leaf(n):
    try:
        crunch(n)
        await asyncio.sleep(0)
        crunch(n)
    finally:
        crunch(100)   # also runs when the task is cancelled here


async def coro_mid(n):
    await coro_leaf(n)
    await asyncio.sleep(0)


async def coro_outer(n, rounds):
    for _ in range(rounds):
        await coro_mid(n)


class Service:
    async def handle(self, n):
        await coro_outer(n, 3)


async def agen_numbers(n):
    for i in range(4):
        crunch(n)
        yield i
        await asyncio.sleep(0)


async def agen_consumer(n):
    total = 0
    async for i in agen_numbers(n):
        total += i
    return total


def gen_leaf(n):
    try:
        for i in range(4):
            crunch(n)
            yield i
    finally:
        crunch(100)   # runs on close() too


def gen_mid(n):
    yield from gen_leaf(n)


def gen_outer(n):
    yield from gen_mid(n)


async def gen_task(n, close_early):
    g = gen_outer(n)
    for i, _ in enumerate(g):
        await asyncio.sleep(0)
        if close_early and i == 1:
            g.close()   # GeneratorExit through the yield-from chain
            break


async def run(deadline, rng):
    service = Service()
    pending, created, cancelled = set(), 0, 0
    while time.monotonic() < deadline:
        while len(pending) < TASKS:
            kind, n = rng.randrange(3), rng.randrange(200, 2000)
            if kind == 0:
                coro = service.handle(n)
            elif kind == 1:
                coro = agen_consumer(n)
            else:
                coro = gen_task(n, rng.random() < 0.3)
            pending.add(asyncio.ensure_future(coro))
            created += 1
        for victim in rng.sample(sorted(pending, key=id), rng.randrange(4)):
            cancelled += victim.cancel()
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if not t.cancelled():
                t.result()
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return created, cancelled


def main():
    created, cancelled = asyncio.run(run(time.monotonic() + DURATION, random.Random(77)))
    chains = {
        "coroutines": [qualname(f) for f in (Service.handle, coro_outer, coro_mid, coro_leaf, crunch)],
        "async_generator": [qualname(f) for f in (agen_consumer, agen_numbers, crunch)],
        "generators": [qualname(f) for f in (gen_task, gen_outer, gen_mid, gen_leaf, crunch)],
    }
    emit("RESULT", {"tasks": created, "cancelled": cancelled, "chains": chains,
                    "names": frame_names(__file__)})
    wait_for_stdin()


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
"""Every kind of code object the profile must name: a generator, a coroutine run by
asyncio, a lambda, a nested function, a method, a class body, and functions with
non-ASCII names. Each calls spin(), so each is the caller of the leaf in its samples.
Runs for SECONDS, then prints RESULT {kind: name} with the names the interpreter itself
gives these code objects (co_qualname on 3.11+, co_name before) and waits on stdin.
Usage: sampler_names.py [SECONDS]"""
import asyncio
import json
import sys
import time

DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
N = 30000


def spin(n):
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def gen_numbers(n):
    while True:
        spin(n)
        yield n


class Worker:
    def method(self, n):
        return spin(n)


def make_nested():
    def inner(n):
        return spin(n)
    return inner


lam = lambda n: spin(n)  # noqa: E731


def define_class(n):
    class Body:
        value = spin(n)
    return Body


async def coro_work(n, rounds):
    for _ in range(rounds):
        spin(n)
        await asyncio.sleep(0)


def café(n):
    return spin(n)


def 睡眠(n):
    return spin(n)


def name_of(code):
    return getattr(code, "co_qualname", code.co_name)


def main():
    inner = make_nested()
    gen = gen_numbers(N)
    worker = Worker()
    loop = asyncio.new_event_loop()
    body_code = next(c for c in define_class.__code__.co_consts
                     if hasattr(c, "co_name") and c.co_name == "Body")
    deadline = time.monotonic() + DURATION
    while time.monotonic() < deadline:
        next(gen)
        worker.method(N)
        inner(N)
        lam(N)
        define_class(N)
        loop.run_until_complete(coro_work(N, 1))
        café(N)
        睡眠(N)
    loop.close()
    names = {
        "generator": name_of(gen_numbers.__code__),
        "method": name_of(Worker.method.__code__),
        "nested": name_of(inner.__code__),
        "lambda": name_of(lam.__code__),
        "class_body": name_of(body_code),
        "coroutine": name_of(coro_work.__code__),
        "cafe": name_of(café.__code__),
        "sleep_cjk": name_of(睡眠.__code__),
    }
    print("RESULT " + json.dumps(names), flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()

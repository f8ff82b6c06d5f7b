"""A tiny ASGI app for the uvicorn + uvloop test: each request burns a little CPU."""
import os


def handle():
    return sum(i * i for i in range(20000))


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"{os.getpid()} {handle()}\n".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})

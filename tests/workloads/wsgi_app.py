"""A tiny WSGI app for the gunicorn test: each request burns a little CPU in `handle`."""
import os


def handle():
    return sum(i * i for i in range(20000))


def app(environ, start_response):
    body = f"{os.getpid()} {handle()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

"""A small Flask API for scripts/bench's load test (gunicorn under wrk): each request parses
a query, does a little pure-Python work (a JSON document built and rendered, as an API
does) and answers JSON."""
from flask import Flask, jsonify, request

app = Flask(__name__)


def score(item, weight):
    return sum((item * k + weight) % 97 for k in range(40))


@app.route("/items")
def items():
    n = int(request.args.get("n", "50"))
    weight = int(request.args.get("w", "3"))
    return jsonify(items=[{"id": i, "score": score(i, weight)} for i in range(n)])

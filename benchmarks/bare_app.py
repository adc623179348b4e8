"""A bare Flask app with one fixed answer: the ceiling gunicorn and Flask allow on this machine."""
from flask import Flask, Response

app = Flask(__name__)
BODY = b'{"ok":true}'


@app.get("/bare")
def bare():
    """Return a fixed JSON body."""
    return Response(BODY, mimetype="application/json")

"""The ceiling: a bare Flask app answering /ping, served by the same gunicorn settings as refapi."""

from flask import Flask

app = Flask(__name__)


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "ok"}

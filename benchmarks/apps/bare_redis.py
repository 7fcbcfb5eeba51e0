"""The floor of a read cached in Redis: the bare Flask /ping plus one redis-py GET per request.

Served like the bare app, by the same gunicorn settings, in configuration B only: how fast any
endpoint that makes one Redis round trip per request can be here, whatever else it does. The
key is under the run's own prefix (REFAPI_CACHE_KEY_PREFIX) and never exists.
"""

import os

import redis
from flask import Flask

app = Flask(__name__)
_redis = redis.Redis.from_url(os.environ["REFAPI_REDIS_URL"])
_KEY = os.environ.get("REFAPI_CACHE_KEY_PREFIX", "") + "bare-redis"


@app.get("/ping")
def ping() -> dict[str, str]:
    _redis.get(_KEY)
    return {"status": "ok"}

"""refapi with every SQL statement made slower: `gunicorn --config gunicorn.conf.py slow_db:app`.

The concurrency study's "slow database": `BENCH_DB_DELAY` seconds (default 0.02) of sleep before
each statement reaches the database, as a remote database or a loaded one would add. The sleep
releases the GIL, like real network I/O does.
"""

import os
import time

import sqlalchemy as sa

from refapi import create_app

DELAY = float(os.environ.get("BENCH_DB_DELAY", "0.02"))


def _wait(*_args: object, **_kwargs: object) -> None:
    time.sleep(DELAY)


sa.event.listen(sa.engine.Engine, "before_cursor_execute", _wait)

app = create_app()

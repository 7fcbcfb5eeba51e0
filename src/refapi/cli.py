"""The flask commands of the whole service, and what every command that changes data shares.

``flask deploy``: what the compose ``migrate`` service runs before the API starts.
``flask cache clear``: empty the shared cache, after a database restore say.
"""

from __future__ import annotations

import logging

import click
import flask_migrate
from flask import current_app
from flask.cli import with_appcontext

from refapi.caching import invalidation_lost
from refapi.extensions import cache
from refapi.indices import services as indices
from refapi.zipcodes import services as zipcodes


def counted(count: int, one: str, many: str | None = None) -> str:
    """``1 entry``, ``3 entries``: a count with its noun, for what commands print."""
    return f"{count} {one if count == 1 else many or one + 's'}"


def require_invalidated(what: str) -> None:
    """End a command that changed data with an error if Redis could not be told of the change.

    Running servers would answer the old data from the cache until it expires; the command, which
    exits now, cannot empty the cache later as a server would.
    """
    if invalidation_lost(cache):
        raise click.ClickException(_not_invalidated(what))


def _not_invalidated(what: str) -> str:
    timeout = current_app.config["CACHE_DEFAULT_TIMEOUT"]
    until = (
        f"for up to {timeout} s (REFAPI_CACHE_DEFAULT_TIMEOUT)"
        if timeout
        else "until it is emptied (REFAPI_CACHE_DEFAULT_TIMEOUT is 0: no expiry)"
    )
    return (
        f"{what}, but Redis did not answer, so the servers' cache may still hold the old data "
        f"{until}. Run `flask --app wsgi cache clear` once Redis answers."
    )


@click.group("cache")
def cache_group() -> None:
    """The cache that every server shares (Redis)."""


@cache_group.command("clear")
@with_appcontext
def clear_command() -> None:
    """Empty the shared cache: every server reads the database again.

    Only this deployment's keys (under REFAPI_CACHE_KEY_PREFIX) are deleted. For after a
    database restore, or a command that could not reach Redis.
    """
    if not current_app.config["REDIS_URL"]:
        raise click.ClickException(
            "There is no shared cache to empty (REFAPI_REDIS_URL is empty): each server keeps "
            "its own in its process, emptied when the server restarts."
        )
    if not cache.clear():
        raise click.ClickException(
            "Redis did not answer: the cache was not emptied, or not all of it. Run it again once "
            "Redis answers."
        )
    click.echo("Cache emptied: every server reads the database again.")


def _upgrade(directory: str) -> None:
    """Alembic's upgrade, without leaving its logging behind.

    migrations/env.py gives the root logger alembic.ini's handler when it has none, for the
    migration's own lines. refapi's loggers have their handler and also propagate to the root,
    so every later line of theirs was printed twice, the second time as "WARNI [refapi...]".
    """
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        flask_migrate.upgrade(directory=directory)
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
                handler.close()


@click.command("deploy")
@click.option(
    "--seed/--no-seed",
    envvar="RUN_SEEDER",
    default=False,
    show_default=True,
    help="Also import the sample zipcode table (into an empty table only) and download the "
    "health index. Environment: RUN_SEEDER=true.",
)
@click.option(
    "--directory",
    default="migrations",
    show_default=True,
    help="The migrations folder.",
)
@with_appcontext
def deploy(seed: bool, directory: str) -> None:
    """Apply the database migrations, then seed reference data when asked."""
    _upgrade(directory)
    click.echo("Database schema is up to date.")
    if not seed:
        return
    changed = _seed_zipcodes()
    changed = _seed_index() or changed
    if changed and invalidation_lost(cache):
        # Like Statbel being down, Redis being down does not block a deployment.
        click.echo(f"Warning: {_not_invalidated('The seeded data is stored')}", err=True)


def _seed_zipcodes() -> bool:
    """The sample table, into an empty table only; whether it imported it."""
    imported = zipcodes.import_sample(if_empty=True)
    if imported.skipped:
        held = counted(imported.zipcodes, "zipcode")
        click.echo(f"The zipcode table already holds {held}: kept as it is.")
        return False
    click.echo(f"Imported the sample zipcode table: {counted(imported.zipcodes, 'zipcode')}.")
    return True


def _seed_index() -> bool:
    """The health index from Statbel, when it can be had now; whether it changed."""
    if not current_app.config["STATBEL_URL"]:
        # Nothing to download from, now or later: the API does not retry either.
        click.echo(
            "The health index was not downloaded: REFAPI_STATBEL_URL is empty, so the API will "
            "not download it either. Load it with `flask indices refresh --file ...`."
        )
        return False
    try:
        outcome = indices.refresh()
    except indices.RefreshFailed as error:
        # Statbel being down, or a file it refuses, must not block a deployment: the API
        # refreshes on demand. A reason refapi.indices logged (with Statbel's URL) is not
        # repeated here; another one (a refresh already running) is said here.
        shown = "" if error.logged else f" ({error})"
        click.echo(
            f"The health index could not be downloaded now{shown}; the API will retry on demand."
        )
        return False
    click.echo(f"Health index stored: latest month {outcome.latest_month}.")
    return outcome.changed

"""``flask deploy``: what the compose ``migrate`` service runs before the API starts."""

from __future__ import annotations

import logging

import click
import flask_migrate
from flask import current_app
from flask.cli import with_appcontext

from refapi.indices import services as indices
from refapi.zipcodes import services as zipcodes

logger = logging.getLogger("refapi.deploy")


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
    flask_migrate.upgrade(directory=directory)
    click.echo("Database schema is up to date.")
    if not seed:
        return
    imported = zipcodes.import_sample(if_empty=True)
    if imported.skipped:
        click.echo(f"The zipcode table already holds {imported.zipcodes} zipcodes: kept as it is.")
    else:
        click.echo(f"Imported the sample zipcode table: {imported.zipcodes} zipcodes.")
    if not current_app.config["STATBEL_URL"]:
        # Nothing to download from, now or later: the API does not retry either.
        logger.warning("health index not downloaded during deploy: REFAPI_STATBEL_URL is empty")
        click.echo(
            "The health index was not downloaded: REFAPI_STATBEL_URL is empty, so the API will "
            "not download it either. Load it with `flask indices refresh --file ...`."
        )
        return
    try:
        outcome = indices.refresh()
    except indices.RefreshFailed as error:
        # Statbel being down, or a file it refuses, must not block a deployment: the API
        # refreshes on demand.
        logger.warning("health index not downloaded during deploy: %s", error)
        click.echo("The health index could not be downloaded now; the API will retry on demand.")
        return
    click.echo(f"Health index stored: latest month {outcome.latest_month}.")

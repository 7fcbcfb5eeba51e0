"""``flask deploy``: what the compose ``migrate`` service runs before the API starts."""

from __future__ import annotations

import logging

import click
import flask_migrate
from flask import current_app
from flask.cli import with_appcontext

logger = logging.getLogger("refapi.deploy")


def _feature_command(group: str, name: str) -> click.Command:
    context = click.get_current_context()
    feature = current_app.cli.get_command(context, group)
    command = feature.get_command(context, name) if isinstance(feature, click.Group) else None
    if command is None:
        raise click.ClickException(f"`flask {group} {name}` is not available")
    return command


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
@click.pass_context
@with_appcontext
def deploy(context: click.Context, seed: bool, directory: str) -> None:
    """Apply the database migrations, then seed reference data when asked."""
    flask_migrate.upgrade(directory=directory)
    click.echo("Database schema is up to date.")
    if not seed:
        return
    context.invoke(_feature_command("zipcodes", "import"), if_empty=True)
    try:
        context.invoke(_feature_command("indices", "refresh"))
    except Exception as error:
        # No failure of the download (Statbel down, a file it refuses) may block a deployment:
        # the API refreshes on demand.
        logger.warning("health index not downloaded during deploy: %s", error)
        click.echo("The health index could not be downloaded now; the API will retry on demand.")

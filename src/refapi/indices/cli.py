"""``flask indices refresh``: download Statbel's data, or import it from a file."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from refapi.cli import counted, require_invalidated
from refapi.indices import services


@click.command("refresh")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False),
    help="Import this ZIP or text file (Statbel's format) instead of downloading.",
)
@with_appcontext
def refresh_command(path: str | None) -> None:
    """Store the latest health index from Statbel (or from --file). Safe to repeat."""
    try:
        outcome = services.refresh(path=path)
    except services.RefreshFailed as error:
        # A failed download or file is logged by refapi.indices, with its source and reason,
        # just above this message: said once.
        reason = "the reason is logged above" if error.logged else str(error)
        raise click.ClickException(f"refresh failed, stored data unchanged: {reason}") from None
    click.echo(f"Read {outcome.source}.")
    if not outcome.changed:
        click.echo(f"Already up to date; latest month {outcome.latest_month}.")
        return
    added, updated = counted(outcome.rows_added, "row"), counted(outcome.rows_updated, "row")
    click.echo(f"{added} added, {updated} updated.")
    if outcome.months_added:
        months = outcome.months_added
        shown = ", ".join(months) if len(months) <= 6 else f"{months[0]} to {months[-1]}"
        click.echo(f"{counted(len(months), 'new month')} with a health index: {shown}.")
    click.echo(f"Latest month: {outcome.latest_month}.")
    require_invalidated("The health index is stored")

"""``flask zipcodes import``: load an operators' risk table, or the sample shipped with refapi."""

from __future__ import annotations

from typing import BinaryIO

import click
from flask.cli import with_appcontext

from refapi.cli import counted, require_invalidated
from refapi.zipcodes import services
from refapi.zipcodes.errors import RiskTableNotValid


@click.command("import")
@click.argument("file", type=click.File("rb"), required=False)
@click.option(
    "--if-empty",
    is_flag=True,
    help="Import only when the table has no zipcodes yet (for start-up scripts).",
)
@with_appcontext
def import_command(file: BinaryIO | None, if_empty: bool) -> None:
    """Replace the zipcode risk table with FILE (CSV; '-' reads standard input).

    Each line is a zipcode or an inclusive range 'start - end', then the risk factor A, B or C:
    '1000 - 1310,C' or '1315,B'. A header line, a byte-order mark, blank lines and '#' comment
    lines are allowed. The whole file is checked first: if any line is wrong, every error is
    listed with its line number and nothing is imported. Without FILE, imports the sample table
    that ships with refapi (made-up factors, to replace with your own).
    """
    if file is None:
        source = f"the sample table ({services.SAMPLE_TABLE})"
    else:
        source = getattr(file, "name", "standard input")
    # A start-up script runs this on every start: a loaded table ends it before the file is read.
    if if_empty and (existing := services.count()):
        click.echo(f"The risk table already has {counted(existing, 'zipcode')}; nothing imported.")
        return
    content = file.read() if file is not None else services.sample_table()
    try:
        result = services.import_csv(content=content, if_empty=if_empty)
    except RiskTableNotValid as error:
        lines = "\n".join(f"  line {p['line']}: {p['message']}" for p in error.problems)
        raise click.ClickException(f"{source}: {error.detail}\n{lines}") from None
    if result.skipped:
        click.echo(
            f"The risk table already has {counted(result.zipcodes, 'zipcode')}; nothing imported."
        )
        return
    if result.header is not None:
        click.echo(f"Skipped the header line: {result.header!r}")
    click.echo(
        f"Imported {counted(result.zipcodes, 'zipcode')} from {source}: {result.added} added, "
        f"{result.changed} changed, {result.removed} removed."
    )
    if result.added or result.changed or result.removed:
        require_invalidated("The risk table is imported")

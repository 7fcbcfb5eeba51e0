"""``flask store export FILE`` and ``flask store import FILE``: backup and restore in JSON lines."""

from __future__ import annotations

import json
from typing import IO, Any

import click
import marshmallow as ma
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import IntegrityError

from refapi.store import services
from refapi.store.schemas import ExportedEntry

# Enough to fix a file without drowning the terminal.
MAX_REPORTED_PROBLEMS = 20


@click.command("export")
@click.argument("file", type=click.File("w", encoding="utf-8", atomic=True))
@click.option("--client", help="Export only this client's entries (default: every client).")
@with_appcontext
def export_command(file: IO[str], client: str | None) -> None:
    """Write every entry to FILE as JSON lines ('-' for standard output)."""
    count = 0
    for entry in services.export_entries(client=client):
        line = {
            **entry,
            "created_at": entry["created_at"].isoformat(),
            "updated_at": entry["updated_at"].isoformat(),
        }
        file.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    click.echo(f"exported {count} entries", err=True)


@click.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--client", help="Import only this client's lines (default: every line).")
@click.option("--replace", is_flag=True, help="Overwrite keys that already exist.")
@with_appcontext
def import_command(file: IO[str], client: str | None, replace: bool) -> None:
    """Restore entries from FILE (JSON lines, as written by export): all of them or none.

    Every line is an object with client, key and value; version, created_at and updated_at
    are kept when given. A key that already exists fails the import unless --replace.
    """
    entries, line_numbers, problems = _parse(file, client)
    if not problems and not replace:
        for pair in sorted(services.existing_keys(line_numbers)):
            problems.append(
                f"line {line_numbers[pair]}: client {pair[0]!r} already has the key {pair[1]!r} "
                "(use --replace to overwrite it)"
            )
    if problems:
        _fail(problems, "nothing was imported")
    try:
        services.import_entries(entries, replace=replace)
    except IntegrityError:
        _fail(["a key was created while importing"], "nothing was imported; run it again")
    click.echo(f"imported {len(entries)} entries", err=True)


def _parse(
    file: IO[str], client: str | None
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], int], list[str]]:
    schema = ExportedEntry()
    limit = current_app.config["STORE_MAX_VALUE_BYTES"]
    entries: list[dict[str, Any]] = []
    line_numbers: dict[tuple[str, str], int] = {}
    problems: list[str] = []
    for number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            entry = schema.load(json.loads(line, parse_constant=_refuse_constant))
        except (ValueError, RecursionError) as error:
            problems.append(f"line {number}: not valid JSON ({error})")
            continue
        except ma.ValidationError as error:
            problems.append(f"line {number}: {_describe(error.messages)}")
            continue
        if client is not None and entry["client"] != client:
            continue
        size = services.value_size(entry["value"])
        if size > limit:
            problems.append(
                f"line {number}: the value is {size} bytes as JSON; the limit is {limit}"
            )
            continue
        pair = (entry["client"], entry["key"])
        if pair in line_numbers:
            problems.append(f"line {number}: repeats the key of line {line_numbers[pair]}")
            continue
        line_numbers[pair] = number
        entries.append(entry)
    return entries, line_numbers, problems


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _describe(messages: Any) -> str:
    if isinstance(messages, dict):
        return "; ".join(f"{field}: {' '.join(map(str, text))}" for field, text in messages.items())
    return str(messages)


def _fail(problems: list[str], outcome: str) -> None:
    shown = problems[:MAX_REPORTED_PROBLEMS]
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more")
    raise click.ClickException("\n".join([*shown, outcome]))

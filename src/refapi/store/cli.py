"""``flask store export FILE`` and ``flask store import FILE``: backup and restore in JSON lines."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from typing import IO, Any

import click
import marshmallow as ma
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import IntegrityError

from refapi.cli import counted, require_invalidated
from refapi.store import services
from refapi.store.models import MAX_VERSION
from refapi.store.schemas import ExportedEntry

# Enough to fix a file without drowning the terminal.
MAX_REPORTED_PROBLEMS = 20


@click.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--client", help="Export only this client's entries (default: every client).")
@with_appcontext
def export_command(file: str, client: str | None) -> None:
    """Write every entry to FILE as JSON lines ('-' for standard output).

    FILE is always written, empty when there is no entry, and only once it is complete: the
    lines go to a new file beside it, which replaces FILE when all are on disk.
    """
    if file == "-":
        with click.open_file("-", "w", encoding="utf-8") as out:
            count = _write_entries(out, client)
    else:
        try:
            count = _export_to(file, client)
        except OSError as error:
            raise click.ClickException(
                f"Cannot write {click.format_filename(file)}: {error.strerror}. Nothing was "
                "exported."
            ) from None
    click.echo(f"Exported {counted(count, 'entry', 'entries')}.", err=True)


def _write_entries(out: IO[str], client: str | None) -> int:
    count = 0
    for entry in services.export_entries(client=client):
        line = {
            **entry,
            "created_at": entry["created_at"].isoformat(),
            "updated_at": entry["updated_at"].isoformat(),
        }
        out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count


def _export_to(file: str, client: str | None) -> int:
    """Export into a new file beside ``file``, synced, then renamed over it.

    click's atomic File opened nothing until the first line (no file for no entries), and
    renamed what it had over the target even when the export failed half-way. A reader of
    ``file`` sees the previous export or this whole one, never part of one.
    """
    target = os.path.realpath(file)
    folder = os.path.dirname(target)
    descriptor, partial = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(target)}.", suffix=".partial"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            count = _write_entries(out, client)
            out.flush()
            os.fsync(out.fileno())
        # A new export is its owner's only (mkstemp's 0600: it holds every client's data); one
        # that replaces a file keeps that file's mode.
        with contextlib.suppress(FileNotFoundError):
            os.chmod(partial, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    # The rename itself on disk too; not every file system lets a folder be synced.
    with contextlib.suppress(OSError):
        folder_descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(folder_descriptor)
        finally:
            os.close(folder_descriptor)
    return count


@click.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--client", help="Import only this client's lines (default: every line).")
@click.option("--replace", is_flag=True, help="Overwrite keys that already exist.")
@with_appcontext
def import_command(file: IO[bytes], client: str | None, replace: bool) -> None:
    """Restore entries from FILE (JSON lines, as written by export): all of them or none.

    Every line is an object with client, key and value; version, created_at and updated_at
    are kept when given. A key that already exists fails the import unless --replace; a key
    replaced by a line without a version or created_at gets its next version and keeps its
    creation time.
    """
    entries, line_numbers, problems = _parse(file, client)
    if not problems and not replace:
        for pair in sorted(services.existing_keys(line_numbers)):
            problems.append(
                f"line {line_numbers[pair]}: client {pair[0]!r} already has the key {pair[1]!r} "
                "(use --replace to overwrite it)"
            )
    if not problems and replace:
        # A line without a version is the key's next one, and there is none after this.
        versionless = [(e["client"], e["key"]) for e in entries if e["version"] is None]
        for pair in sorted(services.existing_keys(versionless, at_version=MAX_VERSION)):
            problems.append(
                f"line {line_numbers[pair]}: client {pair[0]!r} has the key {pair[1]!r} at the "
                f"highest version, {MAX_VERSION} (give the line a version)"
            )
    if problems:
        _fail(problems, "Nothing was imported.")
    try:
        services.import_entries(entries, replace=replace)
    except IntegrityError:
        _fail(["A key was created while importing."], "Nothing was imported; run it again.")
    click.echo(f"Imported {counted(len(entries), 'entry', 'entries')}.", err=True)
    _warn_of_keyless_clients({entry["client"] for entry in entries})
    require_invalidated("The entries are imported")


def _warn_of_keyless_clients(clients: set[str]) -> None:
    """Say which imported clients no configured API key names: no one can read their entries.

    A backup restored where a client's key is not (yet) configured, or a client name mistyped.
    Silent when this command was given no keys at all (a flask command needs none).
    """
    known = current_app.extensions["refapi.keyring"].clients
    keyless = sorted(clients - known)
    if known and keyless:
        click.echo(
            f"Warning: no configured API key belongs to {', '.join(map(repr, keyless))}: "
            "the entries are stored, but no request can read them until such a key is configured.",
            err=True,
        )


def _parse(
    file: IO[bytes], client: str | None
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], int], list[str]]:
    schema = ExportedEntry()
    limit = current_app.config["STORE_MAX_VALUE_BYTES"]
    entries: list[dict[str, Any]] = []
    line_numbers: dict[tuple[str, str], int] = {}
    problems: list[str] = []
    for number, raw in enumerate(file, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(f"line {number}: not UTF-8 text (byte {error.start + 1})")
            continue
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

"""The ``revo-sdk`` command line.

``revo-sdk bench`` runs the whole system against a local emulator and
measures it; the other commands only read (or, for ``webhooks replay`` and
``webhooks purge``, change) the SQLite file an application writes, and never
touch the network. Every command that reads data takes ``--db`` (default:
``$REVO_DB``, else ``revo-sdk.db`` in the current directory) and ``--json``
for machine-readable output on stdout.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import pluggy

from . import _queue
from ._cli_monitor import _alerts_group, status_data, status_text
from ._db import Database
from ._exceptions import RevoError, StorageError
from ._metrics import summarize
from ._plugins import collect_providers, describe_plugins, make_plugin_manager
from ._serve import serve as serve_command

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

DB_ENV = "REVO_DB"
DEFAULT_DB = "revo-sdk.db"

#: Routes per integration in the ``revo-sdk metrics --routes`` table.
ROUTES_SHOWN = 10

#: The window ``revo-sdk status`` reports recent calls over, in seconds.
STATUS_WINDOW = 15 * 60

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", re.IGNORECASE)
_NUMERIC_CELL = re.compile(r"-|-?\d[\d.,]*%?")
_DURATION_HINT = "a duration such as 90s, 15m, 1h, 2d or 1w"


# -- parsing ------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``15m``, ``1h``, ``2d`` or ``1w``.

    A bare number is seconds.

    :raises ValueError: for anything else, negative values included.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not {_DURATION_HINT}")
    number, unit = match.groups()
    return float(number) * _UNITS[unit.lower() or "s"]


def parse_since(text: str, *, now: float) -> float | None:
    """The epoch time a ``--since`` value means.

    :param text: a duration back from ``now`` (``15m``, ``2d``), an ISO 8601
        date or date-time (naive values are local time; a ``Z`` suffix is
        UTC), or ``all`` for no lower bound (returns ``None``).
    :param now: the current epoch time.
    :raises ValueError: when ``text`` is none of those.
    """
    value = text.strip()
    if value.lower() == "all":
        return None
    with contextlib.suppress(ValueError):
        return now - parse_duration(value)
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither {_DURATION_HINT} nor an ISO date/time "
            "such as 2024-05-01 or 2024-05-01T12:00:00Z"
        ) from None
    return moment.timestamp()


def _duration_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _since_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> float | None:
    if value is None:
        return None
    try:
        return parse_since(value, now=time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


class DefaultGroup(click.Group):
    """A group that runs ``default`` when no subcommand is named.

    ``revo-sdk webhooks`` and ``revo-sdk webhooks --status dead`` both mean
    ``revo-sdk webhooks list ...``; an unknown word is still an error.
    """

    def __init__(self, *args: Any, default: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        help_names = ctx.help_option_names
        if not args or (args[0].startswith("-") and args[0] not in help_names):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


# -- shared options and helpers -----------------------------------------------


def db_option(func: F) -> F:
    """The ``--db`` option of every command that reads stored data."""
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=DB_ENV,
        default=DEFAULT_DB,
        show_default=True,
        show_envvar=True,
        help="The SQLite file the application writes.",
    )(func)


def json_option(func: F) -> F:
    """The ``--json`` flag: machine-readable output on stdout."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON instead of a table."
    )(func)


#: Row ids and limits fit SQLite's 64-bit integers.
ROW_ID = click.IntRange(1, 2**63 - 1)


@contextlib.contextmanager
def open_database(path: Path, *, write: bool = False) -> Iterator[Database]:
    """The database at ``path`` for the length of a command.

    A missing file is a user error (reading never creates one), a file that
    is not a revo-sdk database is refused unchanged, and storage failures
    become click errors instead of tracebacks. Reading commands open the file
    read-only, unless it lacks migrations this version needs.
    """
    if not path.is_file():
        raise click.ClickException(
            f"no database at {path}. Point --db (or {DB_ENV}) at the file your "
            f"application uses, or create one with sample data by running "
            f"`revo-sdk bench --db {path}`."
        )
    try:
        db = Database(path, readonly=not write)
        if not write and db.pending_migrations():
            db.close()
            db = Database(path)  # a revo-sdk file from an older version
    except (StorageError, sqlite3.Error, OSError) as exc:
        raise click.ClickException(f"cannot open {path}: {exc}") from exc
    try:
        yield db
    except (StorageError, sqlite3.Error) as exc:
        raise click.ClickException(f"reading {path} failed: {exc}") from exc
    finally:
        db.close()


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as aligned plain text; columns of numbers (or percentages, or
    ``-`` for no value) are right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    lines = []
    widths = [
        max([len(header), *(len(row[i]) for row in cells)])
        for i, header in enumerate(headers)
    ]
    numeric = [
        any(row[i] != "-" for row in cells)
        and all(_NUMERIC_CELL.fullmatch(row[i]) for row in cells)
        for i in range(len(headers))
    ]
    lines.append(
        "  ".join(
            h.rjust(w) if num else h.ljust(w)
            for h, w, num in zip(headers, widths, numeric, strict=True)
        )
    )
    for row in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if num else c.ljust(w)
                for c, w, num in zip(row, widths, numeric, strict=True)
            )
        )
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(epoch).astimezone()
    return moment.isoformat(sep=" ", timespec="seconds")


def _span(seconds: float) -> str:
    """``172800`` -> ``2d``: the largest unit that divides ``seconds``."""
    for unit in "wdhm":
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _last_line(text: str | None, width: int = 60) -> str:
    line = (text or "").strip().splitlines()[-1:] or [""]
    return line[0] if len(line[0]) <= width else line[0][: width - 3] + "..."


# -- commands -----------------------------------------------------------------


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="revo-sdk", prog_name="revo-sdk")
def main() -> None:
    """Run the revo-sdk benchmark, inspect what an application stored, or
    serve webhooks.

    status, metrics, webhooks and alerts read the SQLite file given with --db
    (or REVO_DB) and never touch the network; bench talks only to its own
    emulator on 127.0.0.1; serve listens on 127.0.0.1 unless told otherwise.
    """


@main.command()
@click.option(
    "--requests",
    "-n",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Outgoing calls to make.",
)
@click.option(
    "--threads",
    "-t",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Threads making calls.",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.05,
    show_default=True,
    help="Share of emulator answers that misbehave.",
)
@click.option(
    "--webhooks",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Webhook deliveries to send.",
)
@click.option(
    "--payloads",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of webhook payload files (default: the bundled samples).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file to write (default: a fresh file in a temporary folder).",
)
@click.option("--json", "json", is_flag=True, help="Print the report as JSON.")
@click.option("--seed", type=int, default=None, help="Seed for reproducible faults.")
@click.option("--no-progress", is_flag=True, help="Do not show progress on stderr.")
@click.option(
    "--queue-messages",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Messages per durable-queue measurement; 0 skips that phase.",
)
@click.pass_context
def bench(ctx: click.Context, /, **opts: Any) -> None:
    """Exercise the SDK against a local emulator and report what it measured.

    The emulator stands in for GitHub, Slack and Jira on 127.0.0.1 and
    injects faults (errors, rate limits, slow and dropped answers) at
    --fault-rate; nothing leaves the machine.
    """
    from ._bench.runner import run_bench

    ctx.exit(run_bench(**opts))


@main.command()
@db_option
@json_option
@click.option("--watch", is_flag=True, help="Redraw every --interval seconds.")
@click.option(
    "--interval",
    type=click.FloatRange(0.1),
    default=2.0,
    show_default=True,
    help="Seconds between two redraws with --watch.",
)
@click.option(
    "--count",
    type=click.IntRange(1),
    default=None,
    help="With --watch, stop after this many redraws.",
)
def status(
    db_path: Path, as_json: bool, watch: bool, interval: float, count: int | None
) -> None:
    """Health, breaker, limiter headroom, latency, errors, cache, queue and
    alerts of each integration, then the service-level lines."""
    shown = 0
    while True:
        with open_database(db_path) as db:
            data = status_data(db)
        if as_json:
            echo_json({"database": str(db_path), **data})
        else:
            if watch:
                click.clear()
                click.echo(f"{db_path} at {_when(time.time())} (Ctrl-C to stop)")
            text = status_text(data)
            click.echo(f"{db_path}: {text}" if not data["integrations"] else text)
        shown += 1
        if not watch or (count is not None and shown >= count):
            return
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return


@main.command()
@db_option
@click.option(
    "--since",
    default="15m",
    callback=_since_option,
    metavar="DURATION|TIME",
    show_default=True,
    help="Start of the window: a duration back from now (15m, 1h, 2d), "
    "an ISO date/time, or 'all'.",
)
@click.option("--integration", help="Only this integration.")
@click.option("--routes", is_flag=True, help="Also show each route.")
@json_option
def metrics(
    db_path: Path,
    since: float | None,
    integration: str | None,
    routes: bool,
    as_json: bool,
) -> None:
    """Call metrics per integration: volume, success, latency, retries."""
    with open_database(db_path) as db:
        summaries = summarize(db, since=since, integration=integration)

    if as_json:
        echo_json({"database": str(db_path), "since": since, "integrations": summaries})
        return
    if not summaries:
        window = "stored" if since is None else f"since {_when(since)}"
        click.echo(f"{db_path}: no call metrics {window}.")
        return
    rows = [
        [
            s["integration"],
            s["calls"],
            _percent(s["success_rate"]),
            _percent(s["error_rate"]),
            s["p50_ms"],
            s["p95_ms"],
            s["p99_ms"],
            s["retries"],
            _percent(s["cache_hit_rate"]),
            s["rate_limit_waits"],
            s["rate_limit_wait_seconds"],
            s["breaker_transitions"],
        ]
        for s in summaries
    ]
    headers = ["INTEGRATION", "CALLS", "SUCCESS", "ERRORS", "P50 MS", "P95 MS"]
    headers += ["P99 MS", "RETRIES", "CACHE HIT", "RL WAITS", "RL WAIT S"]
    headers += ["BREAKER CHANGES"]
    click.echo(render_table(headers, rows))
    if routes:
        _echo_routes(summaries)


def _echo_routes(summaries: Sequence[dict[str, Any]]) -> None:
    """The busiest routes of each integration, as a second table."""
    route_rows = []
    hidden = 0
    for s in summaries:
        hidden += max(len(s["routes"]) - ROUTES_SHOWN, 0)
        route_rows += [
            [
                s["integration"],
                r["route"],
                r["calls"],
                _percent(r["success_rate"]),
                r["p50_ms"],
                r["p95_ms"],
                r["retries"],
            ]
            for r in s["routes"][:ROUTES_SHOWN]
        ]
    headers = ["INTEGRATION", "ROUTE", "CALLS", "SUCCESS", "P50 MS", "P95 MS"]
    click.echo()
    click.echo(render_table([*headers, "RETRIES"], route_rows))
    if hidden:
        click.echo(f"({hidden} quieter routes not shown; --json lists them all)")


# -- webhooks -----------------------------------------------------------------


@main.group(cls=DefaultGroup, default="list")
def webhooks() -> None:
    """List, inspect, replay and purge stored webhook deliveries.

    Without a subcommand, lists them.
    """


@webhooks.command("list")
@click.option("--integration", help="Only this integration.")
@click.option("--status", type=click.Choice(_queue.STATUSES), help="Only this status.")
@click.option("--event", help="Only this event name.")
@click.option(
    "--kind",
    type=click.Choice(_queue.KINDS),
    help="Only incoming webhooks or outgoing outbox calls.",
)
@click.option(
    "--older-than",
    default=None,
    callback=_duration_option,
    metavar="DURATION",
    help="Only events last updated at least this long ago (30m, 12h, 7d).",
)
@click.option(
    "--limit",
    type=ROW_ID,
    default=50,
    show_default=True,
    help="Newest events to show.",
)
@db_option
@json_option
def webhooks_list(
    integration: str | None,
    status: str | None,
    event: str | None,
    kind: str | None,
    older_than: float | None,
    limit: int,
    db_path: Path,
    as_json: bool,
) -> None:
    """The newest stored deliveries and outbox calls, newest first."""
    with open_database(db_path) as db:
        events = _queue.list_events(
            db,
            integration=integration,
            status=status,
            event=event,
            kind=kind,
            older_than=older_than,
            now=time.time(),
            limit=limit,
        )
    if as_json:
        echo_json(events)
        return
    if not events:
        click.echo(f"{db_path}: no webhook events match.")
        return
    rows = [
        [
            e["id"],
            e["integration"],
            e["event"],
            e["status"],
            e.get("kind", "webhook"),
            f"{e['attempts']}/{e['max_attempts']}",
            _when(e["received_at"]),
            _last_line(e.get("last_error")) or "-",
        ]
        for e in events
    ]
    headers = ["ID", "INTEGRATION", "EVENT", "STATUS", "KIND", "ATTEMPTS"]
    click.echo(render_table([*headers, "RECEIVED", "LAST ERROR"], rows))


@webhooks.command("show")
@click.argument("event_id", metavar="ID", type=ROW_ID)
@db_option
@json_option
def webhooks_show(event_id: int, db_path: Path, as_json: bool) -> None:
    """One delivery with its headers (secrets redacted) and body."""
    with open_database(db_path) as db:
        event = _queue.get_event(db, event_id)
    if event is None:
        raise click.ClickException(f"no webhook event with id {event_id} in {db_path}")
    if as_json:
        echo_json(event)
        return

    fields = [
        ("id", event["id"]),
        ("integration", event["integration"]),
        ("event", event["event"]),
        ("delivery", event["delivery_id"]),
        ("status", event["status"]),
        ("attempts", f"{event['attempts']}/{event['max_attempts']}"),
        ("received", _when(event["received_at"])),
        ("updated", _when(event["updated_at"])),
        ("due", _when(event["available_at"])),
    ]
    for label, value in fields:
        click.echo(f"{label + ':':<13}{value}")
    if event.get("first_error") and event["first_error"] != event.get("last_error"):
        click.echo("first error:")
        click.echo(_indent(event["first_error"]))
    if event.get("last_error"):
        click.echo("last error:")
        click.echo(_indent(event["last_error"]))
    click.echo("headers:")
    for name, value in sorted(event["headers"].items()):
        click.echo(f"  {name}: {value}")
    click.echo(f"body ({event['body_size']} bytes):")
    click.echo(_indent(_pretty_body(event["body"])))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _pretty_body(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


@webhooks.command("replay")
@click.argument("event_ids", metavar="[ID]...", nargs=-1, type=ROW_ID)
@click.option("--all-dead", is_flag=True, help="Replay every dead event.")
@click.option(
    "--status",
    type=click.Choice([_queue.DEAD, _queue.DONE, _queue.PENDING]),
    default=None,
    help="Replay by filter: events in this status (dead by default).",
)
@click.option("--integration", help="Replay by filter: only this integration.")
@click.option("--event", help="Replay by filter: only this event name.")
@click.option(
    "--kind", type=click.Choice(_queue.KINDS), help="Replay by filter: only this kind."
)
@click.option(
    "--older-than",
    default=None,
    callback=_duration_option,
    metavar="DURATION",
    help="Replay by filter: only events last updated this long ago.",
)
@click.option("--limit", type=ROW_ID, default=None, help="Replay at most this many.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Spread the replay out to at most this many events a second.",
)
@db_option
@json_option
def webhooks_replay(
    event_ids: tuple[int, ...],
    all_dead: bool,
    status: str | None,
    integration: str | None,
    event: str | None,
    kind: str | None,
    older_than: float | None,
    limit: int | None,
    rate: float | None,
    db_path: Path,
    as_json: bool,
) -> None:
    """Send deliveries back to the queue as fresh attempts.

    Give the ids to replay (dead, done or pending ones); or --all-dead; or
    filters (--status, --integration, --event, --kind, --older-than), which
    replay dead events unless --status says otherwise. --limit and --rate
    bound a bulk replay. The application's webhook workers then process them.
    """
    filtered = any(
        v is not None for v in (status, integration, event, kind, older_than)
    )
    if sum((bool(event_ids), all_dead, filtered)) != 1:
        raise click.UsageError(
            "give the ids of the events to replay, --all-dead, or filters"
        )
    with open_database(db_path, write=True) as db:
        replayed = _queue.replay(
            db,
            list(event_ids) if event_ids else None,
            status=None if event_ids else (status or _queue.DEAD),
            now=time.time(),
            integration=integration,
            event=event,
            kind=kind,
            older_than=older_than,
            limit=limit,
            rate=rate,
        )

    if as_json:
        echo_json({"replayed": replayed})
        return
    click.echo(f"replayed {replayed} event(s)")
    if event_ids and replayed < len(set(event_ids)):
        click.echo(
            f"{len(set(event_ids)) - replayed} id(s) not replayed: unknown, or "
            "being processed by a worker right now",
            err=True,
        )


@webhooks.command("purge")
@click.option(
    "--status",
    type=click.Choice([_queue.DONE, _queue.DEAD]),
    default=_queue.DONE,
    show_default=True,
    help="Delete events in this status.",
)
@click.option(
    "--older-than",
    default=None,
    callback=_duration_option,
    metavar="DURATION",
    help="Only events last updated at least this long ago (7d, 12h); default: any age.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@db_option
@json_option
def webhooks_purge(
    status: str, older_than: float | None, yes: bool, db_path: Path, as_json: bool
) -> None:
    """Delete finished deliveries (and their payloads) for good."""
    age = "" if older_than is None else f" last updated over {_span(older_than)} ago"
    with open_database(db_path, write=True) as db:
        if not yes:
            click.confirm(
                f"Delete every {status} webhook event{age} from {db_path}?",
                abort=True,
                err=True,
            )
        purged = _queue.purge(db, status=status, older_than=older_than, now=time.time())
    if as_json:
        echo_json({"purged": purged, "status": status, "older_than": older_than})
        return
    click.echo(f"purged {purged} {status} event(s)")


# -- plugins ------------------------------------------------------------------


@main.command()
@json_option
def plugins(as_json: bool) -> None:
    """Installed plugins, the hooks they implement and their providers."""
    try:
        pm = make_plugin_manager()
        providers = collect_providers(pm)
    except RevoError as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:  # a third-party plugin failing to import
        raise click.ClickException(f"loading plugins failed: {exc!r}") from exc

    owners = _provider_owners(pm)
    plugin_rows = []
    for row in describe_plugins(pm):
        contributed = sorted(n for n, owner in owners.items() if owner == row["name"])
        plugin_rows.append({**row, "providers": contributed})
    provider_rows = [
        {
            "name": name,
            "plugin": owners.get(name),
            "class": f"{type(p).__module__}.{type(p).__qualname__}",
            "base_url": p.default_base_url,
        }
        for name, p in sorted(providers.items())
    ]

    if as_json:
        echo_json({"plugins": plugin_rows, "providers": provider_rows})
        return
    if not plugin_rows:
        click.echo("no plugins installed")
        return
    click.echo(
        render_table(
            ["PLUGIN", "DISTRIBUTION", "PROVIDERS", "HOOKS"],
            [
                [
                    r["name"],
                    r["distribution"],
                    ", ".join(r["providers"]) or "-",
                    ", ".join(r["hooks"]),
                ]
                for r in plugin_rows
            ],
        )
    )
    if provider_rows:
        click.echo()
        click.echo(
            render_table(
                ["PROVIDER", "PLUGIN", "CLASS", "BASE URL"],
                [
                    [r["name"], r["plugin"], r["class"], r["base_url"]]
                    for r in provider_rows
                ],
            )
        )


def _provider_owners(pm: pluggy.PluginManager) -> dict[str, str]:
    """Which plugin's provider wins each name (the same rule as collect_providers)."""
    owners: dict[str, str] = {}
    for impl in reversed(pm.hook.register_providers.get_hookimpls()):
        names: list[str] = []
        impl.function(
            register=lambda provider, names=names: names.append(provider.name)
        )
        for name in names:
            owners[name] = impl.plugin_name
    return owners


main.add_command(serve_command)
main.add_command(_alerts_group(), "alerts")

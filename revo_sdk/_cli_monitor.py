"""Monitoring commands and views: the status table, ``revo-sdk alerts``.

:func:`status_data` and :func:`status_text` build what ``revo-sdk status``
prints (the bench runner ends with :func:`print_status`); ``alerts list``
and ``alerts show`` read the alert history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from . import _queue
from ._alerts import get_alert, list_alerts
from ._db import Database
from ._health import STATUS_WINDOW, collect_status, service_levels
from ._metrics import last_breaker_states, summarize

log = logging.getLogger(__name__)

_HEADERS = (
    "INTEGRATION", "HEALTH", "BREAKER", "HEADROOM", "CALLS 15M", "P95 MS",
    "ERRORS", "CACHE HIT", "QUEUE", "DEAD", "ALERTS",
)  # fmt: skip


def status_data(db: Database, *, now: float | None = None) -> dict[str, Any]:
    """Everything ``revo-sdk status --json`` prints (except ``database``).

    Per integration: the status row of :func:`collect_status`, plus
    ``queue`` (count per status), ``calls`` (the summary of the last 15
    minutes) and ``breaker`` (the last stored change, or None).
    """
    now = time.time() if now is None else now
    rows = collect_status(db, now=now)
    queue = _queue.counts(db)
    recent = {s["integration"]: s for s in summarize(db, since=now - STATUS_WINDOW)}
    breakers = last_breaker_states(db)
    integrations: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = row["integration"]
        calls = {
            k: v
            for k, v in recent.get(name, {}).items()
            if k not in ("routes", "integration")
        }
        integrations[name] = {
            **row,
            "breaker_state": row["breaker"],
            "breaker": breakers.get(name),
            "queue": {s: queue.get(name, {}).get(s, 0) for s in _queue.STATUSES},
            "calls": calls,
        }
    return {
        "window_seconds": STATUS_WINDOW,
        "integrations": integrations,
        "service_levels": service_levels(db, now=now),
    }


def status_text(data: dict[str, Any]) -> str:
    """The status table and the service-level lines, as plain text."""
    from .cli import render_table

    integrations = data["integrations"]
    if not integrations:
        return "no webhook events or call metrics stored yet."
    rows = []
    for name, info in integrations.items():
        rows.append(
            [
                name,
                info["health"],
                info["breaker_state"] or "-",
                _pct(info["limiter_headroom"]),
                info["calls"].get("calls", 0),
                info["p95_ms"],
                _pct(info["error_rate"]),
                _pct(info["cache_hit_rate"]),
                info["queue_depth"],
                info["dead_letters"],
                ", ".join(info["firing_alerts"]) or "-",
            ]
        )
    lines = [render_table(_HEADERS, rows), ""]
    lines += [level_line(level) for level in data["service_levels"]]
    return "\n".join(lines)


def level_line(level: dict[str, Any]) -> str:
    """``PASS  integration success rate > 98 % (measured 99.50%)``."""
    word = {None: "NO DATA", True: "PASS", False: "FAIL"}[level["passed"]]
    return f"{word:<7}  {level['name']} {level['target']} (measured {level['value']})"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def print_status(db_path: str | Path, *, echo: Any = click.echo) -> str:
    """Print the status table of the database at ``db_path`` and return it.

    Meant for the end of ``revo-sdk bench``; reads only.
    """
    db = Database(db_path)
    try:
        text = status_text(status_data(db))
    finally:
        db.close()
    echo(text)
    return text


# -- revo-sdk alerts -------------------------------------------------------------


def _alerts_group() -> click.Group:
    from .cli import (
        DefaultGroup,
        _since_option,
        _when,
        db_option,
        echo_json,
        json_option,
        open_database,
        render_table,
    )

    @click.group(cls=DefaultGroup, default="list")
    def alerts() -> None:
        """Alert history: what fired, when, and whether it resolved."""

    @alerts.command("list")
    @click.option("--firing", is_flag=True, help="Only alerts still firing.")
    @click.option("--integration", help="Only this integration.")
    @click.option(
        "--since",
        default="all",
        callback=_since_option,
        metavar="DURATION|TIME",
        show_default=True,
        help="Only alerts active since then (15m, 1h, 2d, an ISO time, 'all').",
    )
    @click.option(
        "--limit", type=click.IntRange(1, 2**63 - 1), default=50, show_default=True
    )
    @db_option
    @json_option
    def alerts_list(
        firing: bool,
        integration: str | None,
        since: float | None,
        limit: int,
        db_path: Path,
        as_json: bool,
    ) -> None:
        """List alerts, newest first."""
        with open_database(db_path) as db:
            found = list_alerts(
                db,
                firing_only=firing,
                integration=integration,
                since=since,
                limit=limit,
            )
        if as_json:
            echo_json({"database": str(db_path), "alerts": found})
            return
        if not found:
            click.echo(f"{db_path}: no alerts recorded.")
            return
        rows: list[Sequence[Any]] = [
            [
                a["id"],
                a["rule"],
                a["integration"],
                a["severity"],
                a["state"],
                _when(a["fired_at"]),
                _when(a["resolved_at"]),
            ]
            for a in found
        ]
        headers = ["ID", "RULE", "INTEGRATION", "SEVERITY", "STATE", "FIRED"]
        click.echo(render_table([*headers, "RESOLVED"], rows))

    @alerts.command("show")
    @click.argument("alert_id", metavar="ID", type=click.IntRange(1, 2**63 - 1))
    @db_option
    @json_option
    def alerts_show(alert_id: int, db_path: Path, as_json: bool) -> None:
        """Show one alert in full."""
        with open_database(db_path) as db:
            alert = get_alert(db, alert_id)
        if alert is None:
            raise click.ClickException(f"no alert {alert_id} in {db_path}")
        if as_json:
            echo_json(alert)
            return
        for key in ("id", "rule", "integration", "severity", "state", "metric"):
            click.echo(f"{key + ':':<15}{alert[key]}")
        click.echo(
            f"{'value:':<15}{_num(alert['value'])} (threshold {alert['threshold']:g})"
        )
        click.echo(f"{'fired:':<15}{_when(alert['fired_at'])}")
        click.echo(f"{'resolved:':<15}{_when(alert['resolved_at'])}")
        if alert["resolved_at"] is not None:
            click.echo(f"{'resolved at:':<15}{_num(alert['resolved_value'])}")
        click.echo(f"{'message:':<15}{alert['message']}")

    return alerts


def _num(value: float | None) -> str:
    return "no data" if value is None else f"{value:.4g}"


__all__ = ["level_line", "print_status", "status_data", "status_text"]

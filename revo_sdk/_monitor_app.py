"""The status dashboard: a small WSGI app (HTML, JSON, Prometheus text).

``make_app(client)`` serves, relative to where it is mounted (``revo-sdk
serve`` mounts it under ``/_revo/``):

- ``/`` — the dashboard page: one row per integration (health, breaker,
  limiter headroom, p95, error rate, cache hit rate, queue depth, dead
  letters, firing alerts), the service-level lines, alerts, and per-minute
  charts of the last hour as inline SVG. No script, no build step; the page
  reloads itself every 15 seconds.
- ``/status.json`` — the same data as JSON.
- ``/history.json?minutes=60`` — the chart series.
- ``/metrics`` — Prometheus text exposition (needs ``prometheus-client``).

It never shows a secret: it reads only stored metrics and the breaker and
limiter state, and, as a second line of defence, every token, webhook
secret and option value the client was configured with is replaced by
``[redacted]`` in every response body. ``make_db_app(path)`` serves the
same pages from a database file alone (no live state).
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ._alerts import list_alerts
from ._db import Database
from ._health import collect_status, service_levels
from ._prometheus import CONTENT_TYPE, PrometheusUnavailable, render
from ._rollup import per_minute

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ._client import Client

log = logging.getLogger(__name__)

#: Minutes of history the charts show by default.
HISTORY_MINUTES = 60

_REDACTED = "[redacted]"
_JSON = "application/json"


class DashboardApp:
    """The WSGI callable behind :func:`make_app` and :func:`make_db_app`.

    :param database: returns the database to read.
    :param live: returns :meth:`Client.status` (or ``None`` without a client).
    :param names: returns the integrations to show even without data.
    :param secrets: returns strings that must never appear in a response.
    :param clock: epoch seconds.

    Thread safety: requests may be served on any number of threads; each
    one only reads.
    """

    def __init__(
        self,
        database: Callable[[], Database],
        *,
        live: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
        names: Callable[[], Iterable[str]] = tuple,
        secrets: Callable[[], Iterable[str]] = tuple,
        flush: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._live = live
        self._names = names
        self._secrets = secrets
        self._flush = flush
        self._clock = clock

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith("/_revo"):
            path = path[len("/_revo") :] or "/"
        routes: dict[str, Callable[[WSGIEnvironment], tuple[str, bytes]]] = {
            "/": self._page,
            "/status.json": self._status_json,
            "/history.json": self._history_json,
            "/metrics": self._metrics,
        }
        handler = routes.get(path.rstrip("/") or "/")
        if handler is None:
            return _reply(start_response, "404 Not Found", "text/plain", b"not found\n")
        if method not in ("GET", "HEAD"):
            return _reply(
                start_response,
                "405 Method Not Allowed",
                "text/plain",
                b"method not allowed\n",
                [("Allow", "GET, HEAD")],
            )
        try:
            if self._flush is not None:
                self._flush()
            content_type, body = handler(environ)
        except PrometheusUnavailable as exc:
            return _reply(
                start_response, "501 Not Implemented", "text/plain", f"{exc}\n".encode()
            )
        except Exception as exc:  # a broken read must not kill the server
            log.warning("dashboard request %s failed: %s", path, type(exc).__name__)
            return _reply(
                start_response,
                "500 Internal Server Error",
                "text/plain",
                b"the dashboard could not read the database\n",
            )
        body = self._scrub(body)
        if method == "HEAD":
            return _reply(start_response, "200 OK", content_type, b"", length=len(body))
        return _reply(start_response, "200 OK", content_type, body)

    def _scrub(self, body: bytes) -> bytes:
        for secret in self._secrets():
            if secret and len(secret) >= 4:
                body = body.replace(secret.encode(), _REDACTED.encode())
                escaped = html.escape(secret).encode()
                body = body.replace(escaped, _REDACTED.encode())
        return body

    # -- data --------------------------------------------------------------

    def data(self) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready values."""
        db = self._database()
        now = self._clock()
        live = self._live() if self._live is not None else None
        return {
            "generated_at": now,
            "integrations": collect_status(db, now=now, live=live, names=self._names()),
            "service_levels": service_levels(db, now=now),
            "alerts": list_alerts(db, limit=20),
        }

    def history(self, minutes: int = HISTORY_MINUTES) -> dict[str, Any]:
        now = self._clock()
        since = (now - minutes * 60) // 60 * 60
        return {
            "since": since,
            "step": 60,
            "series": per_minute(self._database(), since=since),
        }

    def _status_json(self, environ: WSGIEnvironment) -> tuple[str, bytes]:
        return _JSON, json.dumps(self.data(), default=str).encode()

    def _history_json(self, environ: WSGIEnvironment) -> tuple[str, bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            minutes = min(max(int(query.get("minutes", ["60"])[0]), 1), 24 * 60)
        except ValueError:
            minutes = HISTORY_MINUTES
        return _JSON, json.dumps(self.history(minutes), default=str).encode()

    def _metrics(self, environ: WSGIEnvironment) -> tuple[str, bytes]:
        live = self._live() if self._live is not None else None
        return CONTENT_TYPE, render(self._database(), live=live, now=self._clock())

    def _page(self, environ: WSGIEnvironment) -> tuple[str, bytes]:
        data = self.data()
        history = self.history()
        return "text/html; charset=utf-8", render_page(data, history).encode()


def _reply(
    start_response: StartResponse,
    status: str,
    content_type: str,
    body: bytes,
    extra: Sequence[tuple[str, str]] = (),
    *,
    length: int | None = None,
) -> list[bytes]:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body) if length is None else length)),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
        *extra,
    ]
    start_response(status, headers)
    return [body]


def _client_secrets(client: Client) -> list[str]:
    secrets: list[str] = []
    for name in client.integrations:
        config = client.integration(name).config
        if config.token:
            secrets.append(config.token)
        secrets.extend(config.webhook_secrets)
        secrets.extend(str(v) for v in config.options.values() if len(str(v)) >= 8)
        secrets.extend(str(v) for v in config.headers.values() if len(str(v)) >= 8)
    return secrets


def make_app(client: Client) -> WSGIApplication:
    """The dashboard of a live client (mounted by ``revo-sdk serve`` under
    ``/_revo/``)."""
    return DashboardApp(
        lambda: client.database,
        live=client.status,
        names=lambda: client.integrations,
        secrets=lambda: _client_secrets(client),
        flush=client.metrics.flush,
    )


def make_db_app(path: str | Path) -> WSGIApplication:
    """The dashboard of a database file alone (no live breaker or limiter)."""
    db: list[Database] = []

    def database() -> Database:
        if not db:
            db.append(Database(path))
        return db[0]

    return DashboardApp(database)


# -- the page ------------------------------------------------------------------

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child,.t{text-align:left}
.healthy,.pass{color:#17702e}.degraded{color:#a66300}
.unhealthy,.fail{color:#b0171f}.unknown,.nodata{color:#777}
.charts{display:flex;flex-wrap:wrap;gap:1.5em}
figure{margin:0}figcaption{font-weight:600}
svg{background:#fafafa;border:1px solid #ddd}
"""


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{float(value) * 100:.1f}%"
    if kind == "ms":
        return f"{float(value):.0f}"
    if kind == "s":
        return f"{float(value):.1f}"
    return html.escape(str(value))


def _sparkline(
    points: Sequence[float | None], width: int = 240, height: int = 48
) -> str:
    """An inline SVG polyline of ``points`` (None leaves a gap)."""
    values = [p for p in points if p is not None]
    top = max(values) if values else 0.0
    top = top or 1.0
    step = width / max(len(points) - 1, 1)
    segments: list[list[str]] = [[]]
    for i, value in enumerate(points):
        if value is None:
            segments.append([])
            continue
        y = height - 2 - (value / top) * (height - 4)
        segments[-1].append(f"{i * step:.1f},{y:.1f}")
    lines = "".join(
        f'<polyline fill="none" stroke="#2b6cb0" stroke-width="1.5" '
        f'points="{" ".join(seg)}"/>'
        for seg in segments
        if len(seg) > 1
    )
    dots = "".join(
        f'<circle cx="{seg[0].split(",")[0]}" cy="{seg[0].split(",")[1]}" r="1.5"/>'
        for seg in segments
        if len(seg) == 1
    )
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img"><title>max {top:.4g}</title>{lines}{dots}</svg>'
    )


def _series(
    points: Sequence[Mapping[str, Any]], since: float, key: str, minutes: int
) -> list[float | None]:
    by_ts = {float(p["ts"]): p for p in points}
    out: list[float | None] = []
    for i in range(minutes + 1):
        point = by_ts.get(since + i * 60)
        if point is None:
            out.append(0.0 if key != "mean_ms" else None)
        else:
            value = point[key]
            out.append(None if value is None else float(value))
    return out


def render_page(data: Mapping[str, Any], history: Mapping[str, Any]) -> str:
    """The dashboard HTML for :meth:`DashboardApp.data` and ``history``."""
    rows = []
    for row in data["integrations"]:
        health = html.escape(row["health"])
        reasons = html.escape("; ".join(row["health_reasons"]))
        alerts = html.escape(", ".join(row["firing_alerts"])) or "-"
        rows.append(
            f'<tr id="integration-{html.escape(row["integration"])}">'
            f"<td>{html.escape(row['integration'])}</td>"
            f'<td class="t {health}" title="{reasons}">{health}</td>'
            f'<td class="t">{_fmt(row["breaker"])}</td>'
            f"<td>{_fmt(row['limiter_headroom'], 'pct')}</td>"
            f"<td>{_fmt(row['calls'])}</td>"
            f"<td>{_fmt(row['p95_ms'], 'ms')}</td>"
            f"<td>{_fmt(row['error_rate'], 'pct')}</td>"
            f"<td>{_fmt(row['cache_hit_rate'], 'pct')}</td>"
            f"<td>{_fmt(row['queue_depth'])}</td>"
            f"<td>{_fmt(row['dead_letters'])}</td>"
            f"<td>{_fmt(row['uptime'], 'pct')}</td>"
            f'<td class="t">{alerts}</td></tr>'
        )
    table = (
        '<table><thead><tr><th>integration</th><th class="t">health</th>'
        '<th class="t">breaker</th>'
        "<th>limiter headroom</th><th>calls 15m</th><th>p95 ms</th>"
        "<th>error rate</th><th>cache hit</th><th>queue</th><th>dead</th>"
        '<th>uptime 24h</th><th class="t">firing alerts</th></tr></thead><tbody>'
        + ("".join(rows) or '<tr><td colspan="12">no integrations yet</td></tr>')
        + "</tbody></table>"
    )
    levels = "".join(
        f'<li class="{_level_class(level["passed"])}">'
        f"{_level_word(level['passed'])}: {html.escape(level['name'])} "
        f"{html.escape(level['target'])} (measured {html.escape(level['value'])})</li>"
        for level in data["service_levels"]
    )
    alert_rows = "".join(
        f"<tr><td>{_fmt(a['rule'])}</td><td>{_fmt(a['integration'])}</td>"
        f'<td class="{_state_class(a["state"])}">{_fmt(a["state"])}</td>'
        f"<td>{_fmt(a['severity'])}</td><td>{_when(a['fired_at'])}</td>"
        f"<td>{_when(a['resolved_at'])}</td><td>{_fmt(a['message'])}</td></tr>"
        for a in data["alerts"]
    )
    alerts = (
        "<table><thead><tr><th>rule</th><th>integration</th><th>state</th>"
        "<th>severity</th><th>fired</th><th>resolved</th><th>message</th></tr>"
        f"</thead><tbody>{alert_rows}</tbody></table>"
        if alert_rows
        else "<p>No alerts recorded.</p>"
    )
    minutes = HISTORY_MINUTES
    since = float(history["since"])
    charts = []
    for name, points in sorted(history["series"].items()):
        calls = _series(points, since, "calls", minutes)
        errors = _series(points, since, "errors", minutes)
        latency = _series(points, since, "mean_ms", minutes)
        label = html.escape(name)
        charts.append(
            f'<div class="chart" data-integration="{label}"><h3>{label}</h3>'
            "<figure><figcaption>calls / minute</figcaption>"
            f"{_sparkline(calls)}</figure>"
            f"<figure><figcaption>errors / minute</figcaption>{_sparkline(errors)}"
            "</figure><figure><figcaption>mean latency (ms)</figcaption>"
            f"{_sparkline(latency)}</figure></div>"
        )
    generated = _when(data["generated_at"])
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="15">'
        "<title>revo-sdk status</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>revo-sdk status</h1><p>Generated {generated}.</p>"
        f"<h2>Integrations</h2>{table}"
        f"<h2>Service levels (last 15 minutes)</h2><ul>{levels}</ul>"
        f"<h2>Alerts</h2>{alerts}"
        f"<h2>Last {minutes} minutes</h2>"
        f'<div class="charts">{"".join(charts) or "<p>No calls recorded.</p>"}</div>'
        "</body></html>"
    )


def _state_class(state: str) -> str:
    return "fail" if state == "firing" else "pass"


def _level_class(passed: bool | None) -> str:
    return "nodata" if passed is None else "pass" if passed else "fail"


def _level_word(passed: bool | None) -> str:
    return "NO DATA" if passed is None else "PASS" if passed else "FAIL"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))


__all__ = ["DashboardApp", "make_app", "make_db_app", "render_page"]

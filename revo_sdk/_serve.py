"""``revo-sdk serve``: a standalone webhook receiver with worker threads.

For programs that would rather run a sidecar than mount
:class:`~revo_sdk.contrib.wsgi.WebhookMiddleware` in their own web app::

    revo-sdk serve --port 8000 --handlers myapp.hooks:register

It serves ``POST /webhooks/<integration>`` through the middleware (same
answers, same guarantees), ``GET /healthz`` for load balancers, and any
extra WSGI applications mounted by path prefix (the monitoring app under
``/_revo/`` when :mod:`revo_sdk._monitor_app` is installed). Worker threads
run the handlers that the ``--handlers`` callables register; with no
handler registered the server only receives, leaving events pending for a
worker process elsewhere (it never marks them done unhandled).

The HTTP server is the standard library's :mod:`wsgiref` with one thread
per connection, at most ``max_connections`` at once; it binds 127.0.0.1
unless told otherwise, since webhooks normally arrive through a reverse
proxy that terminates TLS. SIGTERM and SIGINT stop it cleanly: no new
connections, workers finish their current event, the client is closed.

Known shortcoming: :mod:`wsgiref` speaks HTTP/1.0 without keep-alive and
does not decode chunked request bodies (those are answered 411). Put a
proxy in front for heavy traffic, or mount the middleware in a production
WSGI server instead.
"""

from __future__ import annotations

import importlib
import json
import logging
import signal
import socketserver
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import click

from ._config import IntegrationConfig
from ._exceptions import ConfigurationError

if TYPE_CHECKING:  # imported when used, so the CLI starts quickly
    from ._client import Client

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Where the monitoring application is mounted when it is installed.
MONITOR_PREFIX = "/_revo"

#: Fields of an integration a ``--config`` file may set.
CONFIG_FIELDS = frozenset(
    {
        "provider",
        "base_url",
        "token",
        "webhook_secrets",
        "allow_unsigned_webhooks",
        "headers",
        "options",
    }
)


def make_app(
    client: Client,
    *,
    prefix: str = "/webhooks",
    extra_apps: Mapping[str, WSGIApp] | None = None,
    mount_monitor: bool = True,
    **middleware_options: Any,
) -> WSGIApp:
    """The WSGI application ``revo-sdk serve`` runs.

    :param client: receives the webhooks.
    :param prefix: where webhooks are received.
    :param extra_apps: WSGI applications by path prefix (``"/metrics"``);
        a request under a prefix goes to its app with the prefix moved to
        ``SCRIPT_NAME``. The longest matching prefix wins.
    :param mount_monitor: mount ``revo_sdk._monitor_app.make_app(client)``
        under ``/_revo`` when that module exists.
    :param middleware_options: passed to
        :class:`~revo_sdk.contrib.wsgi.WebhookMiddleware` (``max_body``,
        ``ingest_rate``, ...).
    """
    # Imported by name: contrib/ is installed as revo_sdk.contrib but type
    # checkers read it from the source tree, where it is not under revo_sdk.
    wsgi = importlib.import_module("revo_sdk.contrib.wsgi")

    mounts = dict(extra_apps or {})
    if mount_monitor and MONITOR_PREFIX not in mounts:
        monitor = _monitor_app(client)
        if monitor is not None:
            mounts[MONITOR_PREFIX] = monitor
    dispatcher = _Dispatcher(mounts)
    app: WSGIApp = wsgi.WebhookMiddleware(
        dispatcher, client, prefix, **middleware_options
    )
    return app


def _monitor_app(client: Client) -> WSGIApp | None:
    try:
        module = importlib.import_module("revo_sdk._monitor_app")
    except ImportError:
        return None
    factory = getattr(module, "make_app", None)
    if factory is None:
        return None
    app: WSGIApp = factory(client)
    return app


class _Dispatcher:
    """Routes by path prefix; answers ``/healthz`` and 404 for the rest.

    Thread safety: immutable after construction.
    """

    def __init__(self, mounts: Mapping[str, WSGIApp]) -> None:
        normalised = {"/" + p.strip("/"): app for p, app in mounts.items()}
        self._mounts = sorted(normalised.items(), key=lambda m: -len(m[0]))

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or ""
        for prefix, app in self._mounts:
            if path == prefix or path.startswith(prefix + "/"):
                inner = dict(environ)
                inner["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                inner["PATH_INFO"] = path[len(prefix) :]
                return app(inner, start_response)
        if path == "/healthz":
            return _json(start_response, "200 OK", {"ok": True})
        return _json(start_response, "404 Not Found", {"error": "not_found"})


def _json(start_response: StartResponse, status: str, data: Any) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


#: Seconds a connection may stay silent (headers or body) before it is
#: dropped, so slow or stalled senders cannot hold every connection slot.
REQUEST_TIMEOUT = 15.0


class _Handler(WSGIRequestHandler):
    """Logs at DEBUG, never answers a sender's malformed request with 5xx,
    and drops a connection silent for :data:`REQUEST_TIMEOUT` seconds."""

    timeout = REQUEST_TIMEOUT  # applied to the socket by StreamRequestHandler

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.address_string(), format % args)

    def send_error(
        self, code: int, message: str | None = None, explain: str | None = None
    ) -> None:
        # The base class answers an unsupported HTTP version with 505 and
        # an unknown method with 501; both are the sender's doing.
        if code in (501, 505):
            code = 400
        super().send_error(code, message, explain)


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per connection, at most ``max_connections`` at once."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], max_connections: int, **kwargs: Any
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self.closing = threading.Event()
        super().__init__(address, _Handler, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Blocking here stops accept(): back-pressure instead of a thread
        # per connection without bound. The wait gives way to a shutdown, so
        # a server whose slots are all held still stops when told to.
        while not self._slots.acquire(timeout=0.2):
            if self.closing.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class WebhookServer:
    """A receiver and its workers, started and stopped together.

    :param client: the client whose webhooks are received and processed;
        closed by :meth:`stop` when ``close_client`` is true.
    :param host: the address to bind (127.0.0.1 by default: put a proxy in
        front rather than exposing this server).
    :param port: the port; 0 picks a free one (see :attr:`address`).
    :param threads: worker threads running handlers; 0 receives only.
    :param max_connections: connections served at once.
    :param extra_apps: WSGI applications by path prefix, see :func:`make_app`.
    :param app_options: passed to :func:`make_app`.

    Thread safety: :meth:`start` and :meth:`stop` may be called from any
    thread, once each.
    """

    def __init__(
        self,
        client: Client,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        threads: int = 2,
        max_connections: int = 64,
        extra_apps: Mapping[str, WSGIApp] | None = None,
        close_client: bool = True,
        **app_options: Any,
    ) -> None:
        if threads < 0 or max_connections < 1:
            raise ConfigurationError("threads must be >= 0, max_connections >= 1")
        self.client = client
        self.threads = threads
        self.close_client = close_client
        app = make_app(client, extra_apps=extra_apps, **app_options)
        self._httpd = _Server((host, port), max_connections)
        self._httpd.set_app(app)
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``."""
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Start the workers (if any) and the HTTP server thread."""
        if self.threads:
            self.client.webhooks.start(threads=self.threads)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="revo-serve-http",
            daemon=True,
        )
        self._thread.start()
        host, port = self.address
        log.info("revo-sdk serve: listening on http://%s:%d", host, port)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let workers finish their event, close the client."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._httpd.closing.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout)
        self._httpd.server_close()
        self.client.webhooks.stop(timeout)
        if self.close_client:
            self.client.close()
        log.info("revo-sdk serve: stopped")

    def wait(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set, then :meth:`stop`."""
        try:
            while not stop.wait(0.5):
                pass
        finally:
            self.stop()


def load_config(path: Path) -> tuple[list[IntegrationConfig], dict[str, Any]]:
    """Integrations and top-level settings from a JSON or TOML file.

    The file holds ``{"db": "revo.db", "integrations": {"<name>": {...}}}``
    where each integration may set :data:`CONFIG_FIELDS`. TOML needs Python
    3.11 or later. Prefer environment variables for secrets.

    :raises ConfigurationError: for a file that cannot be read or used.
    """
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            # By name: tomllib is Python 3.11+, and the floor is 3.10.
            data: Any = importlib.import_module("tomllib").loads(text)
        else:
            data = json.loads(text)
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigurationError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("integrations"), dict):
        raise ConfigurationError(f"{path}: needs an 'integrations' table")
    configs = []
    for name, fields in data["integrations"].items():
        if not isinstance(fields, dict):
            raise ConfigurationError(f"{path}: integration {name!r} is not a table")
        unknown = set(fields) - CONFIG_FIELDS
        if unknown:
            raise ConfigurationError(
                f"{path}: integration {name!r} has unknown fields {sorted(unknown)};"
                f" allowed: {sorted(CONFIG_FIELDS)}"
            )
        values = dict(fields)
        secrets = values.get("webhook_secrets", ())
        if isinstance(secrets, str):  # one secret written without a list
            secrets = (secrets,)
        if not isinstance(secrets, (list, tuple)) or not all(
            isinstance(secret, str) for secret in secrets
        ):
            raise ConfigurationError(
                f"{path}: webhook_secrets of {name!r} must be a list of strings"
            )
        values["webhook_secrets"] = tuple(secrets)
        configs.append(IntegrationConfig(name=name, **values))
    settings = {k: v for k, v in data.items() if k != "integrations"}
    return configs, settings


def load_handlers(client: Client, specs: Iterable[str]) -> None:
    """Import each ``module[:function]``; call the function with ``client``.

    A module alone is imported for its side effects (decorators that
    register on a client it builds itself are no use here: register on the
    client passed to the function).
    """
    for spec in specs:
        module_name, _, func_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import handlers {spec!r}: {exc}") from exc
        if func_name:
            func = getattr(module, func_name, None)
            if not callable(func):
                raise ConfigurationError(f"{spec!r}: no function {func_name!r}")
            func(client)


def _has_handlers(client: Client) -> bool:
    # The manager keeps its registrations in a mapping by integration.
    registered = getattr(client.webhooks, "_handlers", None)
    return bool(registered)


def build_client(config: Path | None, db: Path | None) -> Client:
    """The client ``revo-sdk serve`` uses: from a config file or the environment."""
    from ._client import Client

    if config is None:
        return Client.from_env(db_path=db)
    integrations, settings = load_config(config)
    db_path = db or settings.get("db")
    return Client(integrations, db_path=db_path)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port.")
@click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="SQLite file (default: $REVO_DB, else revo-sdk.db).",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="JSON/TOML file of integrations (default: REVO_* variables).",
)
@click.option(
    "--threads", default=2, show_default=True, type=int, help="Worker threads."
)
@click.option(
    "--handlers",
    multiple=True,
    metavar="MODULE[:FUNCTION]",
    help="Registers handlers: FUNCTION(client) is called. Repeatable.",
)
@click.option("--prefix", default="/webhooks", show_default=True)
@click.option(
    "--ingest-rate",
    type=float,
    default=None,
    help="Deliveries a second per integration before 429 (default: no limit).",
)
@click.option(
    "--health-interval",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds between health probes and alert evaluations; 0 turns them off.",
)
def serve(
    host: str,
    port: int,
    db_path: Path | None,
    config: Path | None,
    threads: int,
    handlers: tuple[str, ...],
    prefix: str,
    ingest_rate: float | None,
    health_interval: float,
) -> None:
    """Receive webhooks and run their handlers, until SIGTERM or Ctrl-C.

    Also probes each integration's health and evaluates alert rules every
    --health-interval seconds; the dashboard is under /_revo/.
    """
    try:
        client = build_client(config, db_path)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        load_handlers(client, handlers)
        if threads and not _has_handlers(client):
            click.echo(
                "no handlers registered (--handlers): receiving only; events"
                " stay pending for a worker elsewhere",
                err=True,
            )
            threads = 0
        server = WebhookServer(
            client,
            host=host,
            port=port,
            threads=threads,
            prefix=prefix,
            ingest_rate=ingest_rate,
        )
    except (ConfigurationError, OSError) as exc:
        client.close()
        raise click.ClickException(str(exc)) from exc

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    if health_interval:
        client.monitor.start(interval=health_interval)  # stopped by client.close()
    bound_host, bound_port = server.address
    click.echo(
        f"revo-sdk serve: http://{bound_host}:{bound_port}{prefix}/<integration>"
        f" ({threads} worker threads, db {client.db_path})",
        err=True,
    )
    server.wait(stop)

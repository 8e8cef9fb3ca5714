"""The :class:`Client`: the one object a program holds."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any

import pluggy
import requests

from . import _outbox
from ._config import IntegrationConfig, RetryPolicy
from ._db import Database
from ._exceptions import ConfigurationError, UnknownIntegrationError
from ._metrics import Metrics
from ._monitor import Monitor
from ._pagination import Cursor, iter_pages, paginate
from ._pipeline import Integration
from ._plugins import collect_providers, make_plugin_manager, notify
from ._provider import Provider
from ._records import AttemptRecord, BreakerChange, WebhookRecord
from ._webhooks import WebhookManager

log = logging.getLogger(__name__)

#: Where the SQLite file lives unless ``db_path`` says otherwise.
DB_ENV = "REVO_DB"
DEFAULT_DB = "revo-sdk.db"

_ENV_FIELD = re.compile(
    r"^REVO_(?P<name>[A-Z0-9_]+?)_(?P<field>TOKEN|BASE_URL|WEBHOOK_SECRET|PROVIDER|USERNAME)$"
)


class Client:
    """Calls providers through the resilience pipeline and receives their webhooks.

    ::

        with Client([IntegrationConfig(name="github", token="...")]) as client:
            repo = client.github.get("/repos/octocat/hello-world").json()

    :param integrations: configurations to register at once.
    :param db_path: the SQLite file for the webhook queue and metrics;
        defaults to ``$REVO_DB`` or ``revo-sdk.db`` in the working directory.
        It is created only when first needed.
    :param plugins: extra plugin objects (modules or instances with hook
        implementations) registered after the installed ones.
    :param load_entry_points: find installed plugins through the
        ``revo_sdk`` entry-point group (``REVO_SDK_PLUGINS`` restricts them).
    :param metrics: record metrics and flush them to the database.
    :param webhook_options: keyword arguments for the
        :class:`~revo_sdk._webhooks.WebhookManager` (``max_attempts``,
        ``retry``, ``lease``, ``max_body``).

    Thread safety: a client may be shared by any number of threads; create
    it once per process and close it on shutdown.
    """

    def __init__(
        self,
        integrations: Iterable[IntegrationConfig] = (),
        *,
        db_path: str | os.PathLike[str] | None = None,
        plugins: Iterable[object] = (),
        load_entry_points: bool = True,
        metrics: bool = True,
        webhook_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.plugin_manager: pluggy.PluginManager = make_plugin_manager(
            plugins, load_entry_points=load_entry_points
        )
        self.providers: dict[str, Provider] = collect_providers(self.plugin_manager)
        self.db_path = Path(db_path or os.environ.get(DB_ENV) or DEFAULT_DB)
        self._db: Database | None = None
        self._lock = threading.Lock()
        self._integrations: dict[str, Integration] = {}
        self._closed = False
        self.metrics = Metrics(self._database if metrics else None)
        self.webhooks = WebhookManager(
            database=self._database,
            resolve=self._resolve_webhook,
            notify=self._webhook_observed,
            **dict(webhook_options or {}),
        )
        # Outbox messages (client.<name>.enqueue) are sent by the same workers.
        self.webhooks.set_outbox_sender(_outbox.make_sender(self.request))
        #: Health probes, alert rules and status (:class:`Monitor`).
        self.monitor = Monitor(self)
        for config in integrations:
            self.register(config)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Client:
        """A client configured from ``REVO_<NAME>_<FIELD>`` variables.

        Fields: ``TOKEN``, ``BASE_URL``, ``WEBHOOK_SECRET`` (comma-separated
        for rotation), ``PROVIDER`` (defaults to the name) and ``USERNAME``
        (Jira basic authentication). ``REVO_DB`` names the database file. An
        integration is configured for each name with at least one field.
        """
        env = os.environ if environ is None else environ
        found: dict[str, dict[str, str]] = {}
        for key, value in env.items():
            match = _ENV_FIELD.match(key)
            if match and value:
                found.setdefault(match["name"].lower(), {})[match["field"]] = value
        kwargs.setdefault("db_path", env.get(DB_ENV) or None)
        client = cls(**kwargs)
        try:
            for name, fields in sorted(found.items()):
                secrets = fields.get("WEBHOOK_SECRET", "")
                client.register(
                    IntegrationConfig(
                        name=name,
                        provider=fields.get("PROVIDER", "").lower() or None,
                        base_url=fields.get("BASE_URL"),
                        token=fields.get("TOKEN"),
                        webhook_secrets=tuple(
                            s.strip() for s in secrets.split(",") if s.strip()
                        ),
                        options={"username": fields["USERNAME"]}
                        if "USERNAME" in fields
                        else {},
                    )
                )
        except BaseException:
            client.close()
            raise
        return client

    # -- integrations -------------------------------------------------------

    def register(
        self, config: IntegrationConfig, *, replace: bool = False
    ) -> IntegrationHandle:
        """Add an integration and return its handle (also ``client.<name>``).

        Raises :class:`ConfigurationError` when its provider is not installed,
        a required setting is missing, or the name is taken and ``replace``
        is false.
        """
        provider = self.providers.get(config.provider_name)
        if provider is None:
            known = ", ".join(sorted(self.providers)) or "none"
            raise ConfigurationError(
                f"no provider named {config.provider_name!r} for integration "
                f"{config.name!r} (installed: {known}); "
                "install its plugin or set provider="
            )
        if config.name in _RESERVED:
            raise ConfigurationError(
                f"{config.name!r} is a Client attribute; choose another name"
            )
        integration = Integration(
            config,
            provider,
            observe=self._attempt_observed,
            event=self.metrics.record_event,
            on_breaker_change=self._breaker_changed,
        )
        with self._lock:
            old = self._integrations.get(config.name)
            if old is not None and not replace:
                integration.close()
                raise ConfigurationError(
                    f"integration {config.name!r} is already registered; "
                    "pass replace=True"
                )
            self._integrations[config.name] = integration
        if old is not None:
            old.close()
        return IntegrationHandle(self, integration)

    def integration(self, name: str) -> IntegrationHandle:
        """The handle of integration ``name``; same as ``client.<name>``."""
        return IntegrationHandle(self, self._get(name))

    @property
    def integrations(self) -> tuple[str, ...]:
        """Names of the registered integrations."""
        return tuple(self._integrations)

    def _get(self, name: str) -> Integration:
        try:
            return self._integrations[name]
        except KeyError:
            raise UnknownIntegrationError(name, tuple(self._integrations)) from None

    def __getattr__(self, name: str) -> IntegrationHandle:
        integrations = self.__dict__.get("_integrations", {})
        if name.startswith("_") or name not in integrations:
            raise AttributeError(
                f"{type(self).__name__!r} has no attribute or integration {name!r}"
            )
        return IntegrationHandle(self, integrations[name])

    # -- calls --------------------------------------------------------------

    def request(self, name: str, method: str, path: str, **kwargs: Any) -> Any:
        """Call integration ``name`` through the pipeline.

        :param path: a path under the integration's base URL, or an absolute
            URL on the same host (anything else raises
            :class:`UnsafeURLError`).
        :param params: query parameters.
        :param json: a value to send as a JSON body.
        :param data: a form (mapping) or raw body (bytes or str).
        :param headers: extra headers for this call.
        :param timeout: seconds, or ``(connect, read)``; defaults to the
            integration's timeouts.
        :param idempotent: ``True`` lets a POST or PATCH be retried even after
            it may have reached the server; ``False`` forbids resending any
            method.
        :param idempotency_key: sent as ``Idempotency-Key`` and, like
            ``idempotent=True``, makes the call safe to resend.
        :param cache: ``False`` bypasses the response cache for this GET.
        :param fallback: a value, or a callable taking the exception, returned
            instead of raising when the breaker is open, the bulkhead is full,
            the rate limit outlasts the deadline or retries are exhausted.
        :returns: a :class:`requests.Response` with a ``from_cache``
            attribute (or the fallback's value). Responses that are not
            retried (2xx-4xx) are returned as they are: call
            ``raise_for_status()`` to turn an error status into an exception.
        """
        return self._get(name).request(method, path, **kwargs)

    # -- state --------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """The state of each integration: breaker, limiter, bulkhead, cache,
        recent metrics and webhook queue depth. Never includes a secret."""
        metrics = self.metrics.snapshot()
        queue = self.webhooks.counts() if self.db_path.exists() else {}
        return {
            name: {
                **integration.snapshot(),
                "metrics": metrics.get(name, {}),
                "queue": queue.get(name, {}),
            }
            for name, integration in list(self._integrations.items())
        }

    @property
    def database(self) -> Database:
        """The SQLite database, opened (and created) on first use."""
        return self._database()

    def _database(self) -> Database:
        db = self._db
        if db is None:
            with self._lock:
                if self._db is None:
                    self._db = Database(self.db_path)
                db = self._db
        return db

    # -- observation --------------------------------------------------------

    def _attempt_observed(self, record: AttemptRecord) -> None:
        self.metrics.record_attempt(record)
        notify(self.plugin_manager, "on_request_attempt", record=record)

    def _breaker_changed(self, integration: str, old: str, new: str) -> None:
        change = BreakerChange(integration, old, new, time.time())
        notify(self.plugin_manager, "on_breaker_change", change=change)

    def _webhook_observed(self, record: WebhookRecord) -> None:
        if record.integration not in self._integrations:
            # A sender chose this name (a 404): never let it become a label.
            record = dataclasses.replace(record, integration="?")
        self.metrics.record_event(
            record.integration, f"webhook_{record.stage}", record.reason, 1.0
        )
        notify(self.plugin_manager, "on_webhook_event", record=record)

    def _resolve_webhook(self, name: str) -> tuple[IntegrationConfig, Provider]:
        integration = self._get(name)
        return integration.config, integration.provider

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Stop workers, flush metrics and release connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.monitor.stop()
        self.webhooks.close()
        for integration in list(self._integrations.values()):
            integration.close()
        self.metrics.close()
        if self._db is not None:
            self._db.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Client integrations={list(self._integrations)} db={str(self.db_path)!r}>"
        )


class IntegrationHandle:
    """``client.<name>``: the calls of one integration.

    Each verb method takes the keyword arguments of :meth:`Client.request`.
    """

    __slots__ = ("_client", "_integration")

    def __init__(self, client: Client, integration: Integration) -> None:
        self._client = client
        self._integration = integration

    @property
    def name(self) -> str:
        return self._integration.name

    @property
    def config(self) -> IntegrationConfig:
        return self._integration.config

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._integration.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self._integration.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Any:
        return self._integration.request("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self._integration.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self._integration.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self._integration.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self._integration.request("DELETE", path, **kwargs)

    def paginate(
        self,
        path: str,
        *,
        items: str | None = None,
        params: Mapping[str, Any] | None = None,
        start: Cursor | None = None,
        max_pages: int | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Yield the items of every page of a collection, fetching lazily.

        The provider finds the next page (GitHub's ``Link`` header, Slack's
        ``next_cursor``, Jira's ``startAt``/``nextPageToken``) and the items
        (the first list in the body, or the key named by ``items``). Each page
        goes through the whole pipeline, so a rate limit mid-walk waits and
        re-requests the same page.

        :param start: a cursor from :attr:`PaginationError.cursor` to resume.
        :param max_pages: stop after this many pages.
        :raises PaginationError: when a page cannot be fetched or the server
            repeats a cursor; ``cursor`` says where to resume.
        """
        return paginate(
            self._integration,
            path,
            items=items,
            params=params,
            start=start,
            max_pages=max_pages,
            **kwargs,
        )

    def iter_pages(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        start: Cursor | None = None,
        max_pages: int | None = None,
        **kwargs: Any,
    ) -> Iterator[requests.Response]:
        """Like :meth:`paginate`, but yield each page's response."""
        return iter_pages(
            self._integration,
            path,
            params=params,
            start=start,
            max_pages=max_pages,
            **kwargs,
        )

    def enqueue(
        self,
        method: str,
        path: str,
        *,
        idempotency_key: str | None = None,
        ordering_key: str | None = None,
        **kwargs: Any,
    ) -> _outbox.Enqueued:
        """Store the call in the outbox; the webhook workers send it later.

        Returns once the call is committed to the database. Workers started
        with ``client.webhooks.start()`` (in this or another process with
        this integration registered) send it through the pipeline, retry it
        with backoff and dead-letter it like a webhook. Takes ``json``,
        ``params``, ``data``, ``headers`` and ``timeout`` (JSON data only).

        :param idempotency_key: sent as ``Idempotency-Key`` on every attempt
            (generated when omitted); enqueuing the same key twice stores
            the call once.
        :param ordering_key: calls with the same key are sent one at a
            time, in order.
        """
        client = self._client
        entry = _outbox.enqueue_call(
            client.database,
            integration=self.name,
            method=method,
            path=path,
            options=kwargs,
            max_attempts=client.webhooks.max_attempts,
            now=time.time(),
            idempotency_key=idempotency_key,
            ordering_key=ordering_key,
        )
        client.webhooks.wake()
        return entry

    def submit(self, method: str, path: str, **kwargs: Any) -> Future[Any]:
        """Run the call on the integration's bounded thread pool.

        Returns a :class:`~concurrent.futures.Future` at once; raises
        :class:`BulkheadFullError` when the pool's queue is full.
        """
        return self._integration.bulkhead.submit(
            self._integration.request, method, path, **kwargs
        )

    def health(self) -> dict[str, Any]:
        """Call the provider's health endpoint once (no retries, no cache).

        Returns ``{"ok": bool, "status": int, "latency_ms": float, "error": str}``.
        """
        provider = self._integration.provider
        started = time.perf_counter()
        try:
            response: requests.Response = self._integration.request(
                provider.health_method,
                provider.health_path,
                cache=False,
                retry=RetryPolicy(strategy="none"),
            )
        except Exception as exc:  # a health check reports, it does not raise
            return {
                "ok": False,
                "status": 0,
                "latency_ms": (time.perf_counter() - started) * 1000,
                "error": f"{type(exc).__name__}: {exc}",
            }
        outcome = provider.classify(
            response.status_code, response.headers, response.content
        )
        return {
            "ok": outcome.kind == "ok",
            "status": response.status_code,
            "latency_ms": (time.perf_counter() - started) * 1000,
            "error": "" if outcome.kind == "ok" else outcome.reason,
        }

    def invalidate(self, key: str | None = None, *, prefix: str | None = None) -> int:
        """Drop cached responses: one cache ``key``, or every URL under ``prefix``
        (a path under the base URL or a full URL). Returns how many were dropped."""
        cache = self._integration.cache
        if key is not None:
            return int(cache.invalidate(key))
        if prefix is None:
            count = len(cache)
            cache.clear()
            return count
        if "://" not in prefix:
            prefix = self._integration.base_url + "/" + prefix.lstrip("/")
        return cache.invalidate_prefix(prefix)

    def status(self) -> dict[str, Any]:
        return self._client.status()[self.name]

    def __repr__(self) -> str:
        return f"<IntegrationHandle {self.name!r}>"


_RESERVED = frozenset(n for n in dir(Client) if not n.startswith("_")) | {
    "providers",
    "plugin_manager",
    "db_path",
    "metrics",
    "webhooks",
    "monitor",
}

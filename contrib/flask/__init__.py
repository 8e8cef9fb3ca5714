"""Flask extension that receives webhooks through the WSGI middleware.

::

    from flask import Flask
    from revo_sdk import Client
    from revo_sdk.contrib.flask import RevoWebhooks

    client = Client.from_env()
    webhooks = RevoWebhooks(client=client)

    def create_app():
        app = Flask(__name__)
        webhooks.init_app(app)
        return app

The middleware wraps ``app.wsgi_app``, so webhook requests are answered
before Flask routes, sessions or ``before_request`` hooks run, and the raw
body is read exactly once. Configuration keys (all optional, each
defaulting to the constructor argument of the same name):
``REVO_WEBHOOK_PREFIX``, ``REVO_WEBHOOK_MAX_BODY`` in bytes (25 MiB),
``REVO_WEBHOOK_PASS_THROUGH``, ``REVO_WEBHOOK_INGEST_RATE`` (deliveries a
second per integration; unset means no limit) and
``REVO_WEBHOOK_INGEST_BURST``.

A view of your own at the webhook path (a Slack slash command that answers
with text, say) works with ``pass_through=True``: the delivery is verified
and stored first, then the view runs with the body intact, so
``request.form`` and ``request.get_data()`` work, and its 2xx answer is
sent::

    webhooks = RevoWebhooks(app, client=client, pass_through=True)

    @app.post("/webhooks/slack")
    def slash_command():
        return f"Running {request.form['command']}..."

``request.environ["revo_sdk.webhook"].event_id`` is the stored event.

Flask is an optional extra: ``pip install "revo-sdk[flask]"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from revo_sdk._exceptions import ConfigurationError
from revo_sdk._webhooks import DEFAULT_MAX_BODY, WebhookManager

# Relative, so type checkers reading contrib/ from the source tree (where it
# is not yet revo_sdk.contrib) resolve it too.
from ..wsgi import WebhookMiddleware

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["RevoWebhooks"]

#: The key under which the extension stores itself in ``app.extensions``.
EXTENSION_KEY = "revo_sdk"


class RevoWebhooks:
    """Mounts :class:`~revo_sdk.contrib.wsgi.WebhookMiddleware` on Flask apps.

    :param app: initialise this application at once (else call
        :meth:`init_app` later, once per application).
    :param client: the :class:`revo_sdk.Client` (anything with a
        ``webhooks`` attribute) whose manager receives the deliveries.
    :param prefix: the path under which webhooks are received, unless the
        app's ``REVO_WEBHOOK_PREFIX`` says otherwise.
    :param pass_through: let a view at the webhook path run after the
        delivery is stored (see
        :class:`~revo_sdk.contrib.wsgi.WebhookMiddleware`).
    :param ingest_rate: deliveries a second per integration before 429;
        ``None`` for no limit.
    :param ingest_burst: the rate limit's burst.

    Thread safety: :meth:`init_app` is meant for start-up; the installed
    middleware serves any number of threads.
    """

    def __init__(
        self,
        app: Flask | None = None,
        client: Any = None,
        prefix: str = "/webhooks",
        *,
        pass_through: bool = False,
        ingest_rate: float | None = None,
        ingest_burst: int = 100,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.pass_through = pass_through
        self.ingest_rate = ingest_rate
        self.ingest_burst = ingest_burst
        if app is not None:
            self.init_app(app)

    @property
    def webhooks(self) -> WebhookManager:
        """The client's webhook manager, e.g. for ``ext.webhooks.on(...)``."""
        if self.client is None:
            raise ConfigurationError("RevoWebhooks has no client yet")
        manager: WebhookManager = self.client.webhooks
        return manager

    def init_app(self, app: Flask, client: Any = None) -> None:
        """Wrap ``app.wsgi_app`` and register the extension on ``app``.

        :param client: overrides the client given to the constructor.
        :raises ConfigurationError: when there is no client, or another
            extension instance already serves ``app``.
        """
        if client is not None:
            self.client = client
        if self.client is None:
            raise ConfigurationError(
                "RevoWebhooks needs a client: RevoWebhooks(client=...) or"
                " init_app(app, client=...)"
            )
        current = app.extensions.get(EXTENSION_KEY)
        if current is self:
            return
        if current is not None:
            raise ConfigurationError(
                f"app {app.name!r} already has a RevoWebhooks extension"
            )

        prefix = app.config.get("REVO_WEBHOOK_PREFIX", self.prefix)
        max_body = int(app.config.get("REVO_WEBHOOK_MAX_BODY", DEFAULT_MAX_BODY))
        rate = app.config.get("REVO_WEBHOOK_INGEST_RATE", self.ingest_rate)
        app.wsgi_app = WebhookMiddleware(  # type: ignore[method-assign]  # Flask's documented way to add WSGI middleware
            app.wsgi_app,
            self.client,
            prefix=prefix,
            max_body=max_body,
            pass_through=_flag(
                app.config.get("REVO_WEBHOOK_PASS_THROUGH", self.pass_through)
            ),
            ingest_rate=None if rate is None else float(rate),
            ingest_burst=int(
                app.config.get("REVO_WEBHOOK_INGEST_BURST", self.ingest_burst)
            ),
        )
        app.extensions[EXTENSION_KEY] = self


def _flag(value: object) -> bool:
    """A config value as a boolean; ``"false"``, ``"0"``, ``"no"`` are false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)

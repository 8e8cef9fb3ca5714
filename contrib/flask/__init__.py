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
body is read exactly once. Configuration keys (all optional):
``REVO_WEBHOOK_PREFIX`` (default: the ``prefix`` argument) and
``REVO_WEBHOOK_MAX_BODY`` in bytes (default 25 MiB).

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

    Thread safety: :meth:`init_app` is meant for start-up; the installed
    middleware serves any number of threads.
    """

    def __init__(
        self, app: Flask | None = None, client: Any = None, prefix: str = "/webhooks"
    ) -> None:
        self.client = client
        self.prefix = prefix
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
        app.wsgi_app = WebhookMiddleware(  # type: ignore[method-assign]  # Flask's documented way to add WSGI middleware
            app.wsgi_app, self.client, prefix=prefix, max_body=max_body
        )
        app.extensions[EXTENSION_KEY] = self

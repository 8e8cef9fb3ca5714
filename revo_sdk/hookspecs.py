"""The plugin API: every hook a plugin may implement.

Plugins are found through the ``revo_sdk`` entry-point group and may
implement any of these hooks with :data:`hookimpl`::

    from revo_sdk import hookimpl, Provider

    class GitLab(Provider):
        name = "gitlab"
        ...

    @hookimpl
    def register_providers(register):
        register(GitLab())

Observation hooks receive frozen records and run on the thread that produced
the event; they should return quickly and must not raise (an exception is
logged and otherwise ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._provider import Provider
    from ._records import AlertRecord, AttemptRecord, BreakerChange, WebhookRecord

hookspec = pluggy.HookspecMarker("revo_sdk")
hookimpl = pluggy.HookimplMarker("revo_sdk")


@hookspec
def register_providers(register: Callable[[Provider], None]) -> None:
    """Contribute providers by calling ``register(provider_instance)``.

    A provider registered under a name that is already taken replaces the
    earlier one only if it comes from a plugin registered later; the
    ``revo-sdk plugins`` command shows which one won.
    """


@hookspec
def on_request_attempt(record: AttemptRecord) -> None:
    """Observe one outgoing attempt after its response was classified."""


@hookspec
def on_breaker_change(change: BreakerChange) -> None:
    """Observe a circuit breaker moving between closed, open and half-open."""


@hookspec
def on_webhook_event(record: WebhookRecord) -> None:
    """Observe a webhook being received, rejected, processed, retried or dead."""


@hookspec
def on_alert(alert: AlertRecord) -> None:
    """Observe an alert firing or resolving (each edge is notified once)."""

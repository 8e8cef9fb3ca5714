"""The exception and warning hierarchy.

Everything revo-sdk raises on purpose derives from :class:`RevoError`, so a
caller can catch "anything from this library" in one clause. Subclasses are
grouped by cause and carry their context as attributes; none of them ever
holds a token, a secret or a request body.
"""

from __future__ import annotations


class RevoWarning(UserWarning):
    """Base class of every warning revo-sdk emits."""


class RevoError(Exception):
    """Base class of every error revo-sdk raises."""


class ConfigurationError(RevoError, ValueError):
    """A configuration value is missing or invalid.

    The message names the setting and, where there is one, the environment
    variable that supplies it.
    """


class UnknownIntegrationError(RevoError, KeyError):
    """No integration is registered under the given name."""

    def __init__(self, name: str, known: tuple[str, ...] = ()) -> None:
        self.name = name
        self.known = known
        hint = f"; registered: {', '.join(known)}" if known else ""
        super().__init__(f"no integration named {name!r}{hint}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])

    def __reduce__(
        self,
    ) -> tuple[type[UnknownIntegrationError], tuple[str, tuple[str, ...]]]:
        return (type(self), (self.name, self.known))


class UnsafeURLError(RevoError, ValueError):
    """A request would have sent an integration's credentials to another host."""


class CallError(RevoError):
    """An outgoing call failed. ``integration`` names where it was going."""

    def __init__(self, message: str, *, integration: str = "") -> None:
        super().__init__(message)
        self.integration = integration

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class CircuitOpenError(CallError):
    """The integration's circuit breaker is open; the call stopped there.

    ``retry_at`` is the epoch time at which a trial call will be allowed;
    ``sent`` counts the attempts of the same call that reached the network
    before the breaker opened (``0``: nothing was sent).
    """

    def __init__(
        self,
        message: str,
        *,
        integration: str = "",
        retry_at: float = 0.0,
        sent: int = 0,
    ) -> None:
        super().__init__(message, integration=integration)
        self.retry_at = retry_at
        self.sent = sent


class RateLimitedError(CallError):
    """The call could not be made within its deadline because of a rate limit.

    ``retry_at`` is a wall-clock epoch time after which the scope is expected
    to admit calls again, and ``scope`` names the limited bucket.
    """

    def __init__(
        self,
        message: str,
        *,
        integration: str = "",
        retry_at: float | None = None,
        scope: str = "default",
    ) -> None:
        super().__init__(message, integration=integration)
        self.retry_at = retry_at
        self.scope = scope


class BulkheadFullError(CallError):
    """The integration already runs as many calls as its bulkhead allows."""


class TransportError(CallError):
    """The request could not be completed at the network level.

    ``may_have_reached_server`` is true when the request may have been
    processed (a read timeout or a connection reset after sending).
    """

    def __init__(
        self,
        message: str,
        *,
        integration: str = "",
        may_have_reached_server: bool = False,
    ) -> None:
        super().__init__(message, integration=integration)
        self.may_have_reached_server = may_have_reached_server


class CallTimeoutError(TransportError):
    """A connect or read timeout, or the call's total deadline, expired."""


class TooManyRedirectsError(CallError):
    """The provider redirected more times than the transport follows."""


class ResponseTooLargeError(CallError):
    """A response body was larger than the transport reads into memory."""


class HTTPStatusError(CallError):
    """The provider answered with a status the pipeline treats as a failure.

    ``response`` is the final :class:`requests.Response`; ``outcome`` is the
    provider's classification of it (for example ``auth``, ``client_error``).
    """

    def __init__(
        self,
        message: str,
        *,
        integration: str = "",
        status: int = 0,
        outcome: str = "",
        response: object = None,
    ) -> None:
        super().__init__(message, integration=integration)
        self.status = status
        self.outcome = outcome
        self.response = response

    def __reduce__(self) -> tuple[object, ...]:
        state = dict(self.__dict__, response=None)  # responses do not pickle
        return (_rebuild, (type(self), self.args, state))


class AuthenticationError(HTTPStatusError):
    """The provider rejected the integration's credentials."""


class RetryExhaustedError(CallError):
    """Every allowed attempt failed; ``last_error`` is the final cause."""

    def __init__(
        self,
        message: str,
        *,
        integration: str = "",
        attempts: int = 0,
        last_error: BaseException | None = None,
    ) -> None:
        super().__init__(message, integration=integration)
        self.attempts = attempts
        self.last_error = last_error


class WebhookError(RevoError):
    """Base class of errors about incoming webhooks."""


class WebhookRejected(WebhookError):
    """A delivery was refused; ``status`` is the HTTP status to answer with.

    ``reason`` is a short, stable code such as ``mismatch`` or
    ``malformed_body`` that is logged and counted.
    """

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.status = status
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.status, self.reason, str(self)))


class PermanentHandlerError(WebhookError):
    """Raised by a handler to send its event straight to the dead letters."""


class ClientClosedError(RevoError, RuntimeError):
    """The client (or one of its parts) was used after :meth:`Client.close`."""


class StorageError(RevoError):
    """The durable store could not complete an operation."""


def _rebuild(
    cls: type[Exception], args: tuple[object, ...], state: dict[str, object]
) -> Exception:
    obj = cls.__new__(cls)
    obj.args = args
    obj.__dict__.update(state)
    return obj


class PaginationError(RevoError):
    """A paginated walk stopped before its last page.

    ``cursor`` is where to resume: the query parameters (a dict) or the URL
    (a str) of the page that could not be fetched; pass it back as
    ``paginate(..., start=exc.cursor)``. ``pages`` counts the pages already
    yielded. The cause (a :class:`CallError`, or ``None`` for a cursor the
    server repeated) is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, cursor: object = None, pages: int = 0) -> None:
        super().__init__(message)
        self.cursor = cursor
        self.pages = pages

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class RetryLater(WebhookError):
    """Raised by a handler to have its event tried again in ``delay`` seconds.

    The attempt counts towards ``max_attempts`` unless ``counts=False``
    says the work was never tried (the outbox uses that when an open breaker
    or a rate limit refused the call before it was sent); use it when the
    handler knows when to come back (a rate limit, a resource not ready).
    """

    def __init__(self, delay: float, message: str = "", *, counts: bool = True) -> None:
        super().__init__(message or f"retry requested in {delay:g}s")
        self.delay = max(0.0, float(delay))
        self.counts = counts

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))

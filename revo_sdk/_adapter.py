"""The pipeline as a :mod:`requests` transport adapter.

Code that already talks through a :class:`requests.Session` can route an
integration's traffic through the resilience pipeline without changing its
calls::

    session = requests.Session()
    session.mount("https://api.github.com/", PipelineAdapter(client, "github"))
    session.get("https://api.github.com/repos/o/r")  # limited, broken, retried, cached

Only URLs on the integration's own origin may be sent through it (anything
else raises :class:`~revo_sdk.UnsafeURLError`), so mount it on that origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import BaseAdapter

from ._exceptions import CallError

if TYPE_CHECKING:
    from ._client import Client

#: Headers requests adds on its own (name -> value): the integration sets
#: these itself, so a session's untouched default never replaces them.
_SESSION_DEFAULTS = {
    name.lower(): str(value) for name, value in requests.utils.default_headers().items()
}


class PipelineAdapter(BaseAdapter):
    """A transport adapter that sends each request through ``client``'s
    pipeline for integration ``name``.

    The session's own headers are sent, except requests' untouched defaults
    (``User-Agent``, ``Accept: */*``, ...), so the integration's own
    ``Accept`` and user agent stay; a header the session sets explicitly (its
    own ``Authorization``, say) replaces the integration's. Failures the
    pipeline gives up on raise its :class:`~revo_sdk.CallError`s; with
    ``raise_requests_errors=True`` they are wrapped in
    :class:`requests.ConnectionError` for code that only catches those.

    Thread safety: as safe as the client; one adapter may serve many sessions.
    """

    def __init__(
        self, client: Client, name: str, *, raise_requests_errors: bool = False
    ) -> None:
        super().__init__()
        self._handle = client.integration(name)
        self._raise_requests_errors = raise_requests_errors

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` through the pipeline and return its response."""
        headers = {
            name: value
            for name, value in request.headers.items()
            if _SESSION_DEFAULTS.get(name.lower()) != value
        }
        raw: Any = request.body  # typed bytes | str | None; streams happen too
        if isinstance(raw, str):
            raw = raw.encode()
        elif raw is not None and not isinstance(raw, bytes):
            raw = b"".join(raw)  # a generator or another iterable of chunks
        body: bytes | None = raw
        try:
            response: requests.Response = self._handle.request(
                request.method or "GET",
                request.url or "",
                data=body,
                headers=headers,
                timeout=_timeout(timeout),
            )
        except CallError as exc:
            if self._raise_requests_errors:
                raise requests.ConnectionError(str(exc), request=request) from exc
            raise
        response.request = request
        # requests types this as its HTTPAdapter; any adapter is what it holds.
        response.connection = self  # type: ignore[assignment]
        return response

    def close(self) -> None:
        """Nothing to release: the client owns the connections."""


def _timeout(value: Any) -> float | tuple[float, float] | None:
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        connect, read = value
        if connect is None or read is None:
            return None  # requests' "no limit" for one side: keep the defaults
        return (float(connect), float(read))
    return None

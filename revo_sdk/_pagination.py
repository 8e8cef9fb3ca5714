"""Walking paginated collections: Link headers, cursors and offsets.

The walk itself knows no provider: each page goes through the whole
pipeline (so a rate limit in the middle of a walk waits and re-requests the
same page), and the provider's :meth:`~revo_sdk.Provider.next_page` says
where the next page is. The helpers here read the common conventions:
RFC 8288 ``Link`` headers and "the first list in the body".
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import requests

from ._exceptions import CallError, HTTPStatusError, PaginationError

if TYPE_CHECKING:
    from ._pipeline import Integration

log = logging.getLogger(__name__)

__all__ = ["first_list", "iter_pages", "link_next", "paginate", "parse_link"]

#: A cursor: the next page's query parameters, or its URL.
Cursor = Mapping[str, Any] | str

# One link-value: "<target>" followed by its parameters, up to the next "<".
# "<" cannot occur inside a target, so a scan that starts at one "<" ends at
# the next: linear time on hostile headers such as "<<<<...".
_LINK_VALUE = re.compile(r"<([^<>]*)>([^<]*)")
#: Longest Link header read; the rest of a longer one is ignored.
MAX_LINK_HEADER = 64 * 1024
_REL = re.compile(r'(?:^|;)\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))', re.IGNORECASE)
#: The relations that move through a collection; every other one (such as
#: ``deprecation`` or ``alternate``) is information, not a page.
PAGE_RELATIONS = frozenset({"next", "prev", "previous", "first", "last"})


def parse_link(value: str | None) -> dict[str, str]:
    """The paging relations of an RFC 8288 ``Link`` header, as ``{rel: url}``.

    Only ``next``, ``prev``/``previous``, ``first`` and ``last`` are kept;
    a link may carry several relations (``rel="next last"``). Malformed
    parts are skipped; never raises.
    """
    found: dict[str, str] = {}
    if not value:
        return found
    for match in _LINK_VALUE.finditer(value[:MAX_LINK_HEADER]):
        target = match[1].strip()
        rel = _REL.search(match[2])
        if not target or rel is None:
            continue
        for name in (rel[1] if rel[1] is not None else rel[2]).lower().split():
            if name in PAGE_RELATIONS:
                found.setdefault(name, target)
    return found


def link_next(headers: Mapping[str, str]) -> str | None:
    """The URL of ``rel="next"`` in the ``Link`` header, if there is one."""
    return parse_link(headers.get("Link") or headers.get("link")).get("next")


def first_list(body: Any) -> list[Any]:
    """``body`` itself when it is a list, else the first list among the
    values of a JSON object, else an empty list."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, list):
                return value
    return []


def iter_pages(
    integration: Integration,
    path: str,
    *,
    method: str = "GET",
    params: Mapping[str, Any] | None = None,
    start: Cursor | None = None,
    max_pages: int | None = None,
    **kwargs: Any,
) -> Iterator[requests.Response]:
    """Fetch the pages of a collection one by one, each through the pipeline.

    See :meth:`IntegrationHandle.iter_pages`; this form takes the
    :class:`~revo_sdk._pipeline.Integration` itself.
    """
    for response, _body in _walk(
        integration,
        path,
        method=method,
        params=params,
        start=start,
        max_pages=max_pages,
        kwargs=kwargs,
    ):
        yield response


def paginate(
    integration: Integration,
    path: str,
    *,
    items: str | None = None,
    method: str = "GET",
    params: Mapping[str, Any] | None = None,
    start: Cursor | None = None,
    max_pages: int | None = None,
    **kwargs: Any,
) -> Iterator[Any]:
    """Yield the items of every page; see :meth:`IntegrationHandle.paginate`."""
    provider = integration.provider
    for _response, body in _walk(
        integration,
        path,
        method=method,
        params=params,
        start=start,
        max_pages=max_pages,
        kwargs=kwargs,
    ):
        if items is None:
            yield from provider.page_items(body, path)
        elif isinstance(body, dict) and isinstance(body.get(items), list):
            yield from body[items]


def _walk(
    integration: Integration,
    path: str,
    *,
    method: str,
    params: Mapping[str, Any] | None,
    start: Cursor | None,
    max_pages: int | None,
    kwargs: dict[str, Any],
) -> Iterator[tuple[requests.Response, Any]]:
    if "fallback" in kwargs:
        raise TypeError("paginate() takes no fallback: a failed page raises")
    provider = integration.provider
    current: Cursor = start if start is not None else dict(params or {})
    seen: set[str] = set()
    pages = 0
    while max_pages is None or pages < max_pages:
        marker = _marker(current)
        if marker in seen:
            raise PaginationError(
                f"{integration.name}: the server sent a cursor it had already "
                f"sent, after {pages} page(s) of {path}; stopping",
                cursor=current,
                pages=pages,
            )
        seen.add(marker)

        if isinstance(current, str):
            target, query = current, None
        else:
            target, query = path, current
        try:
            response = integration.request(method, target, params=query, **kwargs)
        except CallError as exc:
            raise PaginationError(
                f"{integration.name}: page {pages + 1} of {path} failed "
                f"({type(exc).__name__}); resume with start=exc.cursor",
                cursor=current,
                pages=pages,
            ) from exc

        body = _decode(response)
        where = integration._relative_path(response.url or integration.base_url)
        outcome = provider.classify(
            response.status_code, response.headers, response.content, path=where
        )
        if outcome.kind != "ok":
            cause = HTTPStatusError(
                f"{integration.name}: HTTP {response.status_code} ({outcome.reason})",
                integration=integration.name,
                status=response.status_code,
                outcome=outcome.kind,
                response=response,
            )
            raise PaginationError(
                f"{integration.name}: page {pages + 1} of {path} answered "
                f"{outcome.kind} ({outcome.reason}); resume with start=exc.cursor",
                cursor=current,
                pages=pages,
            ) from cause

        pages += 1
        log.debug("%s: page %d of %s", integration.name, pages, path)
        yield response, body
        following = provider.next_page(
            response.status_code, response.headers, body, query or {}
        )
        if following is None:
            return
        current = following


def _decode(response: requests.Response) -> Any:
    content = response.content
    if response.status_code == 204 or not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None


def _marker(cursor: Cursor) -> str:
    if isinstance(cursor, str):
        return "url " + cursor
    return "params " + json.dumps(cursor, sort_keys=True, default=str)

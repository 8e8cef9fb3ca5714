"""The transport's limits against a real local server."""

from __future__ import annotations

import contextlib

import pytest
from conftest import Upstream, json_answer

from revo_sdk import ResponseTooLargeError, Timeouts, TooManyRedirectsError
from revo_sdk._transport import MAX_REDIRECTS, Transport


def transport(upstream: Upstream, **kwargs: int) -> Transport:
    return Transport(
        integration="t", base_url=upstream.url, timeouts=Timeouts(read=5), **kwargs
    )


def test_redirect_loop_raises_after_the_limit(upstream: Upstream) -> None:
    """A redirect loop raises TooManyRedirectsError instead of returning a 3xx."""
    upstream.script("GET", "/loop", (302, {"Location": "/loop"}, b""))
    with pytest.raises(TooManyRedirectsError):
        transport(upstream).send("GET", f"{upstream.url}/loop", headers={}, body=None)
    assert len(upstream.calls("GET", "/loop")) == MAX_REDIRECTS + 1


def test_body_over_the_limit_raises(upstream: Upstream) -> None:
    """A body larger than max_response_bytes is refused, declared or not."""
    upstream.script("GET", "/big", (200, {}, b"x" * 5000))
    small = transport(upstream, max_response_bytes=4096)
    with pytest.raises(ResponseTooLargeError, match="over 4096 bytes"):
        small.send("GET", f"{upstream.url}/big", headers={}, body=None)


def test_body_at_the_limit_is_read_whole(upstream: Upstream) -> None:
    """A body of exactly max_response_bytes comes back intact, and the
    connection is reused for the next call."""
    upstream.script("GET", "/fits", (200, {}, b"y" * 4096))
    upstream.script("GET", "/next", json_answer(200, {"ok": True}))
    t = transport(upstream, max_response_bytes=4096)
    assert t.send("GET", f"{upstream.url}/fits", headers={}, body=None).content == (
        b"y" * 4096
    )
    assert t.send("GET", f"{upstream.url}/next", headers={}, body=None).json() == {
        "ok": True
    }


def test_refused_connection_is_not_a_timeout() -> None:
    """A closed port raises TransportError, not a timeout, and nothing was sent."""
    import socket

    from revo_sdk import CallTimeoutError, TransportError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nobody listens there
    t = Transport(
        integration="t", base_url=f"http://127.0.0.1:{port}", timeouts=Timeouts()
    )
    with pytest.raises(TransportError) as info:
        t.send("GET", f"http://127.0.0.1:{port}/x", headers={}, body=None)
    assert not isinstance(info.value, CallTimeoutError)
    assert not info.value.may_have_reached_server


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{evil}\\@127.0.0.1:{good}/x",  # parsers disagree on this
        "http://user:pw@127.0.0.1:{good}/x",
        "http://127.0.0.1:{good}:99999/x",
        "http://[::1",
    ],
)
def test_tricky_absolute_urls_never_carry_the_token(template: str) -> None:
    """URLs that parsers read differently are refused before anything is sent."""
    from conftest import serve_upstream

    from revo_sdk import Client, IntegrationConfig, UnsafeURLError

    with serve_upstream() as good, serve_upstream() as evil:
        good_port = good.url.rsplit(":", 1)[1]
        evil_port = evil.url.rsplit(":", 1)[1]
        url = template.format(good=good_port, evil=evil_port)
        with Client() as client:
            client.register(
                IntegrationConfig(name="github", base_url=good.url, token="SECRET")
            )
            with pytest.raises(UnsafeURLError):
                client.github.get(url)
        assert evil.calls() == []
        assert good.calls() == []


def test_redirect_through_a_tricky_location_keeps_the_token_home() -> None:
    """A Location that only looks same-origin loses the credentials."""
    from conftest import serve_upstream

    with serve_upstream() as good, serve_upstream() as evil:
        good_port = good.url.rsplit(":", 1)[1]
        evil_port = evil.url.rsplit(":", 1)[1]
        tricky = f"http://127.0.0.1:{evil_port}\\@127.0.0.1:{good_port}/landing"
        good.script("GET", "/moved", (302, {"Location": tricky}, b""))
        evil.script("GET", "/landing", json_answer(200, {}))
        t = Transport(integration="t", base_url=good.url, timeouts=Timeouts(read=5))
        headers = {"Authorization": "Bearer SECRET"}
        # Refusing to follow is fine too; what matters is where the token goes.
        with contextlib.suppress(Exception):
            t.send("GET", f"{good.url}/moved", headers=headers, body=None)
        assert all("Authorization" not in c.headers for c in evil.calls())


def test_compressed_body_is_limited_after_decoding(upstream: Upstream) -> None:
    """A small gzip body that inflates past the limit is refused, not read whole."""
    import gzip

    bomb = gzip.compress(b"0" * 100_000)
    upstream.script("GET", "/bomb", (200, {"Content-Encoding": "gzip"}, bomb))
    small = transport(upstream, max_response_bytes=10_000)
    assert len(bomb) < 10_000
    with pytest.raises(ResponseTooLargeError):
        small.send("GET", f"{upstream.url}/bomb", headers={}, body=None)

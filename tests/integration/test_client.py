"""The client and its pipeline against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from conftest import Upstream, json_answer, serve_upstream, sleep_then

from revo_sdk import (
    BreakerPolicy,
    CachePolicy,
    CallTimeoutError,
    CircuitOpenError,
    Client,
    ConfigurationError,
    HTTPStatusError,
    IntegrationConfig,
    LimiterPolicy,
    Provider,
    RetryExhaustedError,
    RetryPolicy,
    Timeouts,
    UnsafeURLError,
    hookimpl,
)

FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=3)


class EchoProvider(Provider):
    """A minimal provider with the default classification."""

    name = "echo"
    default_cache = CachePolicy(route_ttls=(("/things/*", 60.0),))


class EchoPlugin:
    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(EchoProvider())


@pytest.fixture
def client(upstream: Upstream) -> Iterator[Client]:
    """A client with one ``echo`` integration pointed at the upstream server."""
    with Client(plugins=[EchoPlugin()], load_entry_points=False) as c:
        c.register(
            IntegrationConfig(
                name="echo",
                base_url=upstream.url,
                token="tok-123",
                retry=FAST_RETRY,
                breaker=BreakerPolicy(failure_threshold=3, recovery_timeout=60),
                limiter=LimiterPolicy(rate=1000, burst=1000),
                timeouts=Timeouts(connect=2, read=2),
            )
        )
        yield c


def test_get_returns_response_with_auth_header(
    client: Client, upstream: Upstream
) -> None:
    """A GET returns a requests.Response and sends the integration's token."""
    upstream.script("GET", "/hello", json_answer(200, {"hi": 1}))
    response = client.echo.get("/hello")
    assert response.status_code == 200
    assert response.json() == {"hi": 1}
    assert response.from_cache is False
    assert upstream.calls()[0].headers["Authorization"] == "Bearer tok-123"


def test_cached_route_is_served_once_from_upstream(
    client: Client, upstream: Upstream
) -> None:
    """A GET on a cached route is answered from the cache the second time."""
    upstream.script("GET", "/things/1", json_answer(200, {"id": 1}))
    first = client.echo.get("/things/1")
    second = client.echo.get("/things/1")
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.json() == {"id": 1}
    assert len(upstream.calls("GET", "/things/1")) == 1


def test_write_invalidates_cached_reads_under_its_path(
    client: Client, upstream: Upstream
) -> None:
    """A successful PATCH drops the cached GET of the same resource."""
    upstream.script(
        "GET", "/things/1", json_answer(200, {"v": 1}), json_answer(200, {"v": 2})
    )
    upstream.script("PATCH", "/things/1", json_answer(200, {}))
    client.echo.get("/things/1")
    client.echo.patch("/things/1", json={"v": 2})
    assert client.echo.get("/things/1").json() == {"v": 2}


def test_concurrent_identical_gets_share_one_upstream_call(
    client: Client, upstream: Upstream
) -> None:
    """Eight threads asking for one cached resource at once cause one request."""
    upstream.script("GET", "/things/2", sleep_then(0.3, json_answer(200, {"id": 2})))
    barrier = threading.Barrier(8)
    results: list[int] = []

    def fetch() -> None:
        barrier.wait()
        results.append(client.echo.get("/things/2").json()["id"])

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [2] * 8
    assert len(upstream.calls("GET", "/things/2")) == 1


def test_get_is_retried_after_503(client: Client, upstream: Upstream) -> None:
    """A transient 503 is retried and the later success returned."""
    upstream.script(
        "GET", "/flaky", json_answer(503, {}), json_answer(200, {"ok": True})
    )
    assert client.echo.get("/flaky").json() == {"ok": True}
    assert len(upstream.calls("GET", "/flaky")) == 2


def test_dropped_connection_on_get_is_retried(
    client: Client, upstream: Upstream
) -> None:
    """A connection closed without an answer is retried for a GET."""
    upstream.script("GET", "/drop", "drop", json_answer(200, {"ok": True}))
    assert client.echo.get("/drop").status_code == 200
    assert len(upstream.calls("GET", "/drop")) == 2


def test_post_is_not_resent_after_503(client: Client, upstream: Upstream) -> None:
    """A POST the server saw is not resent; its 503 is returned as it is."""
    upstream.script("POST", "/create", json_answer(503, {}), json_answer(201, {}))
    assert client.echo.post("/create", json={"a": 1}).status_code == 503
    assert len(upstream.calls("POST", "/create")) == 1


def test_post_marked_idempotent_is_retried(client: Client, upstream: Upstream) -> None:
    """idempotency_key= makes a POST safe to resend, and is sent as a header."""
    upstream.script("POST", "/create", json_answer(503, {}), json_answer(201, {}))
    response = client.echo.post("/create", json={"a": 1}, idempotency_key="k-1")
    assert response.status_code == 201
    assert [
        c.headers["Idempotency-Key"] for c in upstream.calls("POST", "/create")
    ] == ["k-1"] * 2


def test_post_with_read_timeout_reaches_server_once(
    client: Client, upstream: Upstream
) -> None:
    """A POST that times out after sending is never sent a second time."""
    upstream.script("POST", "/slow", sleep_then(1.0, json_answer(200, {})))
    with pytest.raises(CallTimeoutError) as info:
        client.echo.post("/slow", json={}, timeout=(2, 0.2))
    assert info.value.may_have_reached_server
    assert len(upstream.calls("POST", "/slow")) == 1


def test_post_is_retried_after_429(client: Client, upstream: Upstream) -> None:
    """A 429 means the server refused the request, so even a POST is resent."""
    upstream.script(
        "POST", "/limited", json_answer(429, {}, Retry_After="0"), json_answer(201, {})
    )
    assert client.echo.post("/limited", json={}).status_code == 201
    assert len(upstream.calls("POST", "/limited")) == 2


def test_retries_exhausted_raise_with_last_response(
    client: Client, upstream: Upstream
) -> None:
    """When every attempt fails the error carries the last response."""
    upstream.script("GET", "/down", json_answer(502, {}))
    with pytest.raises(RetryExhaustedError) as info:
        client.echo.get("/down")
    assert info.value.attempts == 3
    assert isinstance(info.value.last_error, HTTPStatusError)
    assert info.value.last_error.status == 502
    assert len(upstream.calls("GET", "/down")) == 3


def test_fallback_callable_receives_the_error(
    client: Client, upstream: Upstream
) -> None:
    """A callable fallback gets the exception and its result is returned."""
    upstream.script("GET", "/down", json_answer(500, {}))
    seen: list[BaseException] = []
    assert client.echo.get("/down", fallback=lambda exc: seen.append(exc) or 7) == 7
    assert [type(e) for e in seen] == [RetryExhaustedError]


def test_fallback_value_replaces_open_breaker_error(
    client: Client, upstream: Upstream
) -> None:
    """A fallback value is returned while the breaker is open."""
    upstream.script("GET", "/down", json_answer(500, {}))
    with pytest.raises(RetryExhaustedError):
        client.echo.get("/down")
    assert client.echo.get("/down", fallback="stale copy") == "stale copy"


def test_breaker_opens_and_stops_network_calls(
    client: Client, upstream: Upstream
) -> None:
    """After the failure threshold the breaker answers without the network."""
    upstream.script("GET", "/down", json_answer(500, {}))
    with pytest.raises(RetryExhaustedError):
        client.echo.get("/down")  # three failed attempts open the breaker
    sent = len(upstream.calls())
    with pytest.raises(CircuitOpenError):
        client.echo.get("/down")
    assert len(upstream.calls()) == sent
    assert client.status()["echo"]["breaker"]["state"] == "open"


def test_client_errors_do_not_open_the_breaker(
    client: Client, upstream: Upstream
) -> None:
    """404s are answers, not outages: they are returned and never trip the breaker."""
    upstream.script("GET", "/missing", json_answer(404, {}))
    for _ in range(5):
        assert client.echo.get("/missing").status_code == 404
    assert client.status()["echo"]["breaker"]["state"] == "closed"


def test_absolute_url_to_other_host_is_refused(
    client: Client, upstream: Upstream
) -> None:
    """A full URL on another host raises before anything is sent."""
    with pytest.raises(UnsafeURLError) as info:
        client.echo.get("https://evil.example/steal?token=x")
    assert "tok-123" not in str(info.value)
    assert "token=x" not in str(info.value)
    assert upstream.calls() == []


def test_absolute_url_on_same_host_is_allowed(
    client: Client, upstream: Upstream
) -> None:
    """A full URL on the integration's own origin works (pagination links)."""
    upstream.script("GET", "/page2", json_answer(200, [2]))
    assert client.echo.get(f"{upstream.url}/page2").json() == [2]


def test_redirect_to_other_host_drops_credentials(
    client: Client, upstream: Upstream
) -> None:
    """Following a redirect that leaves the host never carries the token along."""
    # A second server on another port is another origin.
    with serve_upstream() as other:
        other.script("GET", "/landing", json_answer(200, {"landed": True}))
        upstream.script(
            "GET", "/moved", (302, {"Location": f"{other.url}/landing"}, b"")
        )
        assert client.echo.get("/moved").json() == {"landed": True}
        assert "Authorization" not in other.calls()[0].headers


def test_redirect_on_same_host_keeps_credentials(
    client: Client, upstream: Upstream
) -> None:
    """A redirect within the same origin keeps the token."""
    upstream.script("GET", "/old", (301, {"Location": "/new"}, b""))
    upstream.script("GET", "/new", json_answer(200, {}))
    assert client.echo.get("/old").status_code == 200
    assert upstream.calls("GET", "/new")[0].headers["Authorization"] == "Bearer tok-123"


def test_submit_runs_on_bounded_pool(client: Client, upstream: Upstream) -> None:
    """submit() returns a Future resolving to the response."""
    upstream.script("GET", "/hello", json_answer(200, {"hi": 2}))
    future = client.echo.submit("GET", "/hello")
    assert isinstance(future, Future)
    assert future.result(10).json() == {"hi": 2}


def test_unknown_provider_is_a_configuration_error() -> None:
    """Registering an integration whose provider is not installed fails clearly."""
    with (
        Client(load_entry_points=False) as c,
        pytest.raises(ConfigurationError, match="nope"),
    ):
        c.register(IntegrationConfig(name="nope"))


def test_unknown_integration_attribute_is_attribute_error(client: Client) -> None:
    """client.<unknown> raises AttributeError naming the integration."""
    with pytest.raises(AttributeError, match="gitlab"):
        client.gitlab  # noqa: B018


def test_secrets_stay_out_of_repr(client: Client) -> None:
    """Neither the config's repr nor the status shows the token."""
    assert "tok-123" not in repr(client.echo.config)
    assert "tok-123" not in repr(client.status())


def test_from_env_reads_integrations(upstream: Upstream) -> None:
    """REVO_<NAME>_<FIELD> variables configure integrations."""
    env = {
        "REVO_ECHO_TOKEN": "t",
        "REVO_ECHO_BASE_URL": upstream.url,
        "REVO_ECHO_WEBHOOK_SECRET": "a, b",
        "REVO_OTHER_NAME_PROVIDER": "echo",
        "REVO_OTHER_NAME_BASE_URL": upstream.url,
    }
    with Client.from_env(env, plugins=[EchoPlugin()], load_entry_points=False) as c:
        assert set(c.integrations) == {"echo", "other_name"}
        assert c.echo.config.webhook_secrets == ("a", "b")
        assert c.other_name.config.provider_name == "echo"


def test_breaker_opening_mid_call_says_attempts_were_sent(
    client: Client, upstream: Upstream
) -> None:
    """When the breaker opens during a retry loop the error admits earlier attempts."""
    import time

    upstream.script("GET", "/down", json_answer(503, {}))
    client.register(
        IntegrationConfig(
            name="tight",
            provider="echo",
            base_url=upstream.url,
            retry=FAST_RETRY,
            breaker=BreakerPolicy(failure_threshold=2, recovery_timeout=30),
        )
    )
    with pytest.raises(CircuitOpenError) as info:
        client.tight.get("/down")
    assert "after 2 attempt(s)" in str(info.value)
    assert len(upstream.calls("GET", "/down")) == 2
    assert time.time() + 20 < info.value.retry_at <= time.time() + 31


def test_unknown_webhook_integration_never_becomes_a_metric_label(
    client: Client,
) -> None:
    """A sender-chosen integration name is recorded as '?', not as itself."""
    from revo_sdk import WebhookRejected

    with pytest.raises(WebhookRejected) as info:
        client.webhooks.receive("made_up_name", {}, b"{}", "application/json")
    assert info.value.status == 404
    client.metrics.flush()
    labels = {
        row["integration"]
        for row in client.database.query("SELECT integration FROM metric_events")
    }
    assert "made_up_name" not in labels
    assert "?" in labels


def test_cache_keys_differ_by_accept_and_api_version(
    client: Client, upstream: Upstream
) -> None:
    """Responses asked for with another Accept or API version are not shared."""
    upstream.script("GET", "/things/9", json_answer(200, {"id": 9}))
    client.echo.get("/things/9")
    client.echo.get("/things/9", headers={"Accept": "application/vnd.raw"})
    client.echo.get("/things/9", headers={"X-GitHub-Api-Version": "2026-03-10"})
    assert len(upstream.calls("GET", "/things/9")) == 3
    repeat = client.echo.get("/things/9", headers={"Accept": "application/vnd.raw"})
    assert repeat.from_cache is True
    assert len(upstream.calls("GET", "/things/9")) == 3


def test_cache_keys_differ_by_credential(client: Client, upstream: Upstream) -> None:
    """A response fetched with one token is never served to another token."""
    upstream.script("GET", "/things/8", json_answer(200, {"id": 8}))
    client.echo.get("/things/8")
    other = client.echo.get("/things/8", headers={"Authorization": "Bearer other"})
    assert other.from_cache is False
    assert len(upstream.calls("GET", "/things/8")) == 2


def test_plugin_passed_to_client_overrides_installed_provider() -> None:
    """A provider given through Client(plugins=...) replaces an installed one."""

    class MyGitHub(Provider):
        name = "github"
        default_base_url = "https://github.example.internal/api/v3"

    class Override:
        @hookimpl
        def register_providers(self, register: Any) -> None:
            register(MyGitHub())

    with Client(plugins=[Override()]) as c:
        assert type(c.providers["github"]) is MyGitHub
        assert "slack" in c.providers


def test_calls_after_close_raise_client_closed(upstream: Upstream) -> None:
    """A closed client refuses calls at once instead of retrying a dead pool."""
    from revo_sdk import ClientClosedError

    c = Client(plugins=[EchoPlugin()], load_entry_points=False)
    c.register(IntegrationConfig(name="echo", base_url=upstream.url))
    c.close()
    with pytest.raises(ClientClosedError):
        c.echo.get("/hello")
    assert upstream.calls() == []


def test_read_started_before_a_write_is_not_cached_after_it(
    client: Client, upstream: Upstream
) -> None:
    """A GET in flight while a PATCH completes does not store its older answer."""
    arrived, release = threading.Event(), threading.Event()

    def old_version(_: object) -> Any:
        arrived.set()
        release.wait(10)
        return json_answer(200, {"v": 0})

    upstream.script("GET", "/things/7", old_version, json_answer(200, {"v": 1}))
    upstream.script("PATCH", "/things/7", json_answer(200, {"v": 1}))
    reader = threading.Thread(target=client.echo.get, args=("/things/7",))
    reader.start()
    assert arrived.wait(10)
    assert client.echo.patch("/things/7", json={"v": 1}).status_code == 200
    release.set()
    reader.join(10)
    assert client.echo.get("/things/7").json() == {"v": 1}


def test_call_header_replaces_integration_header_in_any_case(
    client: Client, upstream: Upstream
) -> None:
    """headers={"authorization": ...} replaces the token, never adds a second one."""
    upstream.script("GET", "/hello", json_answer(200, {}))
    client.echo.get("/hello", headers={"authorization": "Bearer other"}, cache=False)
    sent = upstream.calls("GET", "/hello")[0].headers
    assert [v for k, v in sent.items() if k.lower() == "authorization"] == [
        "Bearer other"
    ]

"""The pipeline mounted on a requests.Session, against a local server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from conftest import Upstream, json_answer

from revo_sdk import (
    Client,
    IntegrationConfig,
    PipelineAdapter,
    RetryPolicy,
    UnsafeURLError,
)


@pytest.fixture
def session(upstream: Upstream) -> Iterator[requests.Session]:
    """A session whose requests to the upstream go through the pipeline."""
    with Client() as client:
        client.register(
            IntegrationConfig(
                name="github",
                base_url=upstream.url,
                token="tok",  # the github provider sets its own Accept
                retry=RetryPolicy(base_delay=0.01, max_delay=0.02),
            )
        )
        s = requests.Session()
        s.mount(f"{upstream.url}/", PipelineAdapter(client, "github"))
        yield s
        s.close()


def test_session_get_is_retried_by_the_pipeline(
    session: requests.Session, upstream: Upstream
) -> None:
    """A 503 is retried by the pipeline behind an ordinary session.get."""
    upstream.script("GET", "/x", json_answer(503, {}), json_answer(200, {"ok": 1}))
    response = session.get(f"{upstream.url}/x", params={"a": "b"}, timeout=5)
    assert response.json() == {"ok": 1}
    assert response.request.method == "GET"
    calls = upstream.calls("GET")
    assert [c.path for c in calls] == ["/x?a=b", "/x?a=b"]
    assert calls[0].headers["Authorization"] == "Bearer tok"
    assert calls[0].headers["Accept"] == "application/vnd.github+json"


def test_session_post_sends_its_body_and_is_not_resent(
    session: requests.Session, upstream: Upstream
) -> None:
    """A POST body arrives intact and a 503 answer is not resent."""
    upstream.script("POST", "/y", json_answer(503, {}), json_answer(201, {}))
    response = session.post(f"{upstream.url}/y", json={"k": "v"})
    assert response.status_code == 503
    [seen] = upstream.calls("POST", "/y")
    assert seen.body == b'{"k": "v"}'
    assert seen.headers["Content-Type"] == "application/json"


def test_session_header_replaces_the_integration_token(
    session: requests.Session, upstream: Upstream
) -> None:
    """The session's own Authorization wins over the integration's."""
    upstream.script("GET", "/z", json_answer(200, {}))
    session.get(f"{upstream.url}/z", headers={"authorization": "Bearer mine"})
    sent = upstream.calls("GET", "/z")[0].headers
    assert [v for k, v in sent.items() if k.lower() == "authorization"] == [
        "Bearer mine"
    ]


def test_adapter_refuses_another_origin(upstream: Upstream) -> None:
    """Mounted on the wrong prefix, the adapter still never leaves its origin."""
    with Client() as client:
        client.register(IntegrationConfig(name="github", base_url=upstream.url))
        s = requests.Session()
        s.mount("http://", PipelineAdapter(client, "github"))
        with pytest.raises(UnsafeURLError):
            s.get("http://other.invalid/x")

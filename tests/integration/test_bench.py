"""``revo-sdk bench`` end to end, and the pieces it checks webhooks with."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from revo_sdk import Client
from revo_sdk._bench import runner
from revo_sdk._bench.runner import (
    SHIPPED_PAYLOADS,
    Delivery,
    Sample,
    Signer,
    StoredRow,
    classify_path,
    load_samples,
    plan_deliveries,
    run_bench,
)
from revo_sdk.cli import main

SECRETS = {"github": "gh-secret", "slack": "sl-secret", "jira": "ji-secret"}


def _run_json(
    capsys: pytest.CaptureFixture[str], **options: Any
) -> tuple[int, dict[str, Any]]:
    code = run_bench(json=True, no_progress=True, **options)
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_run_bench_stores_and_processes_every_accepted_webhook(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A small run under faults stores and processes every accepted delivery."""
    db = tmp_path / "bench.db"

    code, report = _run_json(
        capsys,
        requests=200,
        threads=4,
        fault_rate=0.05,
        webhooks=40,
        db=db,
        seed=11,
        queue_messages=100,
    )

    hooks = report["webhooks"]
    assert code == 0
    assert report["ok"] is True
    assert report["problems"] == []
    assert hooks["accepted"] == hooks["stored"] == hooks["processed"] == 40
    assert hooks["missing"] == hooks["unprocessed"] == hooks["dead"] == 0
    assert hooks["duplicated"] == hooks["redeliveries_of_accepted"] > 0
    assert hooks["bad_signature_rejected"] == hooks["bad_signature_sent"] > 0
    assert hooks["bad_signature_stored"] == 0
    assert hooks["handler_calls"] == 40
    calls = report["calls"]
    assert calls["completed"] == 200
    assert 0.0 <= calls["success_rate"] <= 1.0
    assert calls["succeeded"] + calls["failed"] == 200
    assert report["overhead"]["ratio"] > 0
    assert report["overhead"]["raw_success_rate"] == 1.0
    with sqlite3.connect(db) as conn:
        statuses = dict(
            conn.execute("SELECT status, COUNT(*) FROM webhook_events GROUP BY status")
        )
    assert statuses == {"done": 40}
    queue = report["queue"]
    assert queue["enqueue_1"] > 0
    assert queue["enqueue_8"] > 0
    assert set(queue["claim_ack"]) == {"1000", "10000"}


@pytest.mark.slow
def test_run_bench_replays_shared_github_fixtures(
    capsys: pytest.CaptureFixture[str], shared_fixtures: Path
) -> None:
    """Every GitHub fixture file is accepted, stored and processed under its event."""
    folder = shared_fixtures / "github"
    events = {path.parent.name for path in folder.rglob("*.json")}

    code, report = _run_json(
        capsys,
        requests=50,
        threads=2,
        fault_rate=0.0,
        webhooks=1,
        payloads=folder,
        seed=5,
        queue_messages=0,
    )

    hooks = report["webhooks"]
    files = len(list(folder.rglob("*.json")))
    assert code == 0
    assert hooks["distinct_deliveries"] == files
    assert hooks["accepted"] == hooks["stored"] == hooks["processed"] == files
    assert {key.split("/", 1)[1] for key in hooks["by_event"]} == events


@pytest.mark.slow
def test_bench_command_prints_a_table(tmp_path: Path) -> None:
    """``revo-sdk bench`` prints the human-readable report and exits 0."""
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "-n",
            "40",
            "-t",
            "2",
            "--webhooks",
            "6",
            "--no-progress",
            "--seed",
            "1",
            "--queue-messages",
            "50",
        ],
    )

    assert result.exit_code == 0, result.output
    for label in (
        "throughput",
        "p50 / p95 / p99",
        "ratio pipeline / raw",
        "accepted / stored",
        "claim + ack, backlog 10,000",
        "Status of the run's integrations",
    ):
        assert label in result.output
    assert "OK: every accepted webhook was stored and processed." in result.output


def test_classify_path_uses_event_folders(tmp_path: Path) -> None:
    """``github/<event>/<file>.json`` is named after its folder."""
    path = tmp_path / "fixtures" / "github" / "pull_request" / "opened.payload.json"

    assert classify_path(path, tmp_path / "fixtures" / "github") == (
        "github",
        "pull_request",
    )


def test_classify_path_names_events_after_an_event_folder_root(tmp_path: Path) -> None:
    """Replaying ``github/push`` itself names its files' event ``push``."""
    root = tmp_path / "github" / "push"

    assert classify_path(root / "payload.json", root) == ("github", "push")


def test_classify_path_uses_file_names_in_flat_folders(tmp_path: Path) -> None:
    """Flat folders name events by file: ``<provider>.<event>...`` or ``<event>``."""
    assert classify_path(tmp_path / "slack.app_mention.json", tmp_path) == (
        "slack",
        "app_mention",
    )
    assert classify_path(
        tmp_path / "jira" / "comment_created.json", tmp_path / "jira"
    ) == (
        "jira",
        "comment_created",
    )
    assert classify_path(tmp_path / "push.json", tmp_path) == ("github", "push")


def test_shipped_samples_cover_every_provider() -> None:
    """The package ships GitHub, Slack and Jira samples, all valid JSON."""
    samples = load_samples(None)

    assert {s.provider for s in samples} == {"github", "slack", "jira"}
    assert {"push", "issues", "pull_request", "ping"} <= {
        s.event for s in samples if s.provider == "github"
    }
    for sample in samples:
        assert isinstance(json.loads(sample.body), dict), sample.name
    assert all(p.parent == SHIPPED_PAYLOADS for p in SHIPPED_PAYLOADS.glob("*.json"))


def test_signer_signatures_verify_with_the_providers(tmp_path: Path) -> None:
    """Deliveries the bench signs pass each provider's check; a wrong secret fails."""
    signer = Signer(SECRETS, random.Random(1))
    with Client(db_path=tmp_path / "x.db") as client:
        for sample in load_samples(None):
            provider = client.providers[sample.provider]
            good = signer.make(sample)
            bad = signer.make(sample, secret="not-the-secret")
            secrets = (SECRETS[sample.provider],)
            now = time.time()

            assert provider.verify_webhook(good.headers, good.body, secrets, now=now)
            assert not provider.verify_webhook(bad.headers, bad.body, secrets, now=now)


def test_plan_deliveries_sends_each_sample_and_unique_slack_events() -> None:
    """Every sample is sent at least once and Slack events get distinct ids."""
    samples = load_samples(None)
    originals, redeliveries, bad = plan_deliveries(
        samples, 3, Signer(SECRETS, random.Random(2))
    )

    assert {d.source for d in originals} == {s.name for s in samples}
    slack_ids = [d.delivery_id for d in originals if d.integration == "slack"]
    assert len(set(slack_ids)) == len(slack_ids)
    assert all(d.duplicate_of is not None for d in redeliveries)
    assert bad
    assert all(d.bad_signature for d in bad)


def test_webhook_report_flags_missing_and_unprocessed_deliveries() -> None:
    """An accepted delivery without a row, or with a pending row, is a problem."""
    sample = Sample("github", "push", "push.json", b"{}")
    signer = Signer(SECRETS, random.Random(3))
    lost, pending = signer.make(sample), signer.make(sample)
    lost.status = pending.status = 202

    report = runner._webhook_report(
        [lost, pending],
        [],
        [],
        [lost, pending],
        [None, StoredRow(7, "pending", 0, "push")],
    )

    assert report["missing"] == 1
    assert report["unprocessed"] == 1
    assert len(report["problems"]) == 3


def test_webhook_report_flags_an_accepted_bad_signature() -> None:
    """A badly signed delivery answered 2xx is reported as a problem."""
    accepted_bad = Delivery(
        "github", "push", "x", {}, b"{}", "id-1", bad_signature=True
    )
    accepted_bad.status = 202

    report = runner._webhook_report([], [], [accepted_bad], [], [])

    assert report["problems"] == ["1 badly signed webhook(s) accepted"]

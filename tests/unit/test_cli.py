"""Tests for the ``revo-sdk`` command line, against real SQLite files."""

from __future__ import annotations

import datetime
import json
import shutil
import sys
import time
import types
from pathlib import Path
from typing import Any

import pluggy
import pytest
from click.testing import CliRunner, Result

from revo_sdk import AttemptRecord, Provider, _queue, hookimpl
from revo_sdk._db import Database
from revo_sdk._metrics import Metrics
from revo_sdk._plugins import make_plugin_manager
from revo_sdk.cli import main, parse_duration, parse_since, render_table

NOW = time.time()


def run(*args: str, input: str | None = None) -> Result:
    """Invoke the CLI in-process and return its result."""
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with call metrics for github and slack and five webhooks,
    built once per module.

    Webhook 1 is dead, 2 is done, 3-5 are pending; github's breaker opened.
    """
    path = tmp_path_factory.mktemp("template") / "app.db"
    db = Database(path)
    metrics = Metrics(lambda: db, clock=lambda: NOW - 60)
    for ms in range(1, 11):
        metrics.record_attempt(
            AttemptRecord(
                "github",
                "GET",
                "/repos/{o}/{r}",
                200,
                "ok",
                "ok",
                ms / 1000,
                1,
                NOW - 60,
            )
        )
    metrics.record_attempt(
        AttemptRecord(
            "slack",
            "POST",
            "/chat.postMessage",
            503,
            "retry",
            "http_503",
            0.2,
            1,
            NOW - 60,
        )
    )
    metrics.record_attempt(
        AttemptRecord("github", "GET", "/old", 200, "ok", "ok", 0.5, 1, NOW - 86400)
    )
    metrics.record_event("github", "breaker_change", "closed->open", 1.0)
    metrics.close()

    for n in range(5):
        _queue.enqueue(
            db,
            integration="github",
            event="push" if n else "ping",
            delivery_id=f"d{n}",
            dedup_key=f"k{n}",
            headers={"X-Hub-Signature-256": "sha256=00ff", "X-GitHub-Event": "push"},
            body=b'{"ref": "refs/heads/main"}',
            max_attempts=3,
            now=NOW - 3600,
        )
    first, second = _queue.claim(db, limit=2, lease=30, now=NOW - 3600)
    _queue.fail(
        db, first.id, error="Traceback\nValueError: boom", retry_in=None, now=NOW - 3600
    )
    _queue.ack(db, second.id, now=NOW - 3600)
    db.close()
    return path


@pytest.fixture
def db_path(populated: Path, tmp_path: Path) -> Path:
    """A private copy of the populated database."""
    path = tmp_path / "app.db"
    shutil.copyfile(populated, path)
    return path


def statuses(path: Path) -> dict[int, str]:
    """Webhook id -> status, read straight from the file."""
    db = Database(path)
    try:
        return {
            r["id"]: r["status"]
            for r in db.query("SELECT id, status FROM webhook_events")
        }
    finally:
        db.close()


# -- the database option ------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["metrics"],
        ["webhooks"],
        ["webhooks", "list"],
        ["webhooks", "show", "1"],
        ["webhooks", "replay", "--all-dead"],
        ["webhooks", "purge", "--yes"],
    ],
)
def test_cli_missing_database_is_a_clear_error(tmp_path: Path, args: list[str]) -> None:
    """A read command on a missing file names it, suggests bench and creates nothing."""
    missing = tmp_path / "nowhere.db"

    result = run(*args, "--db", str(missing))

    assert result.exit_code == 1
    assert f"no database at {missing}" in result.output
    assert f"revo-sdk bench --db {missing}" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_db_defaults_to_revo_db_env(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --db the REVO_DB environment variable picks the file."""
    monkeypatch.setenv("REVO_DB", str(db_path))

    result = run("status", "--json")

    assert result.exit_code == 0
    assert json.loads(result.output)["database"] == str(db_path)


def test_cli_db_defaults_to_file_in_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --db or REVO_DB the file is revo-sdk.db in the current directory."""
    monkeypatch.delenv("REVO_DB")
    monkeypatch.chdir(tmp_path)

    result = run("status")

    assert result.exit_code == 1
    assert "no database at revo-sdk.db" in result.output


def test_cli_non_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    """A file that is not a database gives a message, not a traceback."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)

    result = run("metrics", "--db", str(junk))

    assert result.exit_code == 1
    assert f"cannot open {junk}" in result.output


# -- help ---------------------------------------------------------------------


@pytest.mark.parametrize("args", [["-h"], ["webhooks", "-h"], ["metrics", "-h"]])
def test_cli_accepts_short_help(args: list[str]) -> None:
    """-h shows help like --help, on the group and on commands."""
    result = run(*args)

    assert result.exit_code == 0
    assert result.output.startswith("Usage: ")


# -- status and metrics -------------------------------------------------------


def test_cli_status_json_shape(db_path: Path) -> None:
    """status --json gives queue counts, recent calls and breaker per integration."""
    result = run("status", "--db", str(db_path), "--json")

    data = json.loads(result.output)
    github = data["integrations"]["github"]
    assert data["window_seconds"] == 900
    assert github["queue"] == {"pending": 3, "processing": 0, "done": 1, "dead": 1}
    assert github["calls"]["calls"] == 10
    assert github["breaker"]["state"] == "open"
    assert data["integrations"]["slack"]["queue"]["pending"] == 0
    assert data["integrations"]["slack"]["breaker"] is None


def test_cli_status_table_lists_integrations(db_path: Path) -> None:
    """The human status output is a table with one row per integration."""
    result = run("status", "--db", str(db_path))

    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["INTEGRATION", "HEALTH", "BREAKER", "HEADROOM"]
    assert lines[1].split()[:5] == ["github", "unhealthy", "open", "-", "10"]
    assert lines[1].split()[-3:] == ["3", "1", "-"]
    assert lines[2].startswith("slack")


def test_cli_metrics_json_shape(db_path: Path) -> None:
    """metrics --json holds summarize() output per integration."""
    result = run("metrics", "--db", str(db_path), "--json")

    data = json.loads(result.output)
    github, slack = data["integrations"]
    assert data["since"] == pytest.approx(time.time() - 900, abs=60)
    assert github["integration"] == "github"
    assert (github["calls"], github["p50_ms"], github["p99_ms"]) == (10, 5.0, 10.0)
    assert github["routes"][0]["route"] == "/repos/{o}/{r}"
    assert slack["error_rate"] == 1.0


def test_cli_metrics_since_and_integration(db_path: Path) -> None:
    """--since widens the window and --integration narrows it to one name."""
    result = run(
        "metrics",
        "--db",
        str(db_path),
        "--since",
        "2d",
        "--integration",
        "github",
        "--json",
    )

    (github,) = json.loads(result.output)["integrations"]
    assert github["calls"] == 11
    assert {r["route"] for r in github["routes"]} == {"/repos/{o}/{r}", "/old"}


def test_cli_metrics_table_with_routes(db_path: Path) -> None:
    """The metrics table shows rates as percentages and routes on request."""
    result = run("metrics", "--db", str(db_path), "--routes")

    assert result.exit_code == 0
    github_row = next(
        ln for ln in result.output.splitlines() if ln.startswith("github")
    )
    assert "100.0%" in github_row
    assert "/chat.postMessage" in result.output


def test_cli_metrics_empty_window_says_so(db_path: Path) -> None:
    """A window without data prints a sentence instead of an empty table."""
    result = run("metrics", "--db", str(db_path), "--since", "1s")

    assert result.exit_code == 0
    assert "no call metrics since" in result.output


def test_cli_metrics_bad_since_is_a_usage_error(db_path: Path) -> None:
    """An unreadable --since value exits 2 and explains the accepted forms."""
    result = run("metrics", "--db", str(db_path), "--since", "yesterday")

    assert result.exit_code == 2
    assert "15m" in result.output
    assert "ISO" in result.output


# -- duration parsing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("2d", 172800),
        ("1w", 604800),
        ("1.5h", 5400),
        ("30", 30),
        (" 7D ", 604800),
        ("0s", 0),
    ],
)
def test_parse_duration_units(text: str, seconds: float) -> None:
    """Durations take s/m/h/d/w suffixes (any case); bare numbers are seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-5m", "5 minutes", "1y", "m", "1h30m"])
def test_parse_duration_rejects_other_text(text: str) -> None:
    """Anything but a number with one unit is refused."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_parse_since_forms() -> None:
    """--since takes a duration back from now, an ISO time, or 'all'."""
    now = 1_700_000_000.0
    local = datetime.datetime(2024, 5, 1, 12, 0).timestamp()

    assert parse_since("15m", now=now) == now - 900
    assert parse_since("2024-05-01T12:00:00Z", now=now) == 1714564800.0
    assert parse_since("2024-05-01T14:00:00+02:00", now=now) == 1714564800.0
    assert parse_since("2024-05-01T12:00", now=now) == local
    assert parse_since("ALL", now=now) is None
    with pytest.raises(ValueError, match="ISO"):
        parse_since("last tuesday", now=now)


# -- webhooks -------------------------------------------------------------------


def test_cli_webhooks_lists_by_default(db_path: Path) -> None:
    """'webhooks' alone, or with list's options, runs 'webhooks list'."""
    plain = run("webhooks", "--db", str(db_path))
    dead = run("webhooks", "--status", "dead", "--db", str(db_path), "--json")

    assert plain.exit_code == 0
    assert plain.output.splitlines()[0].split()[:4] == [
        "ID",
        "INTEGRATION",
        "EVENT",
        "STATUS",
    ]
    assert len(plain.output.splitlines()) == 6
    assert "ValueError: boom" in plain.output
    assert [e["id"] for e in json.loads(dead.output)] == [1]


def test_cli_webhooks_unknown_subcommand_is_an_error(db_path: Path) -> None:
    """A misspelt subcommand is reported, not taken as an argument of list."""
    result = run("webhooks", "lsit", "--db", str(db_path))

    assert result.exit_code == 2
    assert "No such command" in result.output


def test_cli_webhooks_list_filters_and_limit(db_path: Path) -> None:
    """list passes --event, --integration and --limit to the queue."""
    result = run(
        "webhooks",
        "list",
        "--event",
        "push",
        "--integration",
        "github",
        "--limit",
        "2",
        "--db",
        str(db_path),
        "--json",
    )

    events = json.loads(result.output)
    assert [e["id"] for e in events] == [5, 4]
    assert {e["event"] for e in events} == {"push"}


def test_cli_webhooks_show_redacts_signature(db_path: Path) -> None:
    """show prints the delivery with its signature header redacted."""
    as_json = json.loads(
        run("webhooks", "show", "1", "--db", str(db_path), "--json").output
    )
    text = run("webhooks", "show", "1", "--db", str(db_path)).output

    assert as_json["headers"]["X-Hub-Signature-256"] == "[redacted]"
    assert as_json["status"] == "dead"
    assert "00ff" not in text
    assert '"ref": "refs/heads/main"' in text
    assert "ValueError: boom" in text


def test_cli_webhooks_show_unknown_id(db_path: Path) -> None:
    """show of an id that does not exist exits 1 with a message."""
    result = run("webhooks", "show", "99", "--db", str(db_path))

    assert result.exit_code == 1
    assert "no webhook event with id 99" in result.output


@pytest.mark.parametrize("args", [[], ["1", "--all-dead"]])
def test_cli_webhooks_replay_needs_ids_or_all_dead(
    db_path: Path, args: list[str]
) -> None:
    """replay without ids and --all-dead (or with both) is a usage error."""
    result = run("webhooks", "replay", *args, "--db", str(db_path))

    assert result.exit_code == 2
    assert "--all-dead" in result.output
    assert statuses(db_path)[1] == "dead"


def test_cli_webhooks_replay_all_dead(db_path: Path) -> None:
    """--all-dead sends every dead event back to pending and leaves done alone."""
    result = run("webhooks", "replay", "--all-dead", "--db", str(db_path), "--json")

    assert json.loads(result.output) == {"replayed": 1}
    assert statuses(db_path)[1] == "pending"
    assert statuses(db_path)[2] == "done"


def test_cli_webhooks_replay_ids(db_path: Path) -> None:
    """Explicit ids are replayed whatever their status; unknown ids are reported."""
    result = CliRunner().invoke(
        main, ["webhooks", "replay", "2", "99", "--db", str(db_path)]
    )

    assert result.exit_code == 0
    assert "replayed 1 event(s)" in result.output
    assert "1 id(s) not replayed" in result.output
    assert statuses(db_path)[2] == "pending"


def test_cli_webhooks_purge_asks_first(db_path: Path) -> None:
    """Without --yes, purge asks and deletes nothing when the answer is no."""
    result = run("webhooks", "purge", "--db", str(db_path), input="n\n")

    assert result.exit_code == 1
    assert "Delete every done webhook event" in result.output
    assert 2 in statuses(db_path)


def test_cli_webhooks_purge_confirmed(db_path: Path) -> None:
    """A yes at the prompt deletes the done events only."""
    result = run("webhooks", "purge", "--db", str(db_path), input="y\n")

    assert result.exit_code == 0
    assert "purged 1 done event(s)" in result.output
    assert sorted(statuses(db_path)) == [1, 3, 4, 5]


def test_cli_webhooks_purge_yes_dead_older_than(db_path: Path) -> None:
    """--yes skips the prompt and --older-than spares recent events."""
    recent = run(
        "webhooks",
        "purge",
        "--status",
        "dead",
        "--older-than",
        "2h",
        "--yes",
        "--db",
        str(db_path),
        "--json",
    )
    older = run(
        "webhooks",
        "purge",
        "--status",
        "dead",
        "--older-than",
        "30m",
        "--yes",
        "--db",
        str(db_path),
        "--json",
    )

    assert json.loads(recent.output)["purged"] == 0
    assert json.loads(older.output) == {
        "purged": 1,
        "status": "dead",
        "older_than": 1800.0,
    }
    assert 1 not in statuses(db_path)


def test_cli_webhooks_purge_rejects_pending(db_path: Path) -> None:
    """Only done or dead events can be purged from the command line."""
    result = run(
        "webhooks", "purge", "--status", "pending", "--yes", "--db", str(db_path)
    )

    assert result.exit_code == 2
    assert len(statuses(db_path)) == 5


# -- plugins --------------------------------------------------------------------


class FakeProvider(Provider):
    """A provider contributed by the test plugin."""

    name = "fake"
    default_base_url = "https://fake.invalid"


class FakePlugin:
    """A plugin with one provider and one observation hook."""

    @hookimpl
    def register_providers(self, register: Any) -> None:
        """Contribute the fake provider."""
        register(FakeProvider())

    @hookimpl
    def on_request_attempt(self, record: AttemptRecord) -> None:
        """Observe attempts (and do nothing)."""


def test_cli_plugins_json_lists_hooks_and_providers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """plugins --json names each plugin's hooks and the providers it contributes."""

    def only_fake(*_: Any, **__: Any) -> pluggy.PluginManager:
        pm = make_plugin_manager(load_entry_points=False)
        pm.register(FakePlugin(), name="fake-plugin")
        return pm

    monkeypatch.setattr("revo_sdk.cli.make_plugin_manager", only_fake)

    data = json.loads(run("plugins", "--json").output)

    assert data["plugins"] == [
        {
            "name": "fake-plugin",
            "hooks": ["on_request_attempt", "register_providers"],
            "distribution": None,
            "providers": ["fake"],
        }
    ]
    assert data["providers"] == [
        {
            "name": "fake",
            "plugin": "fake-plugin",
            "class": f"{__name__}.FakeProvider",
            "base_url": "https://fake.invalid",
        }
    ]


def test_cli_plugins_table_shows_installed_providers() -> None:
    """The installed first-party plugins show up with their providers."""
    result = run("plugins")

    assert result.exit_code == 0
    assert result.output.startswith("PLUGIN")
    assert "github" in result.output


# -- bench ------------------------------------------------------------------------


def test_cli_bench_passes_options_and_exit_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bench hands its options to run_bench and exits with its return value."""
    seen: dict[str, Any] = {}

    def run_bench(**opts: Any) -> int:
        seen.update(opts)
        return 3

    fake = types.ModuleType("revo_sdk._bench.runner")
    fake.run_bench = run_bench  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "revo_sdk._bench.runner", fake)

    result = CliRunner().invoke(
        main, ["bench", "-n", "10", "-t", "2", "--seed", "7", "--json"]
    )

    assert result.exit_code == 3
    assert seen == {
        "requests": 10,
        "threads": 2,
        "fault_rate": 0.05,
        "webhooks": 200,
        "payloads": None,
        "db": None,
        "json": True,
        "seed": 7,
        "no_progress": False,
        "queue_messages": 1000,
    }


def test_cli_bench_rejects_missing_payload_folder(tmp_path: Path) -> None:
    """--payloads must name an existing folder."""
    result = run("bench", "--payloads", str(tmp_path / "absent"))

    assert result.exit_code == 2


# -- tables ------------------------------------------------------------------------


def test_render_table_aligns_columns() -> None:
    """Text columns are left-aligned and number columns right-aligned."""
    table = render_table(["NAME", "N", "RATE"], [["a", 5, 0.5], ["long", 120, None]])

    assert table.splitlines() == [
        "NAME    N  RATE",
        "a       5   0.5",
        "long  120     -",
    ]


def test_render_table_leaves_empty_columns_left_aligned() -> None:
    """A column holding only '-' placeholders is text, not numbers."""
    table = render_table(["ERROR", "N"], [[None, 1], [None, 22]])

    assert table.splitlines() == ["ERROR   N", "-       1", "-      22"]


def test_cli_metrics_routes_table_shows_busiest_routes(tmp_path: Path) -> None:
    """--routes shows ten routes per integration and says how many it left out."""
    path = tmp_path / "routes.db"
    db = Database(path)
    metrics = Metrics(lambda: db)
    for n in range(12):
        for _ in range(n + 1):
            metrics.record_attempt(
                AttemptRecord(
                    "github", "GET", f"/r{n}", 200, "ok", "ok", 0.01, 1, NOW - 5
                )
            )
    metrics.close()
    db.close()

    result = run("metrics", "--db", str(path), "--routes")

    assert "/r11 " in result.output
    assert "/r2 " in result.output
    assert "/r1 " not in result.output
    assert "(2 quieter routes not shown; --json lists them all)" in result.output


def test_cli_status_empty_database_says_so(tmp_path: Path) -> None:
    """A database without data gives a sentence, not an empty table."""
    path = tmp_path / "empty.db"
    Database(path).close()

    result = run("status", "--db", str(path))

    assert result.exit_code == 0
    assert "no webhook events or call metrics stored yet" in result.output


# -- monitoring: status, alerts ----------------------------------------------------


def test_cli_status_json_has_health_and_service_levels(db_path: Path) -> None:
    """status --json adds health, dead letters, firing alerts and service levels."""
    result = run("status", "--db", str(db_path), "--json")

    data = json.loads(result.output)
    github = data["integrations"]["github"]
    assert github["health"] == "unhealthy"
    assert github["breaker_state"] == "open"
    assert (github["queue_depth"], github["dead_letters"]) == (3, 1)
    assert github["firing_alerts"] == []
    levels = {lv["name"]: lv["passed"] for lv in data["service_levels"]}
    assert levels["integration success rate"] is False  # slack's one call failed


def test_cli_status_prints_service_level_lines(db_path: Path) -> None:
    """The table is followed by one PASS/FAIL/NO DATA line per service level."""
    result = run("status", "--db", str(db_path))

    tail = result.output.splitlines()[-3:]
    assert tail[0].startswith("FAIL")
    assert "success rate > 98 %" in tail[0]
    assert tail[1].startswith("PASS")
    assert "mean external API response" in tail[1]
    assert "webhook processing" in tail[2]


def test_cli_status_watch_redraws_count_times(db_path: Path) -> None:
    """--watch --count 2 draws the table twice and stops."""
    result = run(
        "status", "--db", str(db_path), "--watch", "--interval", "0.1", "--count", "2"
    )

    assert result.exit_code == 0
    assert result.output.count("INTEGRATION") == 2
    assert result.output.count("(Ctrl-C to stop)") == 2


def fire_alerts(path: Path) -> None:
    """Evaluate the default rules on the populated database (dead letters fire)."""
    from revo_sdk._alerts import DEFAULT_RULES, AlertManager

    db = Database(path)
    AlertManager(lambda: db, rules=DEFAULT_RULES, sinks=[]).evaluate(["github"])
    db.close()


def test_cli_alerts_list_and_show(db_path: Path) -> None:
    """alerts lists fired alerts; alerts show prints one in full."""
    fire_alerts(db_path)

    listing = json.loads(run("alerts", "--db", str(db_path), "--json").output)
    rules = {a["rule"]: a for a in listing["alerts"]}
    table = run("alerts", "list", "--firing", "--db", str(db_path)).output
    shown = run(
        "alerts", "show", str(rules["dead_letters"]["id"]), "--db", str(db_path)
    )

    assert {"dead_letters", "breaker_open"} <= rules.keys()
    assert rules["dead_letters"]["state"] == "firing"
    assert table.splitlines()[0].split()[:3] == ["ID", "RULE", "INTEGRATION"]
    assert "dead_letters" in table
    assert "rule:          dead_letters" in shown.output
    assert "threshold 0" in shown.output
    status = json.loads(run("status", "--db", str(db_path), "--json").output)
    assert "dead_letters" in status["integrations"]["github"]["firing_alerts"]


def test_cli_alerts_show_unknown_id_is_an_error(db_path: Path) -> None:
    """An unknown alert id is a one-line error."""
    result = run("alerts", "show", "999", "--db", str(db_path))

    assert result.exit_code == 1
    assert "no alert 999" in result.output


def test_cli_alerts_empty_history_says_so(db_path: Path) -> None:
    """Without alerts the command says so instead of printing an empty table."""
    result = run("alerts", "--db", str(db_path))

    assert "no alerts recorded" in result.output


def test_cli_print_status_for_bench(db_path: Path) -> None:
    """print_status (the end of revo-sdk bench) prints and returns the table."""
    from revo_sdk._cli_monitor import print_status

    printed: list[str] = []
    text = print_status(db_path, echo=printed.append)

    assert printed == [text]
    assert text.startswith("INTEGRATION")
    assert "github" in text


def test_cli_read_commands_leave_a_foreign_database_unchanged(tmp_path: Path) -> None:
    """Pointing status at another application's SQLite file refuses it unchanged."""
    import sqlite3

    from click.testing import CliRunner

    from revo_sdk.cli import main

    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    before = other.read_bytes()
    result = CliRunner().invoke(main, ["status", "--db", str(other)])
    assert result.exit_code != 0
    assert "not a revo-sdk database" in result.output
    assert other.read_bytes() == before


def test_cli_ids_beyond_sqlite_integers_are_usage_errors(tmp_path: Path) -> None:
    """An id too large for SQLite is refused by the option parser, not a traceback."""
    from click.testing import CliRunner

    from revo_sdk._db import Database
    from revo_sdk.cli import main

    Database(tmp_path / "r.db").close()
    runner = CliRunner()
    for args in (
        ["webhooks", "show", str(10**23)],
        ["webhooks", "list", "--limit", str(10**20)],
    ):
        result = runner.invoke(main, [*args, "--db", str(tmp_path / "r.db")])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output


def test_cli_webhooks_replay_by_filter(db_path: Path) -> None:
    """Filters replay the matching events only: done push events, at most two."""
    result = run(
        "webhooks",
        "replay",
        "--status",
        "done",
        "--event",
        "ping",
        "--db",
        str(db_path),
        "--json",
    )
    assert json.loads(result.output) == {"replayed": 0}  # the done one is a push
    result = run(
        "webhooks", "replay", "--integration", "github", "--db", str(db_path), "--json"
    )
    assert json.loads(result.output) == {"replayed": 1}  # dead by default
    assert statuses(db_path)[1] == "pending"
    assert statuses(db_path)[2] == "done"


def test_cli_webhooks_replay_ids_and_filters_together_is_usage_error(
    db_path: Path,
) -> None:
    """Ids, --all-dead and filters are alternatives, never combined."""
    result = run("webhooks", "replay", "1", "--event", "ping", "--db", str(db_path))
    assert result.exit_code == 2
    assert statuses(db_path)[1] == "dead"

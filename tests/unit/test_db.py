"""The SQLite file: migrations, and read-only opening for inspection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from revo_sdk import StorageError
from revo_sdk._db import MIGRATIONS, Database


def test_database_applies_every_migration_once(tmp_path: Path) -> None:
    """Opening twice applies each numbered migration exactly once."""
    Database(tmp_path / "a.db").close()
    db = Database(tmp_path / "a.db")
    names = [row["name"] for row in db.query("SELECT name FROM _revo_migrations")]
    assert names == [name for name, _ in MIGRATIONS]
    db.close()


def test_readonly_database_refuses_a_foreign_file_unchanged(tmp_path: Path) -> None:
    """Read-only mode never adds tables to, or changes the journal of, another file."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = other.read_bytes()
    with pytest.raises(StorageError, match="not a revo-sdk database"):
        Database(other, readonly=True)
    assert other.read_bytes() == before


def test_readonly_database_reads_but_cannot_write(tmp_path: Path) -> None:
    """A read-only handle sees the data and refuses writes."""
    path = tmp_path / "r.db"
    writer = Database(path)
    with writer.write() as conn:
        conn.execute(
            "INSERT INTO metric_events (ts, integration, kind) VALUES (1, 'a', 'b')"
        )
    writer.close()
    reader = Database(path, readonly=True)
    assert reader.query("SELECT kind FROM metric_events")[0]["kind"] == "b"
    with (
        pytest.raises((StorageError, sqlite3.OperationalError)),
        reader.write() as conn,
    ):
        conn.execute("DELETE FROM metric_events")
    reader.close()


def test_readonly_database_missing_file_is_not_created(tmp_path: Path) -> None:
    """Reading a missing file raises and creates nothing."""
    with pytest.raises(StorageError, match="no database"):
        Database(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()

"""The distribution: a built wheel holds the layout users import."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from the working tree, as `pip install .` would build it."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("revo_sdk-*.whl")
    return built


@pytest.mark.slow
def test_wheel_contains_contrib_plugins_and_entry_points(wheel: Path) -> None:
    """contrib/ and plugins/ install as revo_sdk.contrib.* and revo_sdk_plugins."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "revo_sdk/contrib/wsgi/__init__.py",
        "revo_sdk/contrib/flask/__init__.py",
        "revo_sdk_plugins/github.py",
        "revo_sdk_plugins/slack.py",
        "revo_sdk_plugins/jira.py",
        "revo_sdk/py.typed",
    ):
        assert expected in names
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[revo_sdk]" in text
    assert "github = revo_sdk_plugins.github" in text
    assert "revo-sdk = revo_sdk.cli:main" in text
    assert not any(n.startswith(("tests/", "contrib/", "plugins/")) for n in names)


@pytest.mark.slow
def test_unpacked_wheel_imports_front_ends(wheel: Path, tmp_path: Path) -> None:
    """With only the wheel's files on the path, the public modules import."""
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = (
        "import revo_sdk.contrib.wsgi as w, revo_sdk.contrib.flask as f;"
        "import revo_sdk_plugins.github;"
        "print(w.WebhookMiddleware.__name__, f.RevoWebhooks.__name__, w.__file__)"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path)!r}); {code}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    middleware, extension, origin = result.stdout.split()
    assert (middleware, extension) == ("WebhookMiddleware", "RevoWebhooks")
    assert Path(origin).is_relative_to(tmp_path)

"""The wheel `pip install` builds holds everything the gateway serves and runs: an installed gateway
has no repository beside it, so a file missing from package-data is a console or a migration missing."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_package_file_and_finds_the_console_and_migrations_in_itself(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--quiet", "--wheel-dir", str(tmp_path)],
        check=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("ollama_gateway-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    tracked = subprocess.run(
        ["git", "ls-files", "proxy", "sql"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    # proxy/sql is a link to the top-level sql/: the wheel holds the files themselves.
    expected = {f"proxy/{name}" if name.startswith("sql/") else name for name in tracked if name != "proxy/sql"}
    assert expected <= in_wheel, sorted(expected - in_wheel)

    # Imported from the unpacked wheel alone (run outside the repository): the files it serves are there.
    check = """
import proxy
from proxy.console.assets import CONSOLE_FILES, REDOC_FILES, path_of
from proxy.db.migrations import discover
print(proxy.__file__)
print(all(path_of(name).is_file() for name in CONSOLE_FILES + REDOC_FILES))
print(len(discover()))
"""
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")},
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    where, served, migrations = result.stdout.split()
    assert where.startswith(str(tmp_path / "site")) and served == "True"
    assert int(migrations) == len(list((REPO / "sql").glob("*.sql")))

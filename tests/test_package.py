"""What users install: the installed copy under test, its migrations, one version, the wheel.

``./dev test`` runs the suite against pmstore installed from its wheel into a
fresh venv, with ``PMSTORE_TEST_INSTALLED=1`` and ``PMSTORE_TEST_WHEEL`` set:
then these tests check that the copy imported is that one, not the checkout.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import pmstore
from pmstore import migrations

REPO = Path(__file__).resolve().parents[1]
INSTALLED = os.environ.get("PMSTORE_TEST_INSTALLED") == "1"


def _sql_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.sql"))}


def test_shipped_migrations_are_the_checkouts() -> None:
    shipped = _sql_files(migrations.migrations_dir())
    assert shipped == _sql_files(REPO / "migrations")
    assert "post-apply.sql" in shipped and len(shipped) >= 21


@pytest.mark.skipif(
    not INSTALLED,
    reason="needs pmstore installed from its wheel, not the checkout "
    "(PMSTORE_TEST_INSTALLED=1, set by ./dev test)",
)
def test_the_installed_copy_is_under_test_not_the_checkout() -> None:
    module = Path(pmstore.__file__).resolve()
    assert REPO not in module.parents, module
    assert "site-packages" in module.parts, module
    assert os.environ.get("PYTHONPATH") is None or str(REPO) not in os.environ["PYTHONPATH"]
    assert REPO not in migrations.migrations_dir().resolve().parents
    dist = metadata.distribution("pmstore")
    assert dist.version == pmstore.__version__
    # Not an editable install: the files are in site-packages, no .pth to the checkout.
    assert dist.read_text("direct_url.json") is None or '"editable": true' not in (
        dist.read_text("direct_url.json") or ""
    )


@pytest.mark.skipif(
    not INSTALLED,
    reason="needs pmstore installed from its wheel, not the checkout "
    "(PMSTORE_TEST_INSTALLED=1, set by ./dev test)",
)
def test_the_commands_the_tests_run_are_the_installed_copy_too() -> None:
    # What tests/test_cli.py and test_ingest.py run, from the repository root.
    done = subprocess.run(
        [sys.executable, "-P", "-m", "pmstore", "--version"], cwd=REPO, capture_output=True
    )
    assert done.returncode == 0
    where = subprocess.run(
        [sys.executable, "-P", "-c", "import pmstore; print(pmstore.__file__)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert REPO not in Path(where).resolve().parents, where


@pytest.mark.skipif(
    not os.environ.get("PMSTORE_TEST_WHEEL"),
    reason="needs the built wheel, named by PMSTORE_TEST_WHEEL (set by ./dev test)",
)
def test_the_wheel_carries_schema_types_license_and_the_compiled_loop() -> None:
    with zipfile.ZipFile(os.environ["PMSTORE_TEST_WHEEL"]) as wheel:
        names = set(wheel.namelist())
    for name in _sql_files(REPO / "migrations"):
        assert f"pmstore/schema/{name}" in names, name
    assert "pmstore/py.typed" in names
    # the compiled message loop of bulk reads (./dev test builds where a C compiler is)
    assert "pmstore/_copydata.pyi" in names
    assert any(n.startswith("pmstore/_copydata.") and n.endswith(".so") for n in names)
    assert any(n.endswith(".dist-info/LICENSE") or "/licenses/LICENSE" in n for n in names)
    assert not any(n.startswith(("tests/", "migrations/")) for n in names)


def test_one_version() -> None:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    assert setup["metadata"]["version"] == "attr: pmstore.__version__"
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {pmstore.__version__}" in changelog
    assert "Apache License" in (REPO / "LICENSE").read_text(encoding="utf-8")

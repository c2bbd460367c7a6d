"""The sdist carries the whole tracked tree (tests, their data, examples, benchmarks, docs, LICENSE,
CHANGELOG), so a distribution can build and test from it; the wheel carries the type marker.

Builds from a copy of the tracked files (no build isolation, so no network) and only lists the
archives: the suite is not run inside them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What setuptools writes into every sdist besides the tracked files.
GENERATED = ("PKG-INFO", "backtrader_alltick.egg-info/")


def tracked_files() -> list[str]:
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        top = ""
    if not top or Path(top).resolve() != ROOT:
        pytest.skip("not a git checkout (an unpacked sdist has no file list to compare with)")
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in listing.decode().split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[list[str], tarfile.TarFile, Path]:
    files = tracked_files()
    tree = tmp_path_factory.mktemp("tree")
    for name in files:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    out = tree.parent / "dist"
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(tree)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return files, tarfile.open(sdist), wheel


def test_sdist_holds_every_tracked_file_and_nothing_else(built):
    files, sdist, _ = built

    members = {
        member.name.split("/", 1)[1]
        for member in sdist.getmembers()
        if member.isfile() and "/" in member.name
    }

    assert sorted(set(files) - members) == []
    assert sorted(name for name in members - set(files) if not name.startswith(GENERATED)) == []


def test_sdist_holds_what_its_tests_and_users_need(built):
    files, _, _ = built

    for needed in (
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "CONTRIBUTING.md",
        "tests/conftest.py",
        "tests/simprocess.py",
        "mkdocs.yml",
    ):
        assert needed in files
    for folder in ("tests/data/", "examples/", "benchmarks/", "docs/"):
        assert any(name.startswith(folder) for name in files), folder


def test_metadata_declares_the_spdx_licence_typing_and_pythons(built):
    _, sdist, _ = built
    (pkg_info,) = (m for m in sdist.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))

    metadata = Parser().parsestr(sdist.extractfile(pkg_info).read().decode())

    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    classifiers = metadata.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    for minor in (10, 11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    requires = " ".join(metadata.get_all("Requires-Dist"))
    for imported in ("numpy", "pandas", "urllib3", "requests", "websocket-client", "backtrader"):
        assert imported in requires


def test_wheel_ships_the_type_marker_and_no_tests(built):
    _, _, wheel = built

    names = zipfile.ZipFile(wheel).namelist()

    assert "backtrader_alltick/py.typed" in names
    assert not any(name.startswith("tests/") for name in names)

"""The MailExtension: its manifest matches the package, packs from the served files, and
passes Mozilla's addons-linter offline with no errors (Thunderbird-only keys may warn)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

from scripts.pack_widget import pack

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_version_is_the_package_version() -> None:
    manifest = json.loads((ROOT / "manifest.json").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["version"] == project["version"]
    assert (ROOT / manifest["message_display_action"]["default_popup"]).is_file()


def test_the_xpi_holds_the_served_files(tmp_path: Path) -> None:
    names = set(zipfile.ZipFile(pack(tmp_path)).namelist())
    assert {"manifest.json", "widget_api/static/widget/index.html", "widget_api/static/widget/widget.js", "widget_api/static/widget/i18n.js"} <= names


def test_addons_linter_finds_no_errors(tmp_path: Path) -> None:
    linter = ROOT / "node_modules" / ".bin" / "addons-linter"
    if not linter.exists():
        if not shutil.which("npm"):
            pytest.skip("npm is not installed")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=ROOT, check=True, timeout=600)
    result = subprocess.run([str(linter), "--output", "json", str(pack(tmp_path))], capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    assert report["errors"] == [], report["errors"]
    # Only Thunderbird's own permissions may warn (Firefox's schema does not know them).
    assert all(w["code"] == "MANIFEST_PERMISSIONS" for w in report["warnings"]), report["warnings"]

"""The vendored browser libraries are exactly what scripts/build-console-vendor.sh recorded:
every file's sha256, the pinned versions, and a licence for every bundled package."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from analytics_api.console.assets import STATIC_DIR

VENDOR = STATIC_DIR / "vendor"
PINS = Path(__file__).resolve().parents[2] / "console-vendor"


def manifest() -> dict:
    return json.loads((VENDOR / "VENDOR.json").read_text())


def test_every_vendored_file_matches_its_recorded_sha256() -> None:
    files = manifest()["files"]
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()} - {"VENDOR.json"}
    assert on_disk == set(files), "vendor/ holds files VENDOR.json does not record, or lacks some it does"
    for name, digest in files.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, f"{name} was changed by hand"


def test_bundled_packages_are_the_pinned_and_locked_versions_with_licences() -> None:
    pins = json.loads((PINS / "package.json").read_text())["dependencies"]
    lock = json.loads((PINS / "package-lock.json").read_text())["packages"]
    packages = manifest()["packages"]
    for name, version in pins.items():
        assert packages[name]["version"] == version, f"{name}: bundle has {packages[name]['version']}, pinned {version}"
    for name, info in packages.items():
        assert lock[f"node_modules/{name}"]["version"] == info["version"]
        assert lock[f"node_modules/{name}"]["integrity"] == info["integrity"]
        licence = VENDOR / "licenses" / f"{name.replace('/', '__')}.txt"
        assert licence.stat().st_size > 100, f"{name} has no licence text"
        assert info["license"] in {"MIT", "Apache-2.0", "BSD-3-Clause", "ISC"}, f"{name}: {info['license']}"


def test_console_code_loads_nothing_from_another_origin() -> None:
    for path in STATIC_DIR.rglob("*"):
        if path.suffix in {".js", ".html", ".css"} and "vendor" not in path.parts:
            text = path.read_text()
            assert "http://" not in text and "https://" not in text.replace("https://${", ""), path.name

"""The chat page's vendored renderer and sanitizer: the pinned versions, unchanged.

`scripts/vendor-web.sh` copies the vendored files from the npm packages `web/package.json` pins;
these tests read what it wrote and need neither Node nor the network.
"""

from __future__ import annotations

import hashlib
import json
import re

from harness.server_process import ROOT

STATIC = ROOT / "chatproxy" / "http" / "static" / "ui"
VENDOR = STATIC / "vendor"
WEB = ROOT / "web"


def vendored() -> dict[str, tuple[str, str, str]]:
    """VERSIONS as scripts/vendor-web.sh wrote it: package -> (version, file, sha256)."""
    lines = (VENDOR / "VERSIONS").read_text().splitlines()
    rows = [line.split() for line in lines if line and not line.startswith("#")]
    return {package: (version, file, digest) for package, version, file, digest in rows}


def test_vendored_files_are_the_pinned_versions_unchanged() -> None:
    pinned: dict[str, str] = json.loads((WEB / "package.json").read_text())["dependencies"]
    locked = json.loads((WEB / "package-lock.json").read_text())["packages"]
    assert set(vendored()) == set(pinned), "run scripts/vendor-web.sh"
    for package, (version, file, digest) in vendored().items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", pinned[package]), f"{package} is not pinned exactly"
        assert locked[f"node_modules/{package}"]["version"] == pinned[package]
        assert version == pinned[package], f"{package} {version} is vendored: run the script"
        body = (VENDOR / file).read_bytes()
        assert hashlib.sha256(body).hexdigest() == digest, f"vendor/{file} was changed by hand"
        banner = body.split(b"\n", 1)[0].decode().lower()
        assert f"{package} {version}" in banner, f"vendor/{file} says it is not {version}"
        assert (VENDOR / f"{package}.LICENSE").is_file()


def test_npm_files_stay_out_of_git_and_out_of_the_deploy() -> None:
    assert "node_modules/" in (ROOT / ".gitignore").read_text().splitlines()
    assert "web/" in (ROOT / ".gcloudignore").read_text().splitlines()

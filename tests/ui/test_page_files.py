"""The chat page's files as the server sends them: policy and cache headers, every module linked
with its content hash, and the vendored renderer and sanitizer the pinned versions, unchanged.

`scripts/vendor-web.sh` copies the vendored files from the npm packages `web/package.json` pins;
these tests read what it wrote and need neither Node nor the network.
"""

from __future__ import annotations

import hashlib
import json
import re

from harness.server_process import ROOT, http
from tests.ui.pages import Serve

STATIC = ROOT / "chatproxy" / "http" / "static" / "ui"
VENDOR = STATIC / "vendor"
WEB = ROOT / "web"
SCRIPTS = sorted(
    path.relative_to(STATIC).as_posix() for path in [*STATIC.rglob("*.js"), *STATIC.rglob("*.mjs")]
)
IMPORT = re.compile(
    r"""^(?:import|export)\b[^;]*?\bfrom\s*(["'])(.+?)\1|^import\s*(["'])(.+?)\3""", re.M
)
VERSIONED_IMPORT = re.compile(r"\./[\w./-]+\?v=[0-9a-f]{16}")
# Ways a script could put HTML into the page itself; the page leaves parsing HTML to DOMPurify.
HTML_SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
)


def imported_modules(base: str, html: str) -> dict[str, str]:
    """Every module the page loads, from its one module script down its imports, by path under
    the server's root; each import must carry its content hash."""
    entry = re.search(r'<script type="module" src="(ui/app\.js\?v=\w+)"></script>', html)
    assert entry, "the page does not load app.js as a module with its version"
    modules: dict[str, str] = {}
    todo = [entry.group(1)]
    while todo:
        link = todo.pop()
        name = link.split("?")[0]
        if name in modules:
            continue
        answer = http("GET", f"{base}/{link}")
        assert answer.status == 200, link
        assert answer.headers.get_content_type() == "text/javascript", link
        assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable", link
        modules[name] = answer.body.decode()
        for match in IMPORT.finditer(modules[name]):
            target = match.group(2) or match.group(4)
            assert VERSIONED_IMPORT.fullmatch(target), f"{name} imports {target} without its hash"
            todo.append(name.rsplit("/", 1)[0] + target[1:])
    return modules


def test_page_is_served_with_a_strict_policy_and_cache_headers(serve: Serve) -> None:
    base = serve()
    page = http("GET", base + "/ui")
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "unsafe-inline" not in policy
    html = page.body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script"
    assert "<style" not in html
    assert " style=" not in html
    assert "//" not in re.sub(r"https?://www\.w3\.org", "", html), "an outside address"

    again = http("GET", base + "/ui", headers={"If-None-Match": page.headers["ETag"]})
    assert again.status == 304

    kinds = {"app.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg+xml"}
    for name, kind in kinds.items():
        link = re.search(rf'"(ui/{re.escape(name)}\?v=\w+)"', html)
        assert link, f"the page does not link {name} with its version"
        asset = http("GET", f"{base}/{link.group(1)}")
        assert asset.status == 200
        assert asset.headers.get_content_type() == kind
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        unversioned = http("GET", f"{base}/ui/{name}")
        assert unversioned.headers["Cache-Control"] == "no-cache"

    modules = imported_modules(base, html)
    assert set(modules) == {f"ui/{name}" for name in SCRIPTS}, "a script is served but not used"
    for name, source in modules.items():
        if not name.startswith("ui/vendor/"):
            assert not HTML_SINKS.search(source), f"{name} assigns HTML"

    slash = http("GET", base + "/ui/")  # redirected to /ui, where the page's links work
    assert (slash.status, slash.body) == (200, html.encode())
    assert http("GET", base + "/ui/chat").json() == []  # a chat may still be called "ui"


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
    # Without the slash: a node_modules that is a link (a worktree's) is ignored too.
    assert "node_modules" in (ROOT / ".gitignore").read_text().splitlines()
    assert "web/" in (ROOT / ".gcloudignore").read_text().splitlines()

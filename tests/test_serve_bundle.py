"""The committed bundle of `cnndsl serve` (cnndsl/serve/static/) was built from the sources in web/ as
they are: tools/build_web.sh writes the sha256 of web/src/* and web/package-lock.json (as `sha256sum`
lists them) into the bundle's first line, and this test recomputes it, without Node. After editing
web/, run `bash tools/build_web.sh` and commit what it writes."""
import hashlib
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEB = os.path.join(ROOT, "web")
STATIC = os.path.join(ROOT, "cnndsl", "serve", "static")
REBUILD = "the bundle is older than web/: run `bash tools/build_web.sh` and commit cnndsl/serve/static/"


def sources_digest() -> str:
    """sha256 of `sha256sum package-lock.json src/...` (src's files in byte order), as the build computes it."""
    names = ["package-lock.json"] + sorted(
        os.path.relpath(os.path.join(d, f), WEB).replace(os.sep, "/")
        for d, _, files in os.walk(os.path.join(WEB, "src")) for f in files)
    listing = "".join(f"{hashlib.sha256(open(os.path.join(WEB, n), 'rb').read()).hexdigest()}  {n}\n" for n in names)
    return hashlib.sha256(listing.encode()).hexdigest()


def recorded(name) -> str:
    with open(os.path.join(STATIC, name), encoding="utf-8") as f:
        m = re.match(r"/\* cnndsl serve: built by tools/build_web.sh from web/ \(sources sha256 ([0-9a-f]{64})\) \*/",
                     f.readline())
    assert m, f"{name} has no build header: {REBUILD}"
    return m.group(1)


@pytest.mark.skipif(not os.path.isdir(WEB), reason="web/ is not in this copy (an installed cnndsl)")
def test_the_bundle_matches_its_sources():
    want = sources_digest()
    assert recorded("app.js") == want, REBUILD
    assert recorded("app.css") == want, REBUILD
    assert open(os.path.join(STATIC, "index.html")).read() == open(os.path.join(WEB, "src", "index.html")).read(), REBUILD


def test_the_bundle_is_whole():
    js = open(os.path.join(STATIC, "app.js"), encoding="utf-8").read()
    page = open(os.path.join(STATIC, "index.html"), encoding="utf-8").read()
    assert "static/app.js?token=__TOKEN__" in page and "static/app.css?token=__TOKEN__" in page
    assert "<script>" not in page and not re.search(r"\son\w+=", page)   # nothing inline: the CSP would block it
    for needed in ("api/analyze", "api/train/events", "X-Cnndsl-Token", "cm-editor"):
        assert needed in js, needed
    assert "THIRD_PARTY.txt" in os.listdir(STATIC) and "MIT" in open(os.path.join(STATIC, "THIRD_PARTY.txt")).read()


def test_the_package_data_ships_the_bundle():
    """pyproject's setuptools config puts static/ into the wheel (what `pip install` copies)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        pytest.skip("tomllib needs Python 3.11")
    cfg = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))["tool"]["setuptools"]
    assert "cnndsl.serve" in cfg["packages"]
    assert cfg["package-data"]["cnndsl.serve"] == ["static/*"]
    assert {"index.html", "app.js", "app.css"} <= set(os.listdir(STATIC))

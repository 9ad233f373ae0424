"""The Data Docs' assets come from a registry only as the pinned bytes, and a site whose
assets cannot be had keeps working pages (on the CDNs) with the reason said."""

from __future__ import annotations

import http.server
import io
import re
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockpipe.validation.data_docs import PACKAGES, AssetsUnavailable, install, localize


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local npm registry (files under a directory, served over HTTP)."""
    root = tmp_path / "registry"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()


def test_a_tarball_that_is_not_the_pinned_one_is_refused(
    registry: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = registry
    jquery = PACKAGES[0]
    tampered = io.BytesIO()
    with tarfile.open(fileobj=tampered, mode="w:gz") as tar:
        data = b"window.jQuery = function () { /* not jQuery */ };"
        member = tarfile.TarInfo("package/dist/jquery.min.js")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    path = root / jquery.tarball("").lstrip("/")
    path.parent.mkdir(parents=True)
    path.write_bytes(tampered.getvalue())
    with pytest.raises(AssetsUnavailable, match=r"jquery@3\.7\.1: the tarball's sha512 is"):
        install(tmp_path / "cache", url)
    assert not any((tmp_path / "cache").iterdir())  # nothing half-installed stays


def test_without_the_assets_the_pages_keep_their_cdns_and_the_reason_is_said(
    registry: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = registry  # an empty registry: every download is a 404
    site = tmp_path / "site"
    site.mkdir()
    page = '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>'
    (site / "index.html").write_text(page)
    with pytest.raises(AssetsUnavailable, match=f"cannot download {re.escape(url)}/"):
        localize(site, tmp_path / "cache", url)
    assert (site / "index.html").read_text() == page

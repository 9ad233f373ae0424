"""Great Expectations' Data Docs without the internet.

GX 1.x writes pages that load Bootstrap, jQuery, Font Awesome, bootstrap-table and Vega from
five CDNs; offline they are an unstyled list. The same files come from the npm registry's
tarballs (checked against the registry's sha512 integrity), are cached once per machine, copied
into the docs site's ``static/vendor`` and the pages are pointed at them. Where a version on
the page is a floating major (``vega@5``) the pin below is the newest release of that major,
as the CDN would serve it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

# The site's own pages; dbt's docs and the trends report live beside them and are not GX's.
GX_PAGES = ("index.html", "expectations", "validations")
VENDOR_DIR = "static/vendor"


@dataclass(frozen=True)
class Package:
    """One npm tarball and what the pages take from it."""

    name: str
    version: str
    integrity: str  # the registry's dist.integrity
    # CDN address (as GX writes it, without a query) -> the file in the package
    files: dict[str, str]
    # directories the files refer to by relative path (Font Awesome's webfonts)
    beside: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.name.replace('/', '+')}@{self.version}"

    def tarball(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.name.split('/')[-1]}-{self.version}.tgz"


PACKAGES = (
    Package(
        "jquery",
        "3.7.1",
        "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==",
        {"https://code.jquery.com/jquery-3.7.1.min.js": "dist/jquery.min.js"},
    ),
    Package(
        "popper.js",
        "1.12.9",
        "sha512-s0EEi9xiSCdqz9lV4IiVH5yIZnDX/U1t0tCjB+0jXx9jW8lrR7kOpVupiUg175ogqVoudpDXHF1p6dKATCHMeg==",
        {
            "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
                "dist/umd/popper.min.js"
            )
        },
    ),
    Package(
        "bootstrap",
        "4.3.1",
        "sha512-rXqOmH1VilAt2DyPzluTi2blhk17bO7ef+zLLPlWvG494pDxcM234pJ8wTc/6R40UWizAIIMgxjvxZg5kmsbag==",
        {
            "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
                "dist/css/bootstrap.min.css"
            ),
            "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
                "dist/js/bootstrap.min.js"
            ),
        },
    ),
    Package(
        "@forevolve/bootstrap-dark",
        "1.1.0",
        "sha512-A3ucpEpxPoTVO490lZZCfjPXxv832l7mm1IxX3bXyxvgwnPGXDLyh7dWrphXKO8YBAu3EswbBEu3VSW8NRMW3A==",
        {
            "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
            "bootstrap-prefers-dark.css": "dist/css/bootstrap-prefers-dark.css"
        },
    ),
    Package(
        "bootstrap-datepicker",
        "1.9.0",
        "sha512-9rYYbaVOheGYxjOr/+bJCmRPihfy+LkLSg4fIFMT9Od8WwWB/MB50w0JO1eBgKUMbb7PFHQD5uAfI3ArAxZRXA==",
        {
            "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
            "bootstrap-datepicker.min.css": "dist/css/bootstrap-datepicker.min.css",
            "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
            "bootstrap-datepicker.min.js": "dist/js/bootstrap-datepicker.min.js",
        },
    ),
    Package(
        "@fortawesome/fontawesome-free",
        "6.6.0",
        "sha512-60G28ke/sXdtS9KZCpZSHHkCbdsOGEhIUGlwq6yhY74UpTiToIh8np7A8yphhM4BWsvNFtIvLpi4co+h9Mr9Ow==",
        {
            "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/"
            "all.min.css": "css/all.min.css"
        },
        beside=("webfonts",),
    ),
    Package(
        "bootstrap-table",
        "1.19.1",
        "sha512-WvV+l1AI/C+zThaKmfHmi/IuayVNB0qdFyEhFx1jyZhO0oLtNJNANkCR3rvJf6Dkh72dsLElxpE/bzK9seEQLA==",
        {
            "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
                "dist/bootstrap-table.min.css"
            ),
            "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
                "dist/bootstrap-table.min.js"
            ),
            "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
            "bootstrap-table-filter-control.min.js": (
                "dist/extensions/filter-control/bootstrap-table-filter-control.min.js"
            ),
            # GX asks for 1.19.0's filter-control styles; 1.19.1's differ only in the
            # version comment (compared byte for byte), so one tarball serves both.
            "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
            "bootstrap-table-filter-control.css": (
                "dist/extensions/filter-control/bootstrap-table-filter-control.css"
            ),
            "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
            "bootstrap-table-filter-control.min.css": (
                "dist/extensions/filter-control/bootstrap-table-filter-control.min.css"
            ),
        },
    ),
    Package(
        "vega",
        "5.33.1",
        "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
        {"https://cdn.jsdelivr.net/npm/vega@5": "build/vega.min.js"},
    ),
    Package(
        "vega-lite",
        "5.23.0",
        "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
        {"https://cdn.jsdelivr.net/npm/vega-lite@5": "build/vega-lite.min.js"},
    ),
    Package(
        "vega-embed",
        "6.29.0",
        "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
        {"https://cdn.jsdelivr.net/npm/vega-embed@6": "build/vega-embed.min.js"},
    ),
)
# GX's logo is in its own package's static images, which every site already holds.
LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/logo-long\.png[^\"']*"
)
LOGO_LOCAL = "static/images/logo-long.png"
TAG = re.compile(r"<(?:script|link)\b[^>]*>")
ADDRESS = re.compile(r"""\b(src|href)=["']([^"']+)["']""")
INTEGRITY = re.compile(r"""\s+integrity=["']([^"']+)["']""")
CROSSORIGIN = re.compile(r"""\s+crossorigin=["'][^"']*["']""")


class AssetsUnavailable(RuntimeError):
    """The assets are not cached and the registry cannot be reached."""


def _verify(package: Package, data: bytes) -> None:
    algorithm, _, expected = package.integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise AssetsUnavailable(
            f"{package.name}@{package.version}: the tarball's {algorithm} is {actual}, the pinned "
            f"integrity is {expected}: a changed or corrupted download, not installed"
        )


def _used(package: Package, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    wanted = {f"package/{path}" for path in package.files.values()}
    folders = tuple(f"package/{folder}/" for folder in package.beside)
    return [m for m in tar.getmembers() if m.name in wanted or m.name.startswith(folders)]


def install(cache_dir: Path, registry: str, timeout: float = 60) -> Path:
    """Download, check and unpack every package not in ``cache_dir`` yet.

    Args:
        cache_dir: one directory per package version (``<name>@<version>``).
        registry: the npm registry's base address (a mirror works too).
        timeout: seconds per download.

    Returns:
        ``cache_dir``.

    Raises:
        AssetsUnavailable: a download failed or its checksum did not match.
    """
    cache_dir = cache_dir.expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    missing = [p for p in PACKAGES if not (cache_dir / p.key).is_dir()]
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        for package in missing:
            url = package.tarball(registry)
            try:
                response = client.get(url)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise AssetsUnavailable(f"cannot download {url}: {exc}") from exc
            _verify(package, response.content)
            # Unpacked beside the target and renamed: a run stopped half way leaves no
            # half-filled package that later runs would take as installed.
            staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{package.key}-"))
            try:
                with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
                    # Only what the pages use: the packages hold ~76 MB, the pages ~6 MB.
                    tar.extractall(staging, members=_used(package, tar), filter="data")
                os.replace(staging / "package", cache_dir / package.key)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            log.info("data docs assets: %s@%s installed", package.name, package.version)
    return cache_dir


def _vendor(site: Path, cache_dir: Path) -> dict[str, Path]:
    """Copy the used files into ``site/static/vendor``; CDN address -> the site's copy."""
    local: dict[str, Path] = {}
    for package in PACKAGES:
        source, target = cache_dir / package.key, site / VENDOR_DIR / package.key
        for path in {*package.files.values(), *package.beside}:
            origin, copy = source / path, target / path
            if origin.is_dir():
                shutil.copytree(origin, copy, dirs_exist_ok=True)
            elif not copy.exists() or copy.stat().st_size != origin.stat().st_size:
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(origin, copy)
        local.update({url: target / path for url, path in package.files.items()})
    return local


def _pages(site: Path) -> list[Path]:
    pages = [site / "index.html"] if (site / "index.html").exists() else []
    for folder in GX_PAGES[1:]:
        pages += sorted((site / folder).rglob("*.html"))
    return pages


def localize(site: Path, cache_dir: Path, registry: str) -> int:
    """Point the GX pages of ``site`` at local copies of their scripts, styles and fonts.

    Args:
        site: the Data Docs directory GX built.
        cache_dir: the machine's cache of the npm packages (filled on first use).
        registry: where to download them from when not cached.

    Returns:
        How many CDN references were replaced (0 when the pages were already local).

    Raises:
        AssetsUnavailable: not cached and the registry cannot be reached; the pages keep
            their CDN addresses.
    """
    local = _vendor(site, install(cache_dir, registry))
    replaced = 0
    for page in _pages(site):
        text = page.read_text()
        tags = [(tag, _local_tag(tag, local, page.parent)) for tag in set(TAG.findall(text))]
        new = text
        for tag, local_tag in tags:
            if local_tag != tag:
                replaced += new.count(tag)
                new = new.replace(tag, local_tag)
        new, logos = LOGO.subn(os.path.relpath(site / LOGO_LOCAL, page.parent), new)
        replaced += logos
        if new != text:
            page.write_text(new)
    return replaced


def _local_tag(tag: str, local: dict[str, Path], folder: Path) -> str:
    """A ``<script>`` or ``<link>`` tag pointed at the site's copy of its file.

    Subresource integrity cannot be honoured for a page opened from the disk (its files have
    no CORS origin, so Chromium blocks them): the copy is checked against the tag's hash
    here instead and the attributes dropped.
    """
    address = ADDRESS.search(tag)
    if address is None or address.group(2) not in local:
        return tag
    copy = local[address.group(2)]
    integrity = INTEGRITY.search(tag)
    if integrity:
        algorithm, _, expected = integrity.group(1).partition("-")
        actual = base64.b64encode(hashlib.new(algorithm, copy.read_bytes()).digest()).decode()
        if actual != expected:
            raise AssetsUnavailable(
                f"{copy}: its {algorithm} differs from the integrity the page pins for "
                f"{address.group(2)}"
            )
        tag = CROSSORIGIN.sub("", INTEGRITY.sub("", tag))
    return tag.replace(address.group(2), os.path.relpath(copy, folder), 1)


if __name__ == "__main__":  # deployments/local/setup.sh: fill the cache while online
    from stockpipe.settings import load_settings

    settings = load_settings()
    print(install(settings.validation.docs_assets_dir, settings.validation.npm_registry))

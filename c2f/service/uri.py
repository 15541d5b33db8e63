"""Dataset URI safety: decide whether a client-supplied dataset URI may be read, before anything is queued.

``check_dataset_uri(uri, settings)`` returns the normalised URI or raises :class:`UnsafeURIError` with a
reason that is safe to show to the client. Rules:

* the scheme must be in ``settings.allowed_schemes`` (bare paths count as ``file``); fsspec ``::``
  chaining, opaque ``scheme:...`` forms (``data:``, ``memory:``), control characters and credentials in the
  URI are refused;
* ``file://`` URIs and bare paths must resolve (symlinks followed, ``..`` collapsed) inside
  ``settings.data_root``; a directory must not contain symlinks that lead outside it;
* ``http(s)`` hosts must resolve only to globally routable addresses (no loopback, private, link-local,
  reserved, multicast, CGNAT, ...) unless ``settings.allow_private_hosts``; redirects are followed by hand,
  each hop checked;
* the dataset must not exceed ``settings.max_dataset_bytes``: ``stat`` for files (a directory is the sum of
  its files), ``HEAD`` ``Content-Length`` for http(s), the fsspec filesystem's ``du`` for other schemes.

Remaining gap, by design of a check-then-read scheme: a DNS answer or a symlink can change between this
check and the read. The worker re-runs the check just before training, which narrows that window.

Torch-free and trainer-free: the service imports this module, and so does ``jobs.train``.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import socket
import ssl
import stat as stat_mod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

if TYPE_CHECKING:
    from c2f.service.settings import Settings

MAX_URI_LENGTH = 4096
MAX_REDIRECTS = 5
MAX_DIRECTORY_ENTRIES = 100_000
HEAD_TIMEOUT_SECONDS = 10.0

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_IP_LITERAL_RE = re.compile(r"(?<=://)(?:[^/?#@\[]*@)?\[[0-9A-Fa-f:.]+(?:%25[0-9A-Za-z._~-]+)?\]")


class UnsafeURIError(ValueError):
    """The dataset URI is refused; ``reason`` (also ``str(err)``) is meant for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_dataset_uri(uri: str, settings: Settings) -> str:
    """Return the normalised dataset URI if it is safe to read under ``settings``, else raise UnsafeURIError.

    Local paths come back as absolute, symlink-resolved paths (no ``file://`` prefix); remote URIs come back
    with a lower-case scheme and host.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise UnsafeURIError("dataset_uri is empty")
    uri = uri.strip()
    if len(uri) > MAX_URI_LENGTH:
        raise UnsafeURIError(f"dataset_uri is longer than {MAX_URI_LENGTH} characters")
    if _CONTROL_RE.search(uri):
        raise UnsafeURIError("dataset_uri contains control characters")
    if "::" in _IP_LITERAL_RE.sub("[]", uri):  # an IPv6 host ("http://[::1]/") is not a chain
        raise UnsafeURIError("chained URIs ('::') are not allowed")

    allowed = {s.lower() for s in settings.allowed_schemes}
    scheme = _scheme_of(uri)
    if scheme is None:
        if "file" not in allowed:
            raise UnsafeURIError("local paths are not allowed (scheme 'file' is not in allowed_schemes)")
        return _check_local(Path(uri), settings)
    if scheme not in allowed:
        shown = ", ".join(sorted(allowed)) or "none"
        raise UnsafeURIError(f"scheme '{scheme}' is not allowed (allowed: {shown})")
    if not uri[len(scheme) + 1 :].startswith("//"):
        raise UnsafeURIError(f"'{scheme}:' URIs must have the form {scheme}://...")

    parts = urlsplit(uri)
    if parts.username is not None or parts.password is not None:
        raise UnsafeURIError("credentials in the URI are not allowed")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UnsafeURIError(f"file:// URIs must not name a host ({parts.netloc!r})")
        if parts.query or parts.fragment:
            raise UnsafeURIError("file:// URIs must not have a query or fragment")
        return _check_local(Path(unquote(parts.path)), settings)
    if scheme in ("http", "https"):
        return _check_http(uri, settings)
    return _check_fsspec(scheme, uri, settings)


def _scheme_of(uri: str) -> str | None:
    """The lower-case scheme of ``uri``, or None for a bare path (``x:...`` counts, as in fsspec)."""
    m = _SCHEME_RE.match(uri)
    return m.group(1).lower() if m else None


# ---------------------------------------------------------------- local files


def _check_local(path: Path, settings: Settings) -> str:
    root = Path(settings.data_root).expanduser()
    try:
        root_real = root.resolve(strict=True)
    except (FileNotFoundError, RuntimeError, OSError):
        raise UnsafeURIError("the server's data_root does not exist; local datasets are unavailable") from None
    candidate = path.expanduser()
    if not candidate.is_absolute():
        candidate = root_real / candidate
    # One answer for "outside the data root", "does not exist" and "cannot be resolved": a caller must not
    # learn which server paths exist.
    refused = UnsafeURIError("dataset path is not allowed or does not exist (it must be inside the data root)")
    try:
        real = candidate.resolve(strict=True)
    except (RuntimeError, OSError):  # missing, symlink loop, permission denied, name too long
        raise refused from None
    if not real.is_relative_to(root_real):
        raise refused
    size = _local_size(real, root_real, settings.max_dataset_bytes)
    if size > settings.max_dataset_bytes:
        raise UnsafeURIError(_too_big(size, settings.max_dataset_bytes))
    return str(real)


def _local_size(real: Path, root_real: Path, limit: int) -> int:
    """Bytes of a file, or of every file under a directory; stops counting once over ``limit``.

    Symlinks inside a directory must lead inside the data root; each real directory is counted once.
    """
    st = real.stat()
    if stat_mod.S_ISREG(st.st_mode):
        return st.st_size
    if not stat_mod.S_ISDIR(st.st_mode):
        raise UnsafeURIError("dataset path is neither a regular file nor a directory")
    total = 0
    entries = 0
    seen_dirs: set[Path] = set()
    seen_files: set[Path] = set()
    stack = [real]
    while stack:
        directory = stack.pop()
        if directory in seen_dirs:
            continue
        seen_dirs.add(directory)
        try:
            children = list(os.scandir(directory))
        except OSError as err:
            raise UnsafeURIError(f"cannot list dataset directory: {err.strerror or err}") from None
        for child in children:
            entries += 1
            if entries > MAX_DIRECTORY_ENTRIES:
                raise UnsafeURIError(f"dataset directory has more than {MAX_DIRECTORY_ENTRIES} entries")
            try:
                target = Path(child.path).resolve(strict=True)
            except (OSError, RuntimeError):
                raise UnsafeURIError(f"dataset directory has a broken symlink: {child.name!r}") from None
            if not target.is_relative_to(root_real):
                raise UnsafeURIError(
                    f"dataset directory has a symlink that leads outside the data root: {child.name!r}"
                )
            try:
                child_st = target.stat()
            except OSError:
                continue
            if stat_mod.S_ISDIR(child_st.st_mode):
                stack.append(target)
            elif stat_mod.S_ISREG(child_st.st_mode) and target not in seen_files:
                seen_files.add(target)
                total += child_st.st_size
                if total > limit:
                    return total
    return total


def _too_big(size: int, limit: int) -> str:
    return f"dataset is {size} bytes, over the limit of {limit} bytes (max_dataset_bytes)"


# ---------------------------------------------------------------- http(s)


def _resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (monkeypatched in tests)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def _address_problem(addr: str) -> str | None:
    """Why ``addr`` is not a public address, or None if it is one."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    for attr, label in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(ip, attr):
            return label
    if not ip.is_global:
        return "non-global"
    return None


@dataclass
class HeadResponse:
    status: int
    content_length: int | None
    location: str | None


def _head(url: str, timeout: float) -> HeadResponse:
    """One HEAD request, no redirects followed (monkeypatched in tests)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)  # explicit: an IPv6 host has colons
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn.request("HEAD", target, headers={"User-Agent": "c2f-dataset-check", "Accept-Encoding": "identity"})
        resp = conn.getresponse()
        length = resp.getheader("Content-Length")
        try:
            content_length = int(length) if length is not None else None
        except ValueError:
            content_length = None
        return HeadResponse(resp.status, content_length, resp.getheader("Location"))
    finally:
        conn.close()


def _check_host(parts_host: str | None, port: int, settings: Settings) -> None:
    if not parts_host:
        raise UnsafeURIError("http(s) URI has no host")
    if settings.allow_private_hosts:
        return
    try:
        addrs = _resolve(parts_host, port)
    except (socket.gaierror, UnicodeError, OSError) as err:
        raise UnsafeURIError(f"host {parts_host!r} does not resolve ({err})") from None
    if not addrs:
        raise UnsafeURIError(f"host {parts_host!r} does not resolve")
    for addr in addrs:
        problem = _address_problem(addr)
        if problem:
            raise UnsafeURIError(f"host {parts_host!r} resolves to a {problem} address ({addr}); not allowed")


def _normalise_http(uri: str) -> str:
    """Lower-case scheme and host, no fragment; an IPv6 host written out in full (no "::", which readers such
    as fsspec take for a URL chain)."""
    parts = urlsplit(uri)
    netloc = (parts.hostname or "").lower()
    if ":" in netloc:
        try:
            netloc = ipaddress.IPv6Address(netloc).exploded
        except ValueError:
            raise UnsafeURIError(f"malformed IPv6 host {netloc!r}") from None
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))


def _check_http(uri: str, settings: Settings) -> str:
    try:
        normalised = _normalise_http(uri)
    except ValueError as err:  # bad port
        raise UnsafeURIError(f"malformed URI: {err}") from None
    allowed = {s.lower() for s in settings.allowed_schemes}
    url = normalised
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.scheme not in allowed:
            raise UnsafeURIError(f"redirect to a disallowed scheme ({parts.scheme!r})")
        if parts.username is not None or parts.password is not None:
            raise UnsafeURIError("redirect to a URI with credentials")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        _check_host(parts.hostname, port, settings)
        try:
            resp = _head(url, HEAD_TIMEOUT_SECONDS)
        except (OSError, http.client.HTTPException) as err:
            raise UnsafeURIError(f"cannot reach {parts.hostname}: {err}") from None
        if resp.status in (301, 302, 303, 307, 308) and resp.location:
            url = urljoin(url, resp.location)
            continue
        if resp.status >= 400:
            raise UnsafeURIError(f"HEAD {normalised} returned HTTP {resp.status}")
        if resp.content_length is not None and resp.content_length > settings.max_dataset_bytes:
            raise UnsafeURIError(_too_big(resp.content_length, settings.max_dataset_bytes))
        return normalised
    raise UnsafeURIError(f"more than {MAX_REDIRECTS} redirects")


# ---------------------------------------------------------------- other fsspec schemes (s3, gcs, ...)


def _check_fsspec(scheme: str, uri: str, settings: Settings) -> str:
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri)
    except ImportError as err:
        raise UnsafeURIError(f"scheme '{scheme}' is not available on this server ({err})") from None
    except ValueError as err:
        raise UnsafeURIError(f"scheme '{scheme}' is not supported: {err}") from None
    try:
        if not fs.exists(path):
            raise FileNotFoundError(path)
        size = int(fs.du(path, total=True))
    except FileNotFoundError:
        raise UnsafeURIError(f"dataset {uri!r} does not exist") from None
    except Exception as err:  # noqa: BLE001 - any backend failure is a refusal with its message
        raise UnsafeURIError(f"cannot stat {uri!r}: {type(err).__name__}: {err}") from None
    if size > settings.max_dataset_bytes:
        raise UnsafeURIError(_too_big(size, settings.max_dataset_bytes))
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path, parts.query, parts.fragment))

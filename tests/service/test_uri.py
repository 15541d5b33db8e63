"""Dataset URI safety: every rejection rule of service.uri.check_dataset_uri, and what it accepts."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from c2f.service import uri as uri_mod
from c2f.service.settings import Settings
from c2f.service.uri import HeadResponse, UnsafeURIError, check_dataset_uri

PUBLIC_IP = "93.184.216.34"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "ds").mkdir(parents=True)
    (data / "ds" / "train.txt").write_text("0 1 2\n1 2\n")
    (data / "ds" / "test.txt").write_text("0 3\n")
    (data / "file.csv").write_text("user,item\nu1,i1\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret\n")
    return data


def make_settings(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_root": root, "max_dataset_bytes": 1000}
    values.update(overrides)
    return Settings(**values)


def rejects(uri: str, settings: Settings, fragment: str) -> None:
    with pytest.raises(UnsafeURIError) as info:
        check_dataset_uri(uri, settings)
    assert fragment in info.value.reason, info.value.reason


# ---------------------------------------------------------------- accepted


def test_accepts_bare_relative_absolute_and_file_uri(root: Path) -> None:
    s = make_settings(root)
    real = str((root / "ds").resolve())
    assert check_dataset_uri("ds", s) == real
    assert check_dataset_uri(str(root / "ds"), s) == real
    assert check_dataset_uri(f"file://{root}/ds", s) == real
    assert check_dataset_uri(f"file://localhost{root}/file.csv", s) == str((root / "file.csv").resolve())
    assert check_dataset_uri("./ds/../file.csv", s) == str((root / "file.csv").resolve())  # `..` inside root


def test_accepts_symlink_that_stays_inside_root(root: Path) -> None:
    (root / "alias").symlink_to(root / "ds")
    (root / "ds" / "extra.txt").symlink_to(root / "file.csv")
    assert check_dataset_uri("alias", make_settings(root)) == str((root / "ds").resolve())


# ---------------------------------------------------------------- local paths


def test_rejects_paths_outside_root(root: Path) -> None:
    s = make_settings(root)
    rejects("/etc/passwd", s, "not allowed or does not exist")
    rejects("../outside/secret.txt", s, "not allowed or does not exist")
    rejects(f"file://{root}/../outside/secret.txt", s, "not allowed or does not exist")
    rejects(f"file://{root}/%2e%2e/outside/secret.txt", s, "not allowed or does not exist")
    rejects("~/x", s, "")  # either missing or outside: never inside


def test_rejects_symlink_escape(root: Path) -> None:
    (root / "link").symlink_to(root.parent / "outside")
    rejects("link/secret.txt", make_settings(root), "not allowed or does not exist")
    rejects("link", make_settings(root), "not allowed or does not exist")


def test_rejects_directory_containing_escaping_symlink(root: Path) -> None:
    (root / "ds" / "leak.txt").symlink_to(root.parent / "outside" / "secret.txt")
    rejects("ds", make_settings(root), "symlink that leads outside the data root")


def test_rejects_broken_symlink_and_missing_path(root: Path) -> None:
    s = make_settings(root)
    rejects("missing", s, "not allowed or does not exist")
    (root / "ds" / "dangling").symlink_to(root / "nowhere")
    rejects("ds", s, "broken symlink")


def test_rejects_file_uri_with_host_query_or_missing_root(root: Path, tmp_path: Path) -> None:
    s = make_settings(root)
    rejects("file://evil.example/etc/passwd", s, "must not name a host")
    rejects(f"file://{root}/ds?x=1", s, "query or fragment")
    rejects("ds", make_settings(tmp_path / "no-such-root"), "data_root does not exist")


def test_rejects_local_paths_when_file_scheme_not_allowed(root: Path) -> None:
    s = make_settings(root, allowed_schemes=["https"])
    rejects("ds", s, "local paths are not allowed")
    rejects(f"file://{root}/ds", s, "scheme 'file' is not allowed")


def test_size_limit_file_and_directory_sum(root: Path) -> None:
    (root / "big.txt").write_bytes(b"x" * 1001)
    rejects("big.txt", make_settings(root), "over the limit of 1000 bytes")
    # the directory is the sum of its files: 600 + 600 > 1000 though each file alone fits
    (root / "two").mkdir()
    (root / "two" / "a.txt").write_bytes(b"x" * 600)
    (root / "two" / "sub").mkdir()
    (root / "two" / "sub" / "b.txt").write_bytes(b"x" * 600)
    rejects("two", make_settings(root), "over the limit")
    assert check_dataset_uri("two", make_settings(root, max_dataset_bytes=1200))


# ---------------------------------------------------------------- syntax and schemes


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ds\x00.txt", "control characters"),
        ("d\ns", "control characters"),
        ("x" * 5000, "longer than"),
        ("simplecache::file:///data/ds", "chained"),
        ("zip://train.txt::file:///data/a.zip", "chained"),
        ("ftp://example.com/ds", "scheme 'ftp' is not allowed"),
        ("memory://ds", "scheme 'memory' is not allowed"),
        ("data:text/plain,0 1", "scheme 'data' is not allowed"),
        ("https:example.com/ds", "must have the form"),
        ("https://user:pw@example.com/ds", "credentials"),
        ("https://user@example.com/ds", "credentials"),
    ],
)
def test_rejects_bad_syntax_and_schemes(root: Path, uri: str, fragment: str) -> None:
    rejects(uri, make_settings(root), fragment)


def test_other_fsspec_scheme_size_checked(root: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/c2f-test/small.csv", b"user,item\nu,i\n")
    fs.pipe("/c2f-test/big.csv", b"x" * 2000)
    s = make_settings(root, allowed_schemes=["memory"])
    assert check_dataset_uri("memory://c2f-test/small.csv", s) == "memory://c2f-test/small.csv"
    rejects("memory://c2f-test/big.csv", s, "over the limit")
    rejects("memory://c2f-test/none.csv", s, "does not exist")


def test_unavailable_fsspec_scheme_is_a_refusal(root: Path) -> None:
    rejects("nosuchproto://bucket/ds", make_settings(root, allowed_schemes=["nosuchproto"]), "nosuchproto")


# ---------------------------------------------------------------- http(s): hosts


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("http://localhost/ds.csv", "loopback"),
        ("http://127.0.0.1:8080/ds.csv", "loopback"),
        ("http://0x7f000001/ds.csv", "loopback"),  # numeric forms are resolved like the client would
        ("http://2130706433/ds.csv", "loopback"),
        ("http://10.1.2.3/ds.csv", "private"),
        ("http://192.168.0.10/ds.csv", "private"),
        ("https://172.16.5.4/ds.csv", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://0.0.0.0/ds.csv", "unspecified"),
        ("http://100.64.0.1/ds.csv", "non-global"),
        ("http://240.0.0.1/ds.csv", "reserved"),
        ("http://224.0.0.1/ds.csv", "multicast"),
    ],
)
def test_rejects_non_public_hosts(root: Path, url: str, label: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uri_mod, "_head", _no_network)
    rejects(url, make_settings(root), f"resolves to a {label} address")


@pytest.mark.parametrize(
    ("addr", "label"),
    [
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
    ],
)
def test_rejects_hosts_resolving_to_non_public_ipv6(
    root: Path, addr: str, label: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uri_mod, "_resolve", lambda host, port: [addr])
    monkeypatch.setattr(uri_mod, "_head", _no_network)
    rejects("https://v6.example/ds.csv", make_settings(root), f"resolves to a {label} address")


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("http://[::1]/ds.csv", "loopback"),
        ("http://[::1]:8080/ds.csv", "loopback"),
        ("http://[fd12:3456::1]/ds.csv", "private"),
        ("http://[fe80::1]/ds.csv", "link-local"),
        ("http://[::ffff:10.0.0.1]/ds.csv", "private"),
    ],
)
def test_non_public_ipv6_literal_urls_are_refused(root: Path, url: str, label: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # "[::1]" is a host, not an fsspec "::" chain: it is resolved and refused for what it is
    monkeypatch.setattr(uri_mod, "_head", _no_network)
    rejects(url, make_settings(root), f"resolves to a {label} address")


def test_public_ipv6_literal_url_is_allowed_and_written_without_double_colon(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def head(url: str, timeout: float) -> HeadResponse:
        seen.append(url)
        return HeadResponse(200, 10, None)

    monkeypatch.setattr(uri_mod, "_head", head)
    out = check_dataset_uri("http://[2001:4860:4860::8888]:8080/ds.csv", make_settings(root))
    # exploded, so that the reader (fsspec) cannot mistake the address for a "::" chain
    assert out == "http://[2001:4860:4860:0000:0000:0000:0000:8888]:8080/ds.csv"
    assert "::" not in out and seen == [out]
    assert check_dataset_uri(out, make_settings(root)) == out  # the worker's re-check accepts it
    rejects("simplecache::http://[2001:4860:4860::8888]/ds.csv", make_settings(root), "chained")


def test_rejects_host_when_any_address_is_private(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uri_mod, "_resolve", lambda host, port: [PUBLIC_IP, "10.0.0.7"])
    monkeypatch.setattr(uri_mod, "_head", _no_network)
    rejects("https://mixed.example/ds.csv", make_settings(root), "private address (10.0.0.7)")


def test_rejects_unresolvable_host(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(uri_mod, "_resolve", fail)
    rejects("https://nx.example/ds.csv", make_settings(root), "does not resolve")


def _no_network(url: str, timeout: float) -> HeadResponse:
    raise AssertionError(f"HEAD {url} must not be sent")


def _fake_web(monkeypatch: pytest.MonkeyPatch, dns: dict[str, str], pages: dict[str, HeadResponse]) -> list[str]:
    sent: list[str] = []
    monkeypatch.setattr(uri_mod, "_resolve", lambda host, port: [dns[host]])

    def head(url: str, timeout: float) -> HeadResponse:
        sent.append(url)
        return pages[url]

    monkeypatch.setattr(uri_mod, "_head", head)
    return sent


def test_public_host_accepted_and_normalised(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _fake_web(
        monkeypatch, {"data.example": PUBLIC_IP}, {"https://data.example/ds.csv": HeadResponse(200, 500, None)}
    )
    assert check_dataset_uri("HTTPS://Data.Example/ds.csv", make_settings(root)) == "https://data.example/ds.csv"
    assert sent == ["https://data.example/ds.csv"]


def test_http_size_limit_from_head(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_web(monkeypatch, {"data.example": PUBLIC_IP}, {"https://data.example/big.csv": HeadResponse(200, 5000, None)})
    rejects("https://data.example/big.csv", make_settings(root), "dataset is 5000 bytes, over the limit")


def test_http_error_status_rejected(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_web(monkeypatch, {"data.example": PUBLIC_IP}, {"https://data.example/x.csv": HeadResponse(404, None, None)})
    rejects("https://data.example/x.csv", make_settings(root), "HTTP 404")


def test_redirect_to_private_host_rejected(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_web(
        monkeypatch,
        {"data.example": PUBLIC_IP, "internal.example": "10.0.0.5"},
        {"https://data.example/ds.csv": HeadResponse(302, None, "http://internal.example/admin")},
    )
    rejects("https://data.example/ds.csv", make_settings(root), "private address")


def test_redirect_loop_rejected(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_web(
        monkeypatch,
        {"data.example": PUBLIC_IP},
        {"https://data.example/a": HeadResponse(301, None, "/a")},
    )
    rejects("https://data.example/a", make_settings(root), "redirects")


# ---------------------------------------------------------------- http(s): a real HEAD against a local server


@pytest.fixture
def web_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    served = tmp_path / "www"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def test_local_http_server_with_private_hosts_allowed(root: Path, web_root: tuple[str, Path]) -> None:
    base, served = web_root
    (served / "small.csv").write_bytes(b"u,i\n" * 10)
    (served / "big.csv").write_bytes(b"x" * 4000)
    # default settings: the loopback host alone is refused
    rejects(f"{base}/small.csv", make_settings(root), "loopback")
    allowed = make_settings(root, allow_private_hosts=True)
    assert check_dataset_uri(f"{base}/small.csv", allowed) == f"{base}/small.csv"
    rejects(f"{base}/big.csv", allowed, "over the limit")
    rejects(f"{base}/missing.csv", allowed, "HTTP 404")

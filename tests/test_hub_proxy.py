"""The check that the hub can be reached (atlas.model.hub_reachable) goes the way a download
would: through huggingface_hub's own session, so HTTPS_PROXY (with its credentials), HTTP_PROXY
and NO_PROXY apply. Each test runs a tiny HTTP server on 127.0.0.1 (a proxy, or a hub) that
records what it is asked and stops by itself; nothing leaves the machine."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator

import huggingface_hub
import pytest
from huggingface_hub import constants

from atlas.model import hub_reachable

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
LIFETIME_S = 20.0  # a server stops after this long, whatever happens to the test


class TinyServer:
    """A one-thread HTTP server on 127.0.0.1 that answers each request with ``answer`` and
    closes the connection; ``seen`` holds each request's head (its lines) as it came."""

    def __init__(self, answer: str) -> None:
        self.answer = answer.encode("ascii")
        self.seen: list[list[str]] = []
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def __enter__(self) -> TinyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def _serve(self) -> None:
        deadline = time.monotonic() + LIFETIME_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2)
                head = b""
                try:
                    while b"\r\n\r\n" not in head and len(head) < 65536:
                        chunk = connection.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    self.seen.append(head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n"))
                    connection.sendall(self.answer)
                except OSError:
                    continue


def header(request: list[str], name: str) -> str | None:
    """A header's value in a request's head, by name (any case)."""
    for line in request[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


@pytest.fixture
def network(monkeypatch) -> Iterator[pytest.MonkeyPatch]:
    """No proxy settings but those a test sets, online, and a fresh huggingface_hub session
    (the session reads the proxy settings when it is made), closed again afterwards."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    huggingface_hub.close_session()
    yield monkeypatch
    huggingface_hub.close_session()


def test_the_check_asks_the_https_proxy_with_its_credentials(network):
    """HTTPS_PROXY with a user and password: the proxy is asked to CONNECT to the hub's host,
    with the credentials; the proxy refusing, the hub cannot be reached."""
    with TinyServer("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n") as proxy:
        network.setenv("HF_ENDPOINT", "https://huggingface.co")
        network.setenv("HTTPS_PROXY", proxy.url.replace("//", "//ada:s3cret@"))
        started = time.monotonic()
        assert hub_reachable(timeout=2.0) is False
        assert time.monotonic() - started < 2.0
    assert [request[0] for request in proxy.seen] == ["CONNECT huggingface.co:443 HTTP/1.1"]
    credentials = base64.b64encode(b"ada:s3cret").decode("ascii")
    assert header(proxy.seen[0], "Proxy-Authorization") == f"Basic {credentials}"


def test_a_hub_that_only_the_proxy_reaches_is_reachable(network):
    """A hub whose name does not resolve here (.invalid never does) is reached through the
    proxy, which answers for it."""
    with TinyServer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as proxy:
        network.setenv("HF_ENDPOINT", "http://hub.invalid")
        network.setenv("HTTP_PROXY", proxy.url)
        assert hub_reachable(timeout=2.0) is True
    assert [request[0] for request in proxy.seen] == ["HEAD http://hub.invalid/ HTTP/1.1"]


def test_no_proxy_sends_the_check_straight_to_the_hub(network):
    """NO_PROXY naming the hub's host: the proxy is passed by, the hub asked directly."""
    answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with TinyServer(answer) as proxy, TinyServer(answer) as hub:
        network.setenv("HF_ENDPOINT", hub.url)
        network.setenv("HTTP_PROXY", proxy.url)
        network.setenv("NO_PROXY", "127.0.0.1")
        assert hub_reachable(timeout=2.0) is True
    assert proxy.seen == []
    assert [request[0] for request in hub.seen] == ["HEAD / HTTP/1.1"]

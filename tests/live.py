"""A real uvicorn server on a loopback port, in a thread of the test process (for raw-socket and load tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from benchmarks.net import free_port, raw_request  # noqa: F401  (the tests import them here)
from c2f.service.protocol import HTTP_PROTOCOL


@contextmanager
def live_server(app: Any, **options: Any) -> Iterator[str]:
    """Serve ``app`` (lifespan included) as ``c2f serve`` does (httptools, JSON parser errors); yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=HTTP_PROTOCOL,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=5,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)

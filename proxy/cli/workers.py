"""`serve --workers N`: N gateway processes sharing one port (SO_REUSEPORT), started and stopped together.

The parent resolves the database first (so an embedded PostgreSQL starts once, and stays up while
the workers run), then spawns the workers and only supervises: it forwards SIGTERM/SIGINT/SIGHUP and waits
for every worker to drain. Each worker is a whole gateway: its own key cache, limits, usage log writer
and pool; limits hold over all of them together through the limit ledger (docs/operations.md,
"Limits"). A worker that dies on its own stops the others, so the service fails as one and its
supervisor (systemd, Docker) restarts it whole.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from typing import Any

from proxy.cli.server import run_event_loop, serve_app
from proxy.db.errors import DATABASE_ERRORS, DatabaseUnavailable
from proxy.observability.logging_setup import setup_logging
from proxy.settings import Settings
from proxy.signals import STOP_SIGNALS, StopRequested, unwind_on_stop_signals

log = logging.getLogger(__name__)

MAX_WORKERS = 64


def serve_workers(settings: Settings, count: int) -> int:
    """Run `count` workers until a signal stops them; the exit code is 0 unless a worker failed."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited loop, sockets or pool
    workers = [
        context.Process(target=_worker, args=(settings, index, count), name=f"gateway-worker-{index + 1}")
        for index in range(count)
    ]
    stopping = False

    def stop(signum: int = signal.SIGTERM, frame: Any = None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.pid is not None and worker.exitcode is None:
                os.kill(worker.pid, signal.SIGTERM)  # each drains its requests and its usage log

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    failed = False
    try:
        for worker in workers:
            worker.start()
        if stopping:  # a signal came while they started
            stop()
        log.info(
            "%d workers on http://%s:%d (pids %s)",
            count,
            settings.host,
            settings.port,
            ", ".join(str(w.pid) for w in workers),
        )
        running = list(workers)
        while running:
            ready = multiprocessing.connection.wait([w.sentinel for w in running])
            for worker in [w for w in running if w.sentinel in ready]:
                worker.join()
                running.remove(worker)
                if not stopping or worker.exitcode:
                    failed = failed or not stopping or worker.exitcode != 0
                    log.error(
                        "%s (pid %d) exited with %s%s",
                        worker.name,
                        worker.pid,
                        worker.exitcode,
                        "" if stopping else "; stopping the others",
                    )
                    stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0


def _worker(settings: Settings, index: int, count: int) -> None:
    from proxy.app import create_app
    from proxy.passthrough.ollama_probe import ollama_probe_context

    setup_logging(settings.log_level, settings.log_format)
    unwind_on_stop_signals()  # a stop before serve_app took over the signals ends the worker in order
    try:
        app = create_app(settings)
        if index == 0:  # one warning for the service, not one per worker
            app.cleanup_ctx.append(ollama_probe_context)
        run_event_loop(
            serve_app(
                app,
                settings.host,
                settings.port,
                [f"worker {index + 1} of {count}, pid {os.getpid()}"],
                reuse_port=True,
            )
        )
    except KeyboardInterrupt:  # SIGINT before serve_app took over the signals
        sys.exit(130)
    except StopRequested:  # the parent forwards its stop signal: stopping is what was asked
        sys.exit(0)
    except DatabaseUnavailable as exc:
        print(f"ollama-gateway worker {index + 1}: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        print(f"ollama-gateway worker {index + 1}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)
    except DATABASE_ERRORS as exc:
        print(f"ollama-gateway worker {index + 1}: database error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)

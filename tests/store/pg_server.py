"""A real Postgres for tests and benchmarks: initdb + pg_ctl in a temporary directory, on a free port;
and the fixtures tests import from here (`pg_server`: one server per session, `pg_url`: a new
database per test, `location`: a test run once on SQLite and once on Postgres).

initdb refuses to run as root, so as root (here and in CI) the server runs as the `postgres` system
user Debian's package creates (`runuser -u postgres`), in a directory owned by it. It listens on
127.0.0.1 only, with trust authentication: a throwaway server for one test session.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from modelyard.store.location import register


def binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, *, fsync: bool = False) -> None:
        bindir = binaries()
        if bindir is None:
            raise RuntimeError("no Postgres binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
        self.bin = bindir
        self.root = Path(tempfile.mkdtemp(prefix="modelyard-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.fsync = fsync
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C",
                  "--no-sync")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                f"-c fsync={'on' if self.fsync else 'off'} -c full_page_writes={'on' if self.fsync else 'off'}")
        r = self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "-t", "30",
                      "start", check=False)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}{self.log()}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop", check=False)

    def log(self) -> str:
        try:
            return (self.root / "log").read_text()[-3000:]
        except OSError:
            return ""

    def createdb(self, name: str) -> str:
        """A new empty database; its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def url(self, name: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def wait_down(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            except OSError:
                return
            time.sleep(0.05)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


_names = itertools.count(1)


_shared: PgServer | None = None


def shared_server() -> PgServer:
    """One server for the whole test session, whichever module asks first; stopped at exit."""
    global _shared
    if _shared is None:
        if binaries() is None:
            pytest.skip("Postgres binaries not found in /usr/lib/postgresql/*/bin "
                        "(make dev installs Debian's postgresql)")
        server = PgServer()
        server.start()
        atexit.register(server.destroy)
        _shared = server
    return _shared


# Fixtures: test modules import these functions; the fixture names are pg_server, pg_url, location.
@pytest.fixture(name="pg_server", scope="session")
def pg_server_fixture() -> PgServer:
    return shared_server()


@pytest.fixture(name="pg_url")
def pg_url_fixture(pg_server: PgServer) -> str:
    """A new database of the session's server."""
    return pg_server.createdb(f"t{next(_names)}")


@pytest.fixture(name="location", params=["sqlite", "postgres"])
def location_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store test keeps its records: a SQLite file, or a new Postgres database."""
    if request.param == "sqlite":
        return str(tmp_path / "log.db")
    return register(request.getfixturevalue("pg_url"))

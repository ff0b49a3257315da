"""A throwaway PostgreSQL server on loopback (shared/STACK.md), for tests and benchmarks: the
control plane's own store code never uses it. initdb into a temp folder, pg_ctl start on a free
port with a private socket folder, databases made on demand, stop and delete."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def find_bin() -> Path | None:
    """The newest PostgreSQL bin folder with initdb and pg_ctl, if any."""
    for cand in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (cand / "initdb").exists() and (cand / "pg_ctl").exists():
            return cand
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_pg(cmd: list[str]) -> list[str]:
    # As root, the server must run as the postgres user (initdb refuses root).
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class ThrowawayPostgres:
    """`durable=False` turns fsync and synchronous commit off (tests); benchmarks keep them on
    so that their figures are for a real store."""

    def __init__(self, bin_dir: Path, *, durable: bool, prefix: str = "cortex-pg-") -> None:
        self.bin = bin_dir
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.port = free_port()
        self.base_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start the server; returns the base URL (no database)."""
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(sock, "postgres")
        initdb = [str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        initdb += ["-E", "UTF8", "--no-locale", "--no-sync"]
        subprocess.run(_as_pg(initdb), check=True, capture_output=True)
        opts = f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off"
        start = [str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.root / "log")]
        start += ["-w", "-o", opts, "start"]
        subprocess.run(_as_pg(start), check=True, capture_output=True)
        return self.base_url

    def create_database(self, name: str) -> str:
        """A new database; returns its SQLAlchemy URL."""
        import psycopg

        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.base_url}/{name}"

    def stop(self, mode: str = "fast") -> None:
        stop = [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", mode, "-w", "stop"]
        subprocess.run(_as_pg(stop), check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

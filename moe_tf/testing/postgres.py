"""A throwaway PostgreSQL server on loopback, for the search tests and benchmark: Debian's `postgresql` binaries
(`apt-get install postgresql`), initdb into a directory under /tmp, a free port; stopped and removed on exit."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator


class Unavailable(Exception):
    """No server could be started here; the message says why."""


@contextlib.contextmanager
def local_server() -> Iterator[str]:
    """Yields the storage URL of a running server whose database `optuna` user `optuna` (password `pw`) owns."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        raise Unavailable("no PostgreSQL server binaries (Debian: apt-get install postgresql)")
    bin_dir = os.path.dirname(initdb[-1])
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses root
    root = tempfile.mkdtemp(prefix="moe_tf_pg_")
    data, password_file = os.path.join(root, "data"), os.path.join(root, "password")
    with open(password_file, "w") as f:
        f.write("admin\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = [*as_postgres, f"{bin_dir}/pg_ctl", "-D", data]
    steps = [
        [
            *as_postgres,
            f"{bin_dir}/initdb",
            "-D",
            data,
            "-U",
            "postgres",
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ],
        [*server, "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "-l", f"{root}/log", "-w", "start"],
        [
            *as_postgres,
            f"{bin_dir}/psql",
            "-h",
            root,
            "-p",
            str(port),
            "-U",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE ROLE optuna LOGIN PASSWORD 'pw'",
            "-c",
            "CREATE DATABASE optuna OWNER optuna",
        ],
    ]
    try:
        try:
            if as_postgres:
                shutil.chown(root, "postgres")
                shutil.chown(password_file, "postgres")
            for step in steps:
                done = subprocess.run(step, capture_output=True, text=True, timeout=120)
                if done.returncode != 0:
                    name = os.path.basename(step[len(as_postgres)])
                    raise Unavailable(f"{name} failed: {(done.stderr or done.stdout).strip()[-300:]}")
        except (OSError, LookupError, subprocess.SubprocessError) as e:  # no runuser, no postgres user, a timeout
            raise Unavailable(f"{type(e).__name__}: {e}") from None
        yield f"postgresql://optuna:pw@127.0.0.1:{port}/optuna"  # the caller's errors pass through as they are
    finally:
        subprocess.run([*server, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)

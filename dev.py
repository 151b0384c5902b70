#!/usr/bin/env python3
"""Set up and run the portal with nothing but Python 3.11+.

    python3 dev.py serve   # install, migrate, load the demo world, serve http://127.0.0.1:8000
    python3 dev.py test    # install, run the test suite

Both create ./.venv and install the pinned dependencies (constraints.txt) on first use, and again whenever
pyproject.toml or constraints.txt change. With DATABASE_URL (PostgreSQL) set, the PostgreSQL driver is
installed too (it builds against libpq: Debian's libpq-dev). With REDIS_URL set, `serve` also runs a Celery
worker and beat; without it, tasks run in-process and the schedule fires inside the server.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".portal-installed"


def run(*args: str | Path, **kwargs) -> None:
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT, **kwargs)


def extras() -> list[str]:
    wanted = ["dev"]
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        if not shutil.which("pg_config"):
            sys.exit(
                "DATABASE_URL is PostgreSQL, but pg_config is missing: install libpq-dev (Debian) first."
            )
        wanted.append("postgres")
    wanted.extend(e for e in os.environ.get("PORTAL_EXTRAS", "").split(",") if e)
    return wanted


def install() -> None:
    if not PYTHON.exists():
        print("Creating .venv …", flush=True)
        venv.create(VENV, with_pip=True)
    wanted = extras()
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    digest.update(",".join(wanted).encode())
    if STAMP.exists() and STAMP.read_text() == digest.hexdigest():
        return
    print(f"Installing dependencies ({', '.join(wanted)}) …", flush=True)
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", f".[{','.join(wanted)}]")
    STAMP.write_text(digest.hexdigest())


def manage(*args: str) -> None:
    run(PYTHON, "manage.py", *args)


def serve(addrport: str) -> None:
    manage("migrate", "--no-input")
    manage("seed_demo")
    helpers: list[subprocess.Popen] = []
    if os.environ.get("REDIS_URL"):
        celery = str(BIN / "celery")
        helpers.append(
            subprocess.Popen(
                [
                    celery,
                    "-A",
                    "portal",
                    "worker",
                    "-l",
                    "INFO",
                    "--concurrency",
                    "2",
                    "-Q",
                    "default,audit,scoring,exports",
                ],
                cwd=ROOT,
            )
        )
        helpers.append(
            subprocess.Popen(
                [
                    celery,
                    "-A",
                    "portal",
                    "beat",
                    "-l",
                    "INFO",
                    "--schedule",
                    str(ROOT / "var" / "celerybeat-schedule"),
                ],
                cwd=ROOT,
            )
        )
    print(f"Portal at http://{addrport}/  (admin: /admin/, health: /healthz)", flush=True)
    try:
        manage("serve", addrport)
    except KeyboardInterrupt:
        pass
    finally:
        for helper in helpers:
            helper.send_signal(signal.SIGTERM)
        for helper in helpers:
            helper.wait(timeout=30)


def main() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older interpreter
        sys.exit("The portal needs Python 3.11 or newer.")
    if len(sys.argv) < 2 or sys.argv[1] not in ("serve", "test", "install"):
        sys.exit(__doc__)
    command, rest = sys.argv[1], sys.argv[2:]
    install()
    if command == "serve":
        serve(rest[0] if rest else "127.0.0.1:8000")
    elif command == "test":
        result = subprocess.run([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)
        sys.exit(result.returncode)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Set up and run the portal with nothing but Python 3.11+.

usage:
    python3 dev.py serve [ADDR:PORT]   install, migrate, load the demo world, serve (default 127.0.0.1:8000)
    python3 dev.py test [PYTEST ARGS]  install, run the test suite; arguments go to pytest as they are
                                       (e.g. `python3 dev.py test tests/api -x -k export`)
    python3 dev.py install             only create or update ./.venv
    python3 dev.py --help              this text

Both create ./.venv and install the pinned dependencies (constraints.txt) on first use, and again whenever
pyproject.toml or constraints.txt change. Nothing set: SQLite (var/portal.sqlite3) and Celery in-process.

Environment:
    DATABASE_URL        postgres://… uses PostgreSQL and installs its driver (it builds against libpq:
                        Debian's libpq-dev); tests then run on the database TEST_DATABASE_NAME.
    TEST_DATABASE_NAME  the test database on that server (default test_portal): give each checkout its own
                        to run two test suites on one PostgreSQL at once.
    REDIS_URL           redis://… `serve` also runs a Celery worker and beat; without it, tasks run
                        in-process and the schedule fires inside the server.
    PORTAL_REQUIRE_SERVICES=1
                        tests that need PostgreSQL, Redis, a worker or Chromium fail instead of skipping (CI).
    DEMO_PASSWORD       the demo users' password (default portal-demo).
    PORTAL_EXTRAS       more optional dependency groups of pyproject.toml to install, comma-separated.

`serve` stops on Ctrl-C or SIGTERM, and stops the worker and beat it started.
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
    # Tests fit scorecards (optbinning, scikit-learn); the web server and workers never import them.
    if len(sys.argv) > 1 and sys.argv[1] in ("test", "install"):
        wanted.append("modeling")
    wanted.extend(e for e in os.environ.get("PORTAL_EXTRAS", "").split(",") if e and e not in wanted)
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


def _stop_quietly(signum: int, frame: object) -> None:
    # SIGTERM (a service manager, `kill`) ends `serve` the way Ctrl-C does: children stopped, no traceback.
    raise KeyboardInterrupt


def _celery(*args: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "celery"), "-A", "portal", *args], cwd=ROOT)


def serve(addrport: str) -> None:
    signal.signal(signal.SIGTERM, _stop_quietly)
    processes: list[subprocess.Popen] = []
    try:
        manage("migrate", "--no-input")
        manage("seed_demo")
        if os.environ.get("REDIS_URL"):
            processes.append(
                _celery("worker", "-l", "INFO", "--concurrency", "2", "-Q", "default,audit,scoring,exports")
            )
            schedule = ROOT / "var" / "celerybeat-schedule"
            processes.append(_celery("beat", "-l", "INFO", "--schedule", str(schedule)))
        print(f"Portal at http://{addrport}/  (admin: /admin/, health: /healthz)", flush=True)
        server = subprocess.Popen([str(PYTHON), "manage.py", "serve", addrport], cwd=ROOT)
        processes.insert(0, server)
        server.wait()
    except KeyboardInterrupt:
        pass
    except subprocess.CalledProcessError as failed:
        sys.exit(f"{' '.join(map(str, failed.cmd[1:]))} failed with exit status {failed.returncode}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    if processes and processes[0].returncode not in (0, -signal.SIGTERM, -signal.SIGINT, None):
        sys.exit(processes[0].returncode)


def main() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older interpreter
        sys.exit("The portal needs Python 3.11 or newer.")
    if len(sys.argv) >= 2 and sys.argv[1] in ("-h", "--help", "help"):
        print(__doc__)
        return
    if len(sys.argv) < 2 or sys.argv[1] not in ("serve", "test", "install"):
        sys.exit(__doc__)
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "serve" and (len(rest) > 1 or (rest and rest[0].startswith("-"))):
        sys.exit(f"serve takes at most one ADDR:PORT (or PORT), not {' '.join(rest)}\n{__doc__}")
    install()
    if command == "serve":
        serve(rest[0] if rest else "127.0.0.1:8000")
    elif command == "test":
        result = subprocess.run([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)
        sys.exit(result.returncode)


if __name__ == "__main__":
    main()

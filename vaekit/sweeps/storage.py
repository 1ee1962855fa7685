"""Where a sweep's study lives: an Optuna storage named by a URL.

    (none)                        sqlite:///RUNS_DIR/sweeps.db, made on first use
    sqlite:///PATH                a SQLite file (one machine; several worker processes)
    postgresql://USER@HOST/DB     any SQLAlchemy URL Optuna takes (also mysql://): several machines
    journal:PATH                  an Optuna journal file, e.g. on a shared NFS folder: several machines
                                  without a database server
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from vaekit.errors import DiskError, VaekitUsageError, first_line
from vaekit.sweeps import heartbeat

JOURNAL_PREFIX = "journal:"
SQLITE_PREFIX = "sqlite:///"
DEFAULT_FILE = "sweeps.db"
SQLITE_BUSY_SECONDS = 120  # several workers write one SQLite file: wait for the lock, do not fail
DISK_SIGNS = ("disk I/O error", "database or disk is full", "readonly database", "unable to open database file")
SCHEMA_ATTEMPTS = 5  # two processes opening a new database both try to make its tables; the loser retries
CANNOT_CHECK_NOW = ("SQLITE_READONLY", "SQLITE_BUSY", "SQLITE_LOCKED")  # not damage: a journal to roll back, a lock
SCHEMA_RACE_SIGNS = ("IntegrityError", "already exists")  # what the loser of that race is told


def storage_url(url: str | None, runs_dir: Path) -> str:
    """The storage URL a command uses: ``url``, or the default SQLite file in the runs directory."""
    if url:
        return url
    return f"{SQLITE_PREFIX}{(Path(runs_dir) / DEFAULT_FILE).resolve()}"


def local_file(url: str) -> Path | None:
    """The file a SQLite or journal storage lives in (None for a database server)."""
    if url.startswith(JOURNAL_PREFIX):
        return Path(url[len(JOURNAL_PREFIX):])
    if url.startswith(SQLITE_PREFIX):
        return Path(url[len(SQLITE_PREFIX):])
    return None


def _with_installed_driver(url: str) -> str:
    """SQLAlchemy 2.1 reads postgresql:// as psycopg 3; use psycopg2 (vaekit[postgresql]) when only it is
    installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def open_storage(url: str, create: bool):
    """An Optuna storage for ``url``. With ``create`` False a SQLite or journal file must exist
    (reading a sweep never makes a database).

    Raises:
        VaekitUsageError: no such file, an unknown scheme, or a database driver that is not installed.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happens
    file = local_file(url)
    if file is not None and not create and not file.is_file():
        raise VaekitUsageError(f"no sweep storage at {file} (run `vaekit sweep run` first, or pass --storage)")
    if url.startswith(SQLITE_PREFIX):
        check_sqlite_file(file)
    if file is not None and create:
        file.parent.mkdir(parents=True, exist_ok=True)
    if url.startswith(JOURNAL_PREFIX):
        return JournalStorage(JournalFileBackend(str(file)))
    if "://" not in url:
        raise VaekitUsageError(f"--storage '{url}': expected sqlite:///PATH, postgresql://..., mysql://... or "
                               "journal:PATH")
    url = _with_installed_driver(url)
    engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}} if file is not None else {}
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with file_lock(file if create else None), heartbeat.quiet_experimental():
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat.storage_options())
        except Exception as error:  # noqa: BLE001 - SQLAlchemy raises many kinds for a bad URL or server
            if "DB access module" in str(error):
                raise VaekitUsageError(f"--storage {url.split('://')[0]}://: its database driver is not installed "
                                       "(PostgreSQL: pip install 'vaekit[postgresql]')") from None
            if attempt + 1 < SCHEMA_ATTEMPTS and any(sign in type(error).__name__ + str(error)
                                                     for sign in SCHEMA_RACE_SIGNS):
                time.sleep(0.5 * (attempt + 1))  # another process made the tables at the same moment
                continue
            raise VaekitUsageError(f"--storage: cannot open {url}: {str(error).splitlines()[0]}") from None


def check_sqlite_file(file: Path) -> None:
    """Refuse a damaged SQLite file before anything opens it for writing: ``PRAGMA quick_check`` over a
    read-only connection (``mode=ro``: the check writes nothing, not even a journal).

    Raises:
        VaekitUsageError: the file is not a database, or its pages are damaged; the file is unchanged.
    """
    import sqlite3

    if not file.is_file() or file.stat().st_size == 0:  # no file yet, or an empty database: nothing to check
        return
    try:
        with contextlib.closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True,
                                                timeout=SQLITE_BUSY_SECONDS)) as connection:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as error:
        if getattr(error, "sqlite_errorname", "").startswith(CANNOT_CHECK_NOW):
            return  # a killed writer's journal, which only a read-write open rolls back: Optuna's open does
        problems = [str(error)]
    if problems != ["ok"]:
        problem = problems[0].replace("*** in database main ***", "").strip().splitlines()[0]
        raise VaekitUsageError(f"{file} is damaged ({problem}); nothing was written to it: restore it from a "
                               "copy, or start a new file with --storage sqlite:///NEW.db")


@contextlib.contextmanager
def file_lock(file: Path | None):
    """Hold an exclusive lock on ``FILE.lock``: while a SQLite storage opens, so two worker processes
    started together on a new file do not both create its tables (SQLite reports the loser's CREATE TABLE
    as an error, not a wait), and around a journal file's one-off decisions (``vaekit.sweeps.claims``).
    A database server, or a system without fcntl, relies on the retry above."""
    try:
        import fcntl
    except ImportError:  # Windows
        fcntl = None
    if file is None or fcntl is None:
        yield
        return
    with open(file.with_name(file.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def storage_errors(url: str):
    """Turn an error of the storage itself (a damaged file found mid-command, a lost server) into one
    line: DiskError (exit 74) when the file system refused, else VaekitUsageError (exit 2)."""
    import optuna
    import sqlalchemy

    try:
        yield
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as error:
        cause = error.__cause__ or error.__context__ or error  # Optuna wraps SQLAlchemy's error in its own
        detail = first_line(getattr(cause, "orig", None) or cause)
        if any(sign in detail for sign in DISK_SIGNS):
            raise DiskError(f"sweep storage {url}: {detail}; free space or fix the permissions, then run the "
                            "command again") from None
        raise VaekitUsageError(f"sweep storage {url}: {detail}; check it (a database server that is up, a file "
                               "that is intact, else restored from a copy) and run the command again") from None

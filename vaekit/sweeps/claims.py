"""Atomic changes of a trial's state: one process wins each, on every storage vaekit supports.

Optuna moves a trial WAITING -> RUNNING (or RUNNING -> FAIL for a silent heartbeat) by reading its
state and then writing the new one. On SQLite the read is not part of the write's transaction (the row
lock Optuna asks for, SELECT ... FOR UPDATE, does not exist there), so two workers can both read
WAITING and both take the trial: the same grid point ran twice in about one try of four.

Here the check and the change are one statement, ``UPDATE trials SET state = NEW WHERE trial_id = ?
AND state = OLD``: the database applies it to the row once, and the number of rows it changed says
whether this process won. SQLite, PostgreSQL and MySQL alike. A journal file is already decided by the
order of its log: every change is appended under the journal's file lock, and when the log is replayed
only the first WAITING -> RUNNING of a trial takes effect (Optuna's ``JournalStorage``).

A one-off decision that is not a state change (which process queues a lost grid point again) is a row
only one process can insert: a study attribute, whose (study, key) pair the database keeps unique; a
journal file is locked (FILE.vaekit.lock) around the check and the write.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState


def database_of(storage) -> optuna.storages.RDBStorage | None:
    """The RDBStorage behind ``storage`` (Optuna wraps it in a cache), or None for a journal."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def _move(database: optuna.storages.RDBStorage, trial_id: int, old: TrialState, new: TrialState) -> bool:
    """One conditional UPDATE; True when it changed the row (this process made the move)."""
    from optuna.storages._rdb import models  # Optuna's own table definition: the enum's stored type
    from sqlalchemy import update

    stamp = {"datetime_start": datetime.now()} if new == TrialState.RUNNING else {"datetime_complete": datetime.now()}
    statement = (update(models.TrialModel)
                 .where(models.TrialModel.trial_id == trial_id, models.TrialModel.state == old)
                 .values(state=new, **stamp))
    with database.engine.begin() as connection:
        return connection.execute(statement).rowcount == 1


def claim_waiting(storage, trial_id: int) -> bool:
    """Move a WAITING trial to RUNNING; True for exactly one of the processes that try at once."""
    database = database_of(storage)
    if database is not None:
        return _move(database, trial_id, TrialState.WAITING, TrialState.RUNNING)
    try:
        return storage.set_trial_state_values(trial_id, state=TrialState.RUNNING)  # journal: the log decides
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def fail_running(storage, trial_id: int) -> bool:
    """Move a RUNNING trial to FAIL; True for exactly one of the processes that try at once (database
    storages: the only ones with heartbeats, hence the only ones that fail another worker's trial)."""
    database = database_of(storage)
    if database is not None:
        return _move(database, trial_id, TrialState.RUNNING, TrialState.FAIL)
    try:
        return storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def claim_once(storage, study_id: int, key: str, journal: Path | None = None) -> bool:
    """Record the study attribute ``key``; True for exactly one process of all that ever try (database:
    the insert that does not break the unique (study_id, key) constraint; journal file ``journal``:
    the process that finds the key missing while it holds the file's lock)."""
    database = database_of(storage)
    if database is None:
        from vaekit.sweeps.storage import file_lock

        with file_lock(journal.with_name(journal.name + ".vaekit")):  # FILE.lock is Optuna's own
            if key in storage.get_study_system_attrs(study_id):
                return False
            storage.set_study_system_attr(study_id, key, True)
            return True
    from optuna.storages._rdb import models
    from sqlalchemy import exc, insert

    statement = insert(models.StudySystemAttributeModel).values(study_id=study_id, key=key, value_json="true")
    try:
        with database.engine.begin() as connection:
            connection.execute(statement)
    except exc.IntegrityError:
        return False
    return True

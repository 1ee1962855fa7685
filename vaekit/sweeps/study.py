"""Create or join a sweep's Optuna study, and hand out its trials to workers.

A grid is queued when the study is created: the one process whose ``create_new_study`` succeeds (the
storage makes that atomic, also across machines) enqueues the first ``--trials`` grid points as
WAITING trials and then records the sweep's settings; other processes wait for those settings. A
later command with a larger ``--trials`` queues the next points, each once (``extend_grid``).
Workers take WAITING trials by moving them to RUNNING in one atomic step (``vaekit.sweeps.claims``),
so no grid point runs twice. An interrupted trial is queued again (see ``vaekit.sweeps.trial``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import Trial, TrialState

from vaekit.errors import VaekitUsageError
from vaekit.sweeps.claims import claim_once, claim_waiting
from vaekit.sweeps.heartbeat import queue_again, retry_lost_trials
from vaekit.sweeps.storage import local_file, open_storage

if TYPE_CHECKING:  # the plan imports the domains, hence torch: a process that only takes trials does not
    from vaekit.sweeps.plan import SweepPlan

SETTINGS_ATTR = "vaekit"
SETTLE_SECONDS = 60  # how long a joining process waits for the creator to queue the grid


def _sampler(plan: SweepPlan):
    # A grid's trials all come from the queue with fixed values; the sampler never draws one.
    return optuna.samplers.TPESampler() if plan.sampler == "tpe" else optuna.samplers.RandomSampler()


def _pruner(plan: SweepPlan):
    return optuna.pruners.MedianPruner() if plan.prune else optuna.pruners.NopPruner()


def _wait_for_settings(storage, study_id: int, name: str) -> dict:
    deadline = time.monotonic() + SETTLE_SECONDS
    while SETTINGS_ATTR not in (attrs := storage.get_study_user_attrs(study_id)):
        if time.monotonic() > deadline:
            raise VaekitUsageError(f"study '{name}' has no vaekit settings: it was not made by `vaekit sweep run`, "
                                   "or its creator stopped while queueing the grid; delete it (optuna delete-study "
                                   "--study-name NAME --storage URL) or choose another --study")
        time.sleep(0.5)
    return attrs[SETTINGS_ATTR]


# What a later command may not change, as its messages name it. A study recorded before vaekit kept
# a setting (config_content, data) is not held to it.
FIXED = {"domain": "domain", "space": "space", "objective": "objective", "direction": "direction",
         "sampler": "sampler", "trials": "trials", "config": "--config", "config_content": "--config file content",
         "set": "--set", "data": "--data"}
ALWAYS_RECORDED = ("domain", "space", "objective", "direction", "sampler", "trials")


def _same_setting(key: str, recorded, wanted, grid: bool) -> bool:
    if key != "trials":
        return recorded == wanted
    # a random or tpe study takes any budget; a grid study may grow (its next points are queued)
    return not grid or recorded is None or wanted >= recorded


def _check_same_sweep(plan: SweepPlan, recorded: dict) -> None:
    wanted = plan.study_attrs()
    for key, label in FIXED.items():
        if key not in recorded and key not in ALWAYS_RECORDED:
            continue
        if not _same_setting(key, recorded.get(key), wanted[key], bool(plan.grid)):
            raise VaekitUsageError(f"study '{plan.study}' was started with another {label} ({recorded.get(key)!r}, "
                                   f"now {wanted[key]!r}): every trial of a study trains with the same settings; run "
                                   "it with the same ones or choose another --study")


def _refuse_foreign_runs(plan: SweepPlan) -> None:
    """A new study must not reuse the run ids of another study of the same name (made with another
    storage, or deleted): its trials would find their run directories taken."""
    taken = sorted(Path(plan.runs_dir).glob(f"{plan.study}-t[0-9][0-9][0-9]*"))
    if taken:
        raise VaekitUsageError(f"{taken[0]} exists but the storage {plan.storage} has no study '{plan.study}' "
                               "(another storage, or a deleted study?); choose another --study or --runs-dir")


def join_study(plan: SweepPlan) -> optuna.Study:
    """The plan's study: created (with its grid queued) by the first process, joined by the others.

    Raises:
        VaekitUsageError: the study exists with other settings (space, objective, sampler, ...).
    """
    file = local_file(plan.storage)
    if file is not None and not file.exists():
        _refuse_foreign_runs(plan)  # before the file is made
    storage = open_storage(plan.storage, create=True)
    direction = optuna.study.StudyDirection.MAXIMIZE if plan.objective.direction == "max" else \
        optuna.study.StudyDirection.MINIMIZE
    if plan.study not in {s.study_name for s in storage.get_all_studies()}:
        _refuse_foreign_runs(plan)
    try:
        study_id = storage.create_new_study([direction], plan.study)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study_id, created = storage.get_study_id_from_name(plan.study), False
    study = optuna.load_study(study_name=plan.study, storage=storage, sampler=_sampler(plan), pruner=_pruner(plan))
    if created:
        for number, params in enumerate(plan.grid):
            study.enqueue_trial(params, user_attrs={"grid_point": number})
        storage.set_study_user_attr(study_id, SETTINGS_ATTR, plan.study_attrs())
    else:
        recorded = _wait_for_settings(storage, study_id, plan.study)
        _check_same_sweep(plan, recorded)
        extend_grid(study, plan, recorded)
        requeue_lost_grid_points(study, plan)
    return study


def extend_grid(study: optuna.Study, plan: SweepPlan, recorded: dict) -> list[int]:
    """Queue the grid points a larger ``--trials`` adds to a grid study, each once of all processes that
    try (``claims.claim_once``), and record the new count. Returns the points this process queued."""
    start = recorded.get("trials") or len(plan.grid)
    queued = []
    for point in range(start, len(plan.grid)):
        if claim_once(study._storage, study._study_id, f"vaekit:grid_point:{point}", local_file(plan.storage)):
            study.enqueue_trial(plan.grid[point], user_attrs={"grid_point": point})
            queued.append(point)
    # read again just before writing: another process may have grown the study further meanwhile
    current = study._storage.get_study_user_attrs(study._study_id)[SETTINGS_ATTR]
    if len(plan.grid) > (current.get("trials") or len(plan.grid)):
        study._storage.set_study_user_attr(study._study_id, SETTINGS_ATTR, {**current, "trials": len(plan.grid)})
    return queued


def run_id_of(plan: SweepPlan, trial: Trial | optuna.trial.FrozenTrial) -> str:
    """``<study>-t<NNN>``; a retry keeps the run id of the trial it retries."""
    return trial.user_attrs.get("run_id") or f"{plan.study}-t{trial.number:03d}"


LIVE_STATES = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)


def failed_of_its_own(frozen: optuna.trial.FrozenTrial) -> bool:
    """Whether a FAIL trial failed for a reason of its own (NaN, a bad combination of values, ...), not
    one from outside: stopped by a signal, its worker lost (failed by its silent heartbeat, without an
    error), or its run directory made by another worker that had taken the same trial (possible before
    claims were atomic: a first attempt finds its run id free, ``plan._refuse_foreign_runs``)."""
    error, run_id = frozen.user_attrs.get("error"), frozen.user_attrs.get("run_id")
    return error is not None and not frozen.user_attrs.get("interrupted") \
        and not error.startswith(f"run '{run_id}' already exists")


def requeue_lost_grid_points(study: optuna.Study, plan: SweepPlan) -> list[int]:
    """Queue again every grid point none of whose trials is waiting, running, finished or failed of its
    own (``failed_of_its_own``), with its last trial's run id; one process does it for each such trial
    (``claims.claim_once``). Returns the grid points queued."""
    by_point: dict[int, list[optuna.trial.FrozenTrial]] = {}
    for frozen in study.get_trials(deepcopy=False):
        if "grid_point" in frozen.user_attrs:
            by_point.setdefault(frozen.user_attrs["grid_point"], []).append(frozen)
    queued = []
    for point, trials in sorted(by_point.items()):
        if point >= len(plan.grid) or any(t.state in LIVE_STATES or failed_of_its_own(t) for t in trials):
            continue
        last = max(trials, key=lambda t: t.number)
        if claim_once(study._storage, study._study_id, f"vaekit:requeued:{last.number}", local_file(plan.storage)):
            queue_again(study, last, plan.grid[point], run_id_of(plan, last))
            queued.append(point)
    return queued


def take_waiting(study: optuna.Study) -> Trial | None:
    """Move one WAITING trial to RUNNING and return it (None when the queue is empty). The move is
    atomic (``vaekit.sweeps.claims``): of workers that try one trial at once, one wins; the others
    take another, and read the queue again when they lost every one they tried."""
    storage, study_id = study._storage, study._study_id
    while waiting := storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        for frozen in waiting:  # a lost claim leaves that trial RUNNING: the next read no longer has it
            if claim_waiting(storage, frozen._trial_id):
                return Trial(study, frozen._trial_id)
    return None


def counted_trials(trials: list[optuna.trial.FrozenTrial]) -> int:
    """The trials that count toward --trials: all but the failed ones that were queued again (interrupted,
    or lost with their worker), whose retry counts in their place."""
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    return sum(not (t.state == TrialState.FAIL and t.number in retried) for t in trials)


def next_trial(study: optuna.Study, plan: SweepPlan) -> Trial | None:
    """The next trial to run: a queued one (grid points, retries), else for random and tpe a newly
    sampled one while fewer than ``plan.trials`` count toward the budget; None when the sweep is done.
    Trials of workers that died silently are queued again first (``vaekit.sweeps.heartbeat``)."""
    retry_lost_trials(study)
    trial = take_waiting(study)
    if trial is not None or plan.grid:
        return trial
    counted = counted_trials(study.get_trials(deepcopy=False))
    return study.ask() if counted < plan.trials else None

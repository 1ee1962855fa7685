"""Worker processes for tests/test_sweep_claims.py, in a module of their own: a spawned process imports
only this (optuna and vaekit.sweeps.study, no torch), so six of them start in well under a second."""

from __future__ import annotations

import multiprocessing

import optuna

from vaekit.sweeps.heartbeat import retry_lost_trials
from vaekit.sweeps.storage import open_storage
from vaekit.sweeps.study import take_waiting

WORKERS = 6


def run_together(target, url: str, names: list[str]) -> list:
    """``target(url, names, barrier, results)`` in WORKERS processes; what they put in ``results``
    (one item per process and study)."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(WORKERS), context.Queue()
    processes = [context.Process(target=target, args=(url, names, barrier, results)) for _ in range(WORKERS)]
    for process in processes:
        process.start()
    items = [results.get(timeout=300) for _ in range(len(names) * WORKERS)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return items


def claim_every_round(url: str, studies: list[str], barrier, results) -> None:
    """One worker process: in each round, wait for all the others, then take trials until none waits."""
    storage = open_storage(url, create=False)
    for name in studies:
        study = optuna.load_study(study_name=name, storage=storage)
        barrier.wait(timeout=120)
        taken = []
        while (trial := take_waiting(study)) is not None:
            taken.append(trial.number)
        results.put((name, taken))


def fail_stale_together(url: str, names: list[str], barrier, results) -> None:
    """One worker process: at the same moment as the others, fail the study's silent trials."""
    study = optuna.load_study(study_name=names[0], storage=open_storage(url, create=False))
    barrier.wait(timeout=120)
    retry_lost_trials(study)
    results.put(names[0])


def requeue_together(url: str, names: list[str], barrier, results) -> None:
    """One worker process: at the same moment as the others, queue the study's lost grid points again
    (the grid is the study's user attribute ``grid``)."""
    from types import SimpleNamespace

    from vaekit.sweeps.study import requeue_lost_grid_points

    study = optuna.load_study(study_name=names[0], storage=open_storage(url, create=False))
    plan = SimpleNamespace(study=names[0], storage=url, grid=tuple(study.user_attrs["grid"]))
    barrier.wait(timeout=120)
    results.put(requeue_lost_grid_points(study, plan))

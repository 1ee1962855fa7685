"""`vaekit sweep`: the space, its checks, and tiny sweeps in this process (a trial is ~2 s)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_MODEL_OPTIONS
from vaekit.cli import app
from vaekit.errors import VaekitUsageError
from vaekit.sweeps import study as study_module
from vaekit.sweeps.space import parse_space

runner = CliRunner()

# Every trial: the tiny conv2d, one epoch, one thread, no step log.
TINY_SWEEP_SETS = ["--set", f"model.options={json.dumps(TINY_MODEL_OPTIONS)}", "--set", "train.batch_size=64",
                   "--set", "train.epochs=1", "--set", "threads=1", "--set", "train.log_every_steps=0"]


def sweep_command(space: Path, corpus: Path, runs: Path, *extra: str) -> list[str]:
    return ["sweep", "run", "arc", "--space", str(space), "--data", str(corpus), "--runs-dir", str(runs),
            *TINY_SWEEP_SETS, *extra]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def trials_of(runs: Path, study: str, storage: str | None = None) -> list[optuna.trial.FrozenTrial]:
    url = storage or f"sqlite:///{runs / 'sweeps.db'}"
    return optuna.load_study(study_name=study, storage=url).get_trials()


def test_space_axes_kinds_and_overrides():
    space = parse_space({"model.latent_dim": [10, 16], "train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
                         "model.options.hidden": [16],
                         "beta": {"one_of": {"ae": {"beta.schedule": "constant", "beta.max_beta": 0.0},
                                             "three_phase": {"beta.schedule": "three_phase"}}}}, "s.yaml")
    assert space.names == ["model.latent_dim", "train.lr", "model.options.hidden", "beta"]
    assert space.axis("beta").labels == ["ae", "three_phase"]
    assert space.axis("train.lr").distribution().log
    layer = space.overrides({"model.latent_dim": 16, "train.lr": 1e-3, "model.options.hidden": 16, "beta": "ae"})
    assert layer == {"model": {"latent_dim": 16, "options": {"hidden": 16}}, "train": {"lr": 1e-3},
                     "beta": {"schedule": "constant", "max_beta": 0.0}}
    with pytest.raises(VaekitUsageError, match="cannot enumerate"):
        space.grid()
    grid = parse_space({"seed": [0, 1], "model.latent_dim": [2, 3, 4]}, "s").grid()
    assert len(grid) == 6 and grid[1] == {"seed": 0, "model.latent_dim": 3}


BAD_SPACES = {
    "unknown key": ("model.latnt_dim: [4]\n", [], "did you mean 'model.latent_dim'"),
    "empty list": ("model.latent_dim: []\n", [], "empty list"),
    "range under grid": ("train.lr: {low: 0.001, high: 0.01}\n", [], "cannot enumerate"),
    "bad value": ("model.latent_dim: [4, 0]\n", [], "model.latent_dim must be at least 1, got 0"),
    "bad model option": ("model.options.recon_loss: [focal, bogus]\n", [], "recon_loss 'bogus'"),
    "unknown bundle key": ("beta:\n  one_of:\n    a: {beta.schedul: constant}\n", [], "did you mean 'beta.schedule'"),
    "range ends": ("train.lr: {low: 0.01, high: 0.001}\n", ["--sampler", "random", "--trials", "2"], "below high"),
    "too many trials": ("model.latent_dim: [2, 3]\n", ["--trials", "3"], "has only 2 points"),
    "unknown metric": ("model.latent_dim: [2]\n", ["--metric", "pixel_acc"], "did you mean 'pixel_accuracy'"),
    "tpe without trials": ("model.latent_dim: [2]\n", ["--sampler", "tpe"], "needs --trials"),
}


@pytest.mark.parametrize("case", BAD_SPACES, ids=list(BAD_SPACES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, tmp_path, arc_corpus):
    text, extra, expected = BAD_SPACES[case]
    runs = tmp_path / "runs"
    result = runner.invoke(app, sweep_command(write(tmp_path / "space.yaml", text), arc_corpus, runs, *extra))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.output
    assert not runs.exists()


def test_grid_sweep_end_to_end(tmp_path, arc_corpus):
    space = write(tmp_path / "space.yaml", "model.latent_dim: [2, 3]\ntrain.lr: [0.001, 1.0e+30]\n")
    runs = tmp_path / "runs"
    result = runner.invoke(app, sweep_command(space, arc_corpus, runs, "--study", "tiny"))
    assert result.exit_code == 0, result.output
    trials = trials_of(runs, "tiny")
    states = sorted((t.params["model.latent_dim"], t.params["train.lr"], t.state.name) for t in trials)
    # lr 1e30 makes the loss NaN: that trial is FAIL with its one-line error, and the sweep goes on
    assert states == [(2, 0.001, "COMPLETE"), (2, 1e30, "FAIL"), (3, 0.001, "COMPLETE"), (3, 1e30, "FAIL")]
    assert all("non-finite" in t.user_attrs["error"] for t in trials if t.state.name == "FAIL")
    assert sorted(p.name for p in runs.glob("tiny-t*")) == [f"tiny-t00{i}" for i in range(4)]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    for trial in complete:
        run = runs / trial.user_attrs["run_id"]
        provenance = json.loads((run / "provenance.json").read_text())
        assert provenance["sweep"]["study"] == "tiny" and provenance["sweep"]["trial"] == trial.number
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert trial.value == pytest.approx(records[-1]["val_pixel_accuracy"])

    report = runner.invoke(app, ["sweep", "report", "tiny", "--runs-dir", str(runs), "--json",
                                 "--pareto", "pixel_accuracy,kl"])
    assert report.exit_code == 0, report.output
    document = json.loads(report.output)
    assert document["objective"] == "pixel_accuracy" and document["direction"] == "max"
    assert [t["state"] for t in document["trials"]][:2] == ["COMPLETE", "COMPLETE"]  # sorted, failures last
    assert {t["run_id"] for t in document["trials"]} == {f"tiny-t00{i}" for i in range(4)}
    assert document["trials"][0]["value"] >= document["trials"][1]["value"]
    assert "pixel_accuracy" in document["trials"][0]["results"]["test"]
    assert document["pareto"] and all(Path(p).is_file() for p in document["plots"])
    listed = json.loads(runner.invoke(app, ["sweep", "list", "--runs-dir", str(runs), "--json"]).output)
    assert listed["studies"][0]["states"] == {"COMPLETE": 2, "FAIL": 2}
    # trial runs are ordinary runs
    assert runner.invoke(app, ["report", complete[0].user_attrs["run_id"], "--runs-dir", str(runs)]).exit_code == 0

    again = runner.invoke(app, sweep_command(space, arc_corpus, runs, "--study", "tiny"))  # nothing left to do
    assert again.exit_code == 0 and len(trials_of(runs, "tiny")) == 4
    other = runner.invoke(app, sweep_command(space, arc_corpus, runs, "--study", "tiny", "--metric", "loss"))
    assert other.exit_code == 2 and "another objective" in other.output
    longer = runner.invoke(app, sweep_command(space, arc_corpus, runs, "--study", "tiny", "--set", "train.epochs=3"))
    assert longer.exit_code == 2 and "was started with another --set" in " ".join(longer.output.split())
    old_spelling = runner.invoke(app, sweep_command(space, arc_corpus, runs, "--study", "tiny", "--objective", "loss"))
    assert old_spelling.exit_code == 2 and "--objective is now --metric" in old_spelling.output


def test_a_grid_study_grows_with_a_larger_trials_and_refuses_a_smaller_one(tmp_path, arc_corpus):
    space, runs = write(tmp_path / "s.yaml", "model.latent_dim: [2, 3, 4]\n"), tmp_path / "runs"
    first = runner.invoke(app, sweep_command(space, arc_corpus, runs, "--study", "g", "--trials", "1"))
    assert first.exit_code == 0, first.output
    grown = runner.invoke(app, sweep_command(space, arc_corpus, runs, "--study", "g", "--trials", "3"))
    assert grown.exit_code == 0, grown.output
    trials = trials_of(runs, "g")
    assert [(t.state.name, t.user_attrs["grid_point"], t.params["model.latent_dim"]) for t in trials] == \
        [("COMPLETE", 0, 2), ("COMPLETE", 1, 3), ("COMPLETE", 2, 4)]  # the first point is not trained again
    smaller = runner.invoke(app, sweep_command(space, arc_corpus, runs, "--study", "g", "--trials", "2"))
    assert smaller.exit_code == 2 and "started with another trials (3, now 2)" in " ".join(smaller.output.split())
    assert len(trials_of(runs, "g")) == 3


def test_a_worker_that_read_the_settings_before_another_grew_the_grid_does_not_shrink_it(tmp_path, arc_corpus,
                                                                                          monkeypatch):
    space, runs = write(tmp_path / "s.yaml", "model.latent_dim: [2, 3, 4]\n"), tmp_path / "runs"
    for trials in ("1", "3"):  # made with one point, then grown by a worker to three
        result = runner.invoke(app, sweep_command(space, arc_corpus, runs, "--study", "g", "--trials", trials))
        assert result.exit_code == 0, result.output
    real = study_module._wait_for_settings
    monkeypatch.setattr(study_module, "_wait_for_settings", lambda *a: {**real(*a), "trials": 1})  # read at --trials 1
    stale = runner.invoke(app, sweep_command(space, arc_corpus, runs, "--study", "g", "--trials", "2"))
    assert stale.exit_code == 0, stale.output
    study = optuna.load_study(study_name="g", storage=f"sqlite:///{runs / 'sweeps.db'}")
    assert study.user_attrs["vaekit"]["trials"] == 3 and len(study.get_trials()) == 3


def test_pruned_trial_keeps_its_run_marked_pruned(tmp_path, arc_corpus, monkeypatch):
    class AlwaysPrune(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    monkeypatch.setattr("vaekit.sweeps.study._pruner", lambda plan: AlwaysPrune())
    space = write(tmp_path / "space.yaml", "model.latent_dim: [2]\n")
    runs = tmp_path / "runs"
    result = runner.invoke(app, sweep_command(space, arc_corpus, runs, "--prune", "--set", "train.epochs=3"))
    assert result.exit_code == 0, result.output
    (trial,) = trials_of(runs, "space")
    assert trial.state.name == "PRUNED" and trial.user_attrs["pruned_after_epoch"] == 1
    run = runs / trial.user_attrs["run_id"]
    assert json.loads((run / "provenance.json").read_text())["sweep"]["pruned_after_epoch"] == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert "test" in json.loads((run / "results" / "metrics.json").read_text())


def test_report_and_list_refuse_a_missing_storage_without_making_one(tmp_path):
    for command in (["sweep", "report", "nope"], ["sweep", "list"]):
        result = runner.invoke(app, [*command, "--runs-dir", str(tmp_path / "runs")])
        assert result.exit_code == 2 and "no sweep storage" in result.output
    assert not (tmp_path / "runs").exists()


def test_report_table_fits_a_narrow_terminal_without_cutting_run_ids():
    """At 80 columns the run ids and varied keys are printed whole; metrics that do not fit are left out
    and named in the caption, never cut to 'pixe…'."""
    from rich.console import Console

    from vaekit.cli.sweep import _report_table

    metrics = ["pixel_accuracy", "nonbackground_accuracy", "kl", "loss", "mse"]
    document = {"domain": "arc", "objective": "pixel_accuracy", "direction": "maximize", "sampler": "grid",
                "space": ["model.latent_dim", "beta"], "metrics": metrics,
                "trials": [{"number": n, "state": "COMPLETE", "run_id": f"arc_fallback-t{n:03d}",
                            "params": {"model.latent_dim": 10 + n, "beta": "three_phase"}, "value": 0.87,
                            "results": {"test": {m: 0.8612 for m in metrics}}} for n in range(3)]}
    for width, shown in ((80, False), (300, True)):
        console = Console(width=width, record=True)
        console.print(_report_table("arc_fallback", document, width))
        text = console.export_text()
        assert "…" not in text
        assert all(f"arc_fallback-t00{n}" in text for n in range(3)) and text.count("three_phase") == 3
        assert max(map(len, text.splitlines())) <= width
        caption = " ".join(text[text.find("left out for width"):].split()) if not shown else ""
        assert ("left out for width" in text) is not shown
        assert shown or "test nonbackground_accuracy" in caption and "test mse" in caption


def test_the_arc_sweep_table_shows_the_exact_grid_rate_beside_the_per_cell_figures():
    from vaekit.sweeps.report import main_metrics

    assert main_metrics("arc") == ["pixel_accuracy", "nonbackground_accuracy", "exact_grid_rate", "kl"]
    assert main_metrics("atari") == ["psnr", "foreground_psnr", "kl"]  # a domain without table_metrics: two headline metrics


def test_default_objective_is_each_domains_headline_metric_never_the_total_loss():
    from vaekit.domains import get_domain, list_domains
    from vaekit.sweeps.objective import default_objective

    expected = {"arc": ("pixel_accuracy", "max"), "atari": ("psnr", "max"), "images": ("psnr", "max"),
                "arrays": ("r2", "max"), "sprites": ("pixel_accuracy", "max"),
                "ternary": ("reconstruction_coverage", "max"), "gaussians": ("recon_rot", "min")}
    assert {name: default_objective(get_domain(name)) for name in expected} == expected
    assert all(default_objective(get_domain(name))[0] != "loss" for name in list_domains())

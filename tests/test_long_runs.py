"""Long runs: mid-epoch checkpoints, what --resume does with changed settings, the cosine's length,
validation before anything is written, clean-up on every exit, library calls that leave the caller's
process alone, NaN selection scores, fp16's skipped steps and the augmentation generator."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console

import vaekit
import vaekit.training.events as events_module
from conftest import TINY_MODEL_OPTIONS
from test_training_engine import nan_at_step, records, train, without_wall_times
from vaekit.config import Config, LossConfig, TrainConfig
from vaekit.domains import get_domain
from vaekit.experiment import train_run
from vaekit.models import create_model
from vaekit.training.callbacks.best_checkpoint import BestCheckpoint
from vaekit.training.distributed import Workers
from vaekit.training.epoch import StepContext, train_one_epoch
from vaekit.training.events import Callback
from vaekit.training.loop import make_optimizer
from vaekit.training.lr_schedules import make_scheduler
from vaekit.training.resume import TrainState
from vaekit.training.step import TrainStep


def steps_logged(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "steps.jsonl").read_text().splitlines()]


def test_the_cosine_spans_the_run_by_default():
    optimizer = make_optimizer(torch.nn.Linear(2, 2), TrainConfig(epochs=10, lr=1e-3, min_lr=1e-5))
    scheduler = make_scheduler(optimizer, TrainConfig(epochs=10, lr=1e-3, min_lr=1e-5))
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_resume_with_more_epochs_redraws_the_cosine_over_the_new_length(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    assert train(arc_corpus, runs, "r", "--epochs", 2).exit_code == 0
    result = train(arc_corpus, runs, "r", "--epochs", 4, "--resume")
    assert result.exit_code == 0, result.output
    assert "cosine schedule over 2 -> 4 epochs" in result.output
    lrs = [r["lr"] for r in records(runs / "r")]
    cosine = [1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert lrs[2:] == pytest.approx(cosine[2:])  # the new curve's values: annealing, never climbing back
    assert lrs[3] < lrs[2]


def test_a_bad_nonfinite_policy_leaves_no_run_directory_and_no_changed_config(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    result = train(arc_corpus, runs, "r", "--epochs", 1, "--set", "train.nonfinite=ignore")
    assert result.exit_code == 2 and "train.nonfinite 'ignore'" in result.stderr
    assert not (runs / "r").exists()
    assert train(arc_corpus, runs, "r", "--epochs", 1).exit_code == 0
    config = (runs / "r" / "config.yaml").read_text()
    for bad in ("train.nonfinite=ignore", "train.pictures_every=-1", "train.checkpoint_every_steps=-2"):
        result = train(arc_corpus, runs, "r", "--epochs", 2, "--resume", "--set", bad)
        assert result.exit_code == 2, result.output
        assert (runs / "r" / "config.yaml").read_text() == config


class Failing(Callback):
    def on_epoch_end(self, t, record):
        raise RuntimeError("a sink failed")


def open_files_under(folder: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    targets = [os.path.realpath(fd) for fd in fds.iterdir() if fd.is_symlink()]
    return [t for t in targets if t.startswith(str(folder.resolve()))]


def test_an_error_in_a_callback_still_closes_the_log_the_writer_and_the_console(tmp_path, arc_corpus, monkeypatch):
    monkeypatch.setattr(events_module, "CALLBACKS", [*events_module.CALLBACKS, Failing])
    import vaekit.training.callbacks  # noqa: F401 - the built-in subscribers are registered before Failing
    console = Console(file=io.StringIO())
    layer = {"data": {"path": str(arc_corpus)}, "threads": 1, "train": {"epochs": 2, "batch_size": 64,
                                                                        "tensorboard": True},
             "model": {"options": TINY_MODEL_OPTIONS}}
    with pytest.raises(RuntimeError, match="a sink failed"):
        train_run("arc", None, [("test", layer)], tmp_path / "runs", "r", console=console, show_progress=False)
    assert "print" not in vars(console)  # no longer patched by the train.log subscriber
    assert open_files_under(tmp_path / "runs") == []
    assert (tmp_path / "runs" / "r" / "train.log").read_text().count("epoch   1/2") == 1


class BatchCounter(Callback):
    """Counts what each epoch announced and what its steps reported."""

    def __init__(self):
        self.announced, self.samples, self.epoch = {}, {}, None

    def on_epoch_start(self, t, epoch: int, total: int) -> None:
        self.announced[epoch], self.samples[epoch], self.epoch = total, 0, epoch

    def on_batch_end(self, t, samples: int, loss) -> None:
        self.samples[self.epoch] += samples


def test_the_console_and_train_log_get_the_same_lines_and_batch_listeners_every_sample(tmp_path, arc_corpus):
    counter, console = BatchCounter(), Console(file=io.StringIO(), width=300)
    layer = {"data": {"path": str(arc_corpus)}, "threads": 1, "train": {"epochs": 2, "batch_size": 64},
             "model": {"options": TINY_MODEL_OPTIONS}}
    train_run("arc", None, [("test", layer)], tmp_path / "runs", "r", console=console, show_progress=False,
              extra_callbacks=[counter])
    assert counter.announced == counter.samples == {1: 240, 2: 240}  # 240 training grids, batches of 64
    logged = (tmp_path / "runs" / "r" / "train.log").read_text().splitlines()[1:]  # after the dated header
    assert any(line.startswith("epoch   2/2") for line in logged)
    shown = console.file.getvalue()
    assert all(line in shown for line in logged)


def test_the_progress_bar_counts_an_epochs_samples_and_goes_when_it_ends():
    from vaekit.training.callbacks.progress_bar import ProgressBar

    t = SimpleNamespace(show_progress=True, writes=True, console=Console(file=io.StringIO(), force_terminal=True))
    bar = ProgressBar()
    bar.on_run_start(t)
    bar.on_epoch_start(t, 1, total=100)
    for _ in range(4):
        bar.on_batch_end(t, 25, torch.tensor(0.5))
    (task,) = bar.progress.tasks
    assert task.completed == task.total == 100 and "loss 0.500" in task.fields["live"]
    bar.on_epoch_end(t, {})
    assert bar.progress.tasks == []
    bar.close(t)
    assert bar.progress is None
    quiet = SimpleNamespace(show_progress=False, writes=True, console=t.console)
    bar.on_run_start(quiet)
    bar.on_epoch_start(quiet, 1, total=100)
    bar.on_batch_end(quiet, 25, torch.tensor(0.5))  # nothing drawn, nothing read from the loss
    assert bar.progress is None


def test_checkpoint_every_steps_and_resume_equal_the_uninterrupted_run(tmp_path, arc_corpus, monkeypatch):
    runs = tmp_path / "runs"
    options = ["--epochs", 2, "--set", "train.checkpoint_every_steps=2", "--set", "train.log_every_steps=1"]
    assert train(arc_corpus, runs, "straight", *options).exit_code == 0
    nan_at_step(monkeypatch, 7)  # epoch 2's third step: last.pt was written after its second
    result = train(arc_corpus, runs, "r", *options)
    assert result.exit_code == 65
    assert "last.pt holds epoch 2 up to its step 2" in result.stderr
    last = torch.load(runs / "r" / "checkpoints" / "last.pt", weights_only=True)
    assert (last["position"]["epoch"], last["position"]["step"], last["state"]["global_step"]) == (2, 2, 6)
    monkeypatch.undo()

    refused = train(arc_corpus, runs, "r", *options, "--resume", "--batch-size", 32)
    assert refused.exit_code == 2
    assert "in the middle of epoch 2 (after its step 2), and train.batch_size was 64, now 32" in refused.stderr
    assert train(arc_corpus, runs, "r", *options, "--resume").exit_code == 0
    assert without_wall_times(records(runs / "r")) == without_wall_times(records(runs / "straight"))
    assert steps_logged(runs / "r") == list(range(1, 9))
    resumed = torch.load(runs / "r" / "checkpoints" / "last.pt", weights_only=True)["model"]
    straight = torch.load(runs / "straight" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[name], straight[name]) for name in straight)


def test_resume_with_another_batch_size_continues_the_step_count_and_says_so(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    assert train(arc_corpus, runs, "r", "--epochs", 1, "--set", "train.log_every_steps=1").exit_code == 0
    result = train(arc_corpus, runs, "r", "--epochs", 2, "--resume", "--batch-size", 32)
    assert result.exit_code == 0, result.output
    assert "train.batch_size 64 -> 32" in result.output
    assert steps_logged(runs / "r") == list(range(1, 13))  # 4 steps of 64, then 8 of 32


def test_resume_with_another_lr_applies_it_and_says_so(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    constant = ["--set", "train.lr_schedule=constant"]
    assert train(arc_corpus, runs, "r", "--epochs", 1, *constant).exit_code == 0
    result = train(arc_corpus, runs, "r", "--epochs", 2, "--resume", "--lr", "0.0005", *constant)
    assert result.exit_code == 0, result.output
    assert "train.lr 0.001 -> 0.0005" in result.output
    assert [r["lr"] for r in records(runs / "r")] == [0.001, 0.0005]


def test_loading_and_evaluating_a_run_leave_the_callers_threads_and_random_state(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    assert train(arc_corpus, runs, "r", "--epochs", 1).exit_code == 0  # its config says threads: 1
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(1234)
        before = torch.get_rng_state()
        run = vaekit.load_run("r", runs_dir=runs)
        assert torch.get_num_threads() == 2
        run.evaluate("val")
        assert torch.get_num_threads() == 2
        assert torch.equal(torch.get_rng_state(), before)
    finally:
        torch.set_num_threads(threads)


def test_a_nan_score_in_the_first_epoch_gives_way_to_the_first_real_one():
    state = TrainState()
    t = SimpleNamespace(config=Config(), state=state, writes=False, val={"loss": math.nan}, domain=get_domain("arc"))
    best = BestCheckpoint()
    best.on_epoch_end(t, {"epoch": 1})
    t.val = {"loss": 2.0}
    best.on_epoch_end(t, {"epoch": 2})
    t.val = {"loss": math.nan}
    best.on_epoch_end(t, {"epoch": 3})
    assert (state.best_epoch, state.best_score) == (2, [-2.0])


def test_an_fp16_step_the_scaler_skips_is_hidden_from_the_model():
    torch.manual_seed(0)
    model = create_model("conv2d", 3, TINY_MODEL_OPTIONS)
    seen = []
    model.after_backward = lambda: seen.append(True)
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), "fp16", torch.device("cpu"), LossConfig())
    batch = torch.randint(0, 10, (4, 16, 16), dtype=torch.uint8)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    first = next(model.parameters())
    hook = first.register_hook(lambda grad: grad * math.inf)
    scale = step.scaler.get_scale()
    step(batch, 1.0)
    assert seen == [] and step.scaler.get_scale() < scale
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    hook.remove()
    step.scaler.update(1.0)  # a scale this tiny model's fp16 gradients cannot overflow
    step(batch, 1.0)
    assert seen == [True]


class RecordingStep:
    """A stand-in for TrainStep that keeps the batches it is given."""

    def __init__(self):
        self.batches, self.votes = [], [0.0, 0.0, 0.0]
        self.optimizer = SimpleNamespace(param_groups=[{"lr": 1.0}])

    def __call__(self, batch, beta, votes=(), global_step=None):
        self.batches.append(batch.clone())
        zero = torch.zeros(())
        return zero, zero, zero


def epoch_batches(augment: bool, rank: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One epoch's batches over 24 distinct grids, and the data generator's state after it."""
    config = Config()
    config.data.augment, config.train.batch_size, config.train.log_every_steps = augment, 4, 0
    data = torch.randint(0, 10, (24, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    workers = Workers(rank, 1)  # one worker's view: its rank seeds its augmentation
    ctx = StepContext(torch.Generator().manual_seed(0), torch.Generator().manual_seed(workers.augment_seed(0)),
                      workers)
    step = RecordingStep()
    train_one_epoch(step, data, get_domain("arc"), config, 1.0, ctx)
    return step.batches, ctx.generator.get_state()


def test_augmentation_draws_from_its_own_generator_per_worker():
    plain, plain_state = epoch_batches(augment=False)
    augmented, augmented_state = epoch_batches(augment=True)
    assert torch.equal(plain_state, augmented_state)  # the data order is the same either way
    for original, transformed in zip(plain, augmented):  # the same grids, rotated or flipped
        assert torch.equal(original.flatten(1).sort(1).values, transformed.flatten(1).sort(1).values)
    other_worker, _ = epoch_batches(augment=True, rank=1)
    other_plain, _ = epoch_batches(augment=False, rank=1)
    transforms = [[torch.equal(a, p) for a, p in zip(batch, plain_batch)] for batch, plain_batch in zip(augmented, plain)]
    other = [[torch.equal(a, p) for a, p in zip(b, pb)] for b, pb in zip(other_worker, other_plain)]
    assert transforms != other  # each worker draws its own transforms


def test_a_run_resumed_from_a_best_score_without_the_loss_tie_break_does_not_switch_on_a_tie():
    state = TrainState(best_score=[0.8], best_epoch=3)  # saved before the validation loss broke ties
    config = Config()
    config.train.selection_metric = "pixel_accuracy"
    t = SimpleNamespace(config=config, state=state, writes=False, val={"pixel_accuracy": 0.8, "loss": 150.0},
                        domain=get_domain("arc"))
    BestCheckpoint().on_epoch_end(t, {"epoch": 4})
    assert state.best_epoch == 3
    t.val = {"pixel_accuracy": 0.81, "loss": 150.0}
    BestCheckpoint().on_epoch_end(t, {"epoch": 5})
    assert (state.best_epoch, state.best_score) == (5, [0.81, -150.0])

"""Precision and compile settings: resolution, refusal, fp32 weights on disk, resume across them."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import TINY_MODEL_FLAGS
from vaekit.cli import app
from vaekit.config import Config
from vaekit.errors import VaekitUsageError
from vaekit.models import create_model
from vaekit.training import precision as precision_module
from vaekit.training.distributed import SINGLE
from vaekit.training.loop import make_optimizer
from vaekit.training.precision import inference_precision, resolve_precision
from vaekit.training.step import TrainStep, epoch_batch_sizes

runner = CliRunner()
CPU = torch.device("cpu")


def train(corpus, runs, run_id, *extra):
    return runner.invoke(app, [str(a) for a in ("train", "arc", "--data", corpus, "--runs-dir", runs, "--run-id",
                                                run_id, "--no-progress", "--set", "threads=1", *TINY_MODEL_FLAGS,
                                                *extra)])


def records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def floating_tensors(obj):
    """Every floating-point tensor in a (nested) checkpoint object."""
    if isinstance(obj, torch.Tensor):
        return [obj] if obj.is_floating_point() else []
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in floating_tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in floating_tensors(v)]
    return []


def test_auto_resolves_to_bf16_only_where_it_is_native(monkeypatch):
    monkeypatch.setattr(precision_module, "native_bf16", lambda device: True)
    assert resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(precision_module, "native_bf16", lambda device: False)
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"  # asked for explicitly: allowed, if emulated


def test_unsupported_precisions_are_refused_naming_what_is_allowed():
    with pytest.raises(VaekitUsageError, match="'fp16' is not supported on cpu: use fp32 or bf16"):
        resolve_precision("fp16", CPU)
    with pytest.raises(VaekitUsageError, match="'bf16' is not supported on mps: use fp32"):
        resolve_precision("bf16", torch.device("mps"))
    assert inference_precision("fp16", CPU) == "fp32"  # an fp16 GPU run evaluated on a CPU
    assert inference_precision("bf16", CPU) == "bf16"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_precision_trains_and_keeps_fp32_weights_on_disk(tmp_path, arc_corpus, precision):
    runs = tmp_path / "runs"
    result = train(arc_corpus, runs, "r", "--epochs", 2, "--precision", precision)
    assert result.exit_code == 0, result.output
    run = runs / "r"
    log = records(run)
    assert [r["precision"] for r in log] == [precision, precision]
    assert log[1]["train_loss"] < log[0]["train_loss"]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["precision"] == precision
    for name in ("vae_best.pth", "encoder.pth", "decoder.pth", "last.pt"):
        tensors = floating_tensors(torch.load(run / "checkpoints" / name, weights_only=False))
        assert tensors and {t.dtype for t in tensors} == {torch.float32}, name


def test_auto_is_recorded_as_what_it_resolved_to(tmp_path, arc_corpus, monkeypatch):
    monkeypatch.setattr(precision_module, "native_bf16", lambda device: True)
    result = train(arc_corpus, tmp_path / "runs", "r", "--epochs", 1, "--precision", "auto")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "runs" / "r" / "config.yaml").read_text())["train"]["precision"] == "bf16"


def test_fp16_on_cpu_is_refused_before_a_run_directory_exists(tmp_path, arc_corpus):
    result = train(arc_corpus, tmp_path / "runs", "r", "--precision", "fp16")
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: train.precision 'fp16' is not supported on cpu: use fp32 or bf16"
    assert not (tmp_path / "runs" / "r").exists()


def test_unknown_precision_is_named(tmp_path, arc_corpus):
    result = train(arc_corpus, tmp_path / "runs", "r", "--set", "train.precision=fp8")
    assert result.exit_code == 2
    assert "train.precision must be one of fp32, bf16, fp16, auto, got 'fp8'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("first, then", [("bf16", "fp32"), ("fp32", "bf16")])
def test_resume_may_change_precision_and_records_it(tmp_path, arc_corpus, first, then):
    runs = tmp_path / "runs"
    assert train(arc_corpus, runs, "r", "--epochs", 2, "--precision", first).exit_code == 0
    result = train(arc_corpus, runs, "r", "--epochs", 3, "--resume", "--precision", then)
    assert result.exit_code == 0, result.output
    assert "Resuming r after epoch 2" in result.stdout
    assert [r["precision"] for r in records(runs / "r")] == [first, first, then]
    assert yaml.safe_load((runs / "r" / "config.yaml").read_text())["train"]["precision"] == then
    result = train(arc_corpus, runs, "r", "--epochs", 4, "--resume")  # no flag: the recorded precision
    assert result.exit_code == 0, result.output
    assert records(runs / "r")[-1]["precision"] == then


def test_eval_and_sample_use_the_runs_precision(tmp_path, arc_corpus, monkeypatch):
    runs = tmp_path / "runs"
    assert train(arc_corpus, runs, "r", "--epochs", 1, "--precision", "bf16").exit_code == 0
    seen = []
    original = precision_module.autocast
    monkeypatch.setattr(precision_module, "autocast", lambda p, d: seen.append(p) or original(p, d))
    assert runner.invoke(app, ["eval", "r", "--runs-dir", str(runs)]).exit_code == 0
    assert runner.invoke(app, ["sample", "r", "--runs-dir", str(runs), "-n", "4"]).exit_code == 0
    assert seen and set(seen) == {"bf16"}


def tiny_step(precision: str, grad_clip: float = 0.0) -> TrainStep:
    torch.manual_seed(0)
    model = create_model("conv2d", 4, {"channels": [8, 8, 8], "hidden": 16, "decoder_channels": [8, 8]})
    config = Config()
    return TrainStep(model, make_optimizer(model, config.train), precision, CPU, config.loss, grad_clip)


def test_fp16_step_scales_the_loss_and_keeps_fp32_weights():
    """The CUDA-only fp16 path (loss scaling, unscale before clipping), run on CPU where torch allows it."""
    step = tiny_step("fp16", grad_clip=1.0)
    before = [p.detach().clone() for p in step.model.parameters()]
    batch = torch.randint(0, 10, (8, 16, 16), dtype=torch.uint8)
    for _ in range(12):  # the first steps overflow and halve the initial loss scale of 2**16
        loss, recon, kl = step(batch, 1.0)
        assert loss.dtype == recon.dtype == kl.dtype == torch.float32 and torch.isfinite(loss)
    assert {p.dtype for p in step.model.parameters()} == {torch.float32}
    assert any(not torch.equal(a, p) for a, p in zip(before, step.model.parameters()))
    saved = step.state_dict()
    assert 0 < saved["scaler"]["scale"] < 2**16
    restored = tiny_step("fp16")
    restored.load_state_dict(saved)
    assert restored.scaler.get_scale() == step.scaler.get_scale()
    assert tiny_step("bf16").state_dict() == {}  # no scaler outside fp16


def test_compile_failure_falls_back_to_eager_with_one_warning(tmp_path, arc_corpus, monkeypatch):
    def broken_compile(fn, *args, **kwargs):
        def fails(*a, **k):
            raise RuntimeError("no backend here\nsecond line")
        return fails

    monkeypatch.setattr(torch, "compile", broken_compile)
    result = train(arc_corpus, tmp_path / "runs", "r", "--epochs", 2, "--compile")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stdout.splitlines() if "torch.compile failed" in line]
    assert warnings == ["warning: torch.compile failed, training eagerly instead (RuntimeError: no backend here)"]
    assert all("compile_seconds" not in r for r in records(tmp_path / "runs" / "r"))


def test_compile_warm_up_leaves_model_and_random_state_untouched():
    step = tiny_step("fp32")
    step.model.train()
    calls = []
    original_compile = torch.compile
    try:
        torch.compile = lambda fn, **kwargs: calls.append(fn) or fn  # compile to itself: fast
        examples = [torch.randint(0, 10, (n, 16, 16), dtype=torch.uint8) for n in (8, 3)]
        state = {k: v.clone() for k, v in step.model.state_dict().items()}
        rng = torch.get_rng_state()
        seconds = step.compile_now(examples, 1.0)
    finally:
        torch.compile = original_compile
    assert calls and seconds is not None and seconds >= 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(state[k], v) for k, v in step.model.state_dict().items())
    assert all(p.grad is None for p in step.model.parameters())


def test_epoch_batch_sizes():
    assert epoch_batch_sizes(480, 64) == [64, 32]
    assert epoch_batch_sizes(512, 64) == [64]
    assert epoch_batch_sizes(40, 64) == [40]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_training_reports_compile_time_once_and_resumes(tmp_path, arc_corpus, precision):
    runs = tmp_path / "runs"
    result = train(arc_corpus, runs, "r", "--epochs", 2, "--precision", precision, "--compile")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("Compiled the training step in") == 1
    log = records(runs / "r")
    assert log[0]["compile_seconds"] > 0 and "compile_seconds" not in log[1]
    assert log[1]["train_loss"] < log[0]["train_loss"]
    result = train(arc_corpus, runs, "r", "--epochs", 3, "--resume", "--no-compile")
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in records(runs / "r")] == [1, 2, 3]


def test_a_model_that_cannot_be_compiled_trains_eagerly_after_one_warning(monkeypatch):
    from rich.console import Console

    from vaekit.training.loop import _compile

    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("torch.compile must not be called"))
    model = create_model("ternary_dual", 2)
    step = TrainStep(model, make_optimizer(model, Config().train), "fp32", CPU, Config().loss)
    console = Console(record=True, width=200)
    data = torch.randint(-1, 2, (10, 9), dtype=torch.int8)
    assert _compile(step, data, 4, SINGLE, console.print) is None
    assert console.export_text().strip() == "warning: DualTernaryVAE does not support torch.compile; training eagerly"
    assert step.forward == step.eager_forward

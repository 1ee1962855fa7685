"""The model–domain contract: declared formats and protocols, checked by the registries, and kept
honest by running every fitting pair."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.config import Config, LossConfig
from vaekit.corpus import Corpus
from conftest import stored_batch
from vaekit.data_formats import ARC_GRID, FRAMES, SPLAT_SEQUENCE, TERNARY_TABLE, VECTORS
from vaekit.domains import DOMAINS, check_domain_class, get_domain, list_domains
from vaekit.errors import VaekitUsageError
from vaekit.evaluation import evaluate
from vaekit.models import MODELS, check_model_class, create_model, list_models
from vaekit.models.base import GaussianVAE
from vaekit.models.conv2d import Conv2dGridVAE
from vaekit.training.epoch import StepContext, train_one_epoch
from vaekit.training.step import TrainStep

PACKAGE = Path(__file__).resolve().parents[1] / "vaekit"

# Per model: the options that keep it tiny, as the model declares them (GaussianVAE.tiny_options).
TINY = {name: MODELS.get(name).tiny_options for name in MODELS.names()}


def pairs():
    return [(domain, model) for domain in list_domains() for model in get_domain(domain).fitting_models()]


def test_every_model_fits_at_least_one_domain_and_every_domain_default_fits():
    fitted = {model for _, model in pairs()}
    assert fitted == set(list_models())
    for name in list_domains():
        domain = get_domain(name)
        assert domain.default_config()["model"]["name"] in domain.fitting_models(), name


def test_a_pair_that_does_not_fit_is_refused_listing_the_models_that_do():
    with pytest.raises(VaekitUsageError, match=r"model 'conv2d' cannot train on domain 'ternary': it reads 16×16 "
                                               r".*Models for ternary: ternary_dual, ternary_mlp"):
        get_domain("ternary").check_model("conv2d")


def test_a_model_without_the_domain_protocol_is_refused_naming_what_it_lacks():
    class FramesWithoutMeans(GaussianVAE):
        data_format = FRAMES

    assert get_domain("atari").model_problem(FramesWithoutMeans) == "it lacks frame_means, weigh_foreground (FrameModel)"
    assert get_domain("atari").model_problem(MODELS.get("conv2d_frames")) is None


def test_registration_demands_a_data_format_and_the_vae_interface():
    class NoFormat(GaussianVAE):
        pass

    with pytest.raises(TypeError, match="must set the class attribute data_format"):
        check_model_class("no_format", NoFormat)

    class NotAVae(torch.nn.Module):
        data_format = ARC_GRID

    with pytest.raises(TypeError, match="lacks latent_dim, data_bin_width, prefers_channels_last, supports_compile, gaussian_posterior, corrects_lr, "
                                          "prepare, encode"):
        check_model_class("not_a_vae", NotAVae)

    class NoDataDomain:
        model_protocol = object

    with pytest.raises(TypeError, match="must set data_format"):
        check_domain_class("no_data", NoDataDomain)


def test_no_model_module_imports_a_domain_module():
    for path in (PACKAGE / "models").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("vaekit.domains"), f"{path.name} imports {node.module}"


@pytest.mark.parametrize("domain_name, model_name", pairs())
def test_declared_selection_metrics_are_real_validation_metrics(domain_name, model_name):
    """Every name train.selection_metric accepts appears in the validation metrics of the pair."""
    torch.manual_seed(0)
    domain = get_domain(domain_name)
    model = create_model(model_name, 2, TINY[model_name])
    generator = torch.Generator().manual_seed(0)
    tensors = {split: stored_batch(domain.data_format, n, generator, TINY[model_name]) for split, n in
               (("train", 8), ("val", 6), ("test", 6))}
    domain.use_corpus(Corpus(Path("in-memory.npz"), {split: t.numpy() for split, t in tensors.items()}, {}))
    config = Config(domain=domain_name)
    config.data.options = {"epoch_prior_samples": 64}
    model.on_epoch_start(1, 10)
    metrics = evaluate(model, tensors["val"], domain, LossConfig(), 0.5)
    metrics.update(domain.extra_metrics(model, tensors, config, during_training=True))
    names = domain.selection_metric_names(type(model))
    missing = [name for name in names if name not in metrics]
    assert not missing, f"declared but not produced: {missing}"
    assert all(isinstance(metrics[name], (int, float)) for name in names)


def test_the_stored_formats_accept_collected_data_and_refuse_the_rest():
    grids = np.zeros((4, 16, 16), np.uint8)
    assert ARC_GRID.problem(grids) is None
    assert ARC_GRID.problem(grids[:0]) == "is empty"
    assert ARC_GRID.problem(grids.astype(np.float64)) == "has dtype float64"
    assert TERNARY_TABLE.problem(np.full((2, 9), 2, np.int8)) == "has values from 2 to 2"
    assert FRAMES.problem(np.zeros((2, 16, 7, 3), np.uint8)) == "has images of shape (16, 7, 3)"
    assert FRAMES.problem(np.zeros((2, 16, 8, 4), np.uint8)) == "has images of shape (16, 8, 4)"
    assert FRAMES.problem(np.zeros((2, 16, 8, 3), np.uint8)) is None  # any size with H, W ≥ 8
    assert FRAMES.problem(np.zeros((2, 16, 16, 1), np.uint8)) is None
    assert VECTORS.problem(np.zeros((2, 5), np.float32)) is None
    assert VECTORS.problem(np.array([[0.0, np.nan]])).startswith("has NaN or infinite values")
    assert SPLAT_SEQUENCE.problem(np.zeros((2, 8, 5), np.float32)) is None
    assert SPLAT_SEQUENCE.problem(np.zeros((2, 7, 5), np.float32)) == "has items of shape (7, 5)"


def test_the_loop_calls_after_backward_between_backward_and_the_optimizer_step():
    torch.manual_seed(0)
    model = Conv2dGridVAE(latent_dim=2, **TINY["conv2d"])
    seen = []

    def after_backward():
        grads = [p.grad for p in model.parameters()]
        grads_ready = all(g is not None for g in grads)
        norm = float(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))) if grads_ready else None
        seen.append((grads_ready, norm, [p.detach().clone() for p in model.parameters()]))

    model.after_backward = after_backward
    config = Config()
    config.train.batch_size = 4
    config.train.grad_clip = 1e-3
    config.data.augment = False
    data = torch.randint(0, 10, (8, 16, 16), dtype=torch.uint8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = TrainStep(model, optimizer, "fp32", torch.device("cpu"), config.loss, config.train.grad_clip)
    before = [p.detach().clone() for p in model.parameters()]
    generators = StepContext(torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    train_one_epoch(step, data, get_domain("arc"), config, 0.5, generators)
    assert len(seen) == 2 and all(ready for ready, _, _ in seen)
    assert all(norm <= 1e-3 * 1.01 for _, norm, _ in seen)  # called after clipping
    assert all(torch.equal(a, b) for a, b in zip(seen[0][2], before))  # called before the first step


def test_the_dual_model_reads_gradients_only_in_after_backward():
    torch.manual_seed(0)
    model = create_model("ternary_dual", 2, TINY["ternary_dual"])
    model.on_epoch_start(1, 10)
    batch = torch.randint(-1, 2, (16, 9)).to(torch.int8)
    loss, _, _ = model.objective(batch, 1.0, LossConfig())
    loss.backward()
    model.objective(batch, 1.0, LossConfig())  # gradients are there, but objective() ignores them
    assert float(model.grad_ratio) == 1.0
    model.after_backward()

    def norm(name):
        parts = [p.grad.reshape(-1) for m in (model.encoder[name], model.decoder[name]) for p in m.parameters()]
        return torch.linalg.vector_norm(torch.cat(parts))

    assert float(model.grad_ratio) == pytest.approx(float(norm("A") / norm("B")))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_training_step_gives_the_dual_model_its_gradients_after_clipping(precision):
    torch.manual_seed(0)
    model = create_model("ternary_dual", 2, TINY["ternary_dual"])
    model.on_epoch_start(1, 10)
    seen = []
    record = model.after_backward

    def after_backward():
        grads = [p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.cat(grads))))
        record()

    model.after_backward = after_backward
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    step = TrainStep(model, optimizer, precision, torch.device("cpu"), LossConfig(), grad_clip=1e-3)
    step(torch.randint(-1, 2, (16, 9)).to(torch.int8), 1.0)
    assert len(seen) == 1 and seen[0] <= 1e-3 * 1.01
    assert float(model.grad_ratio) != 1.0 and torch.isfinite(model.grad_ratio)


def test_no_domain_module_imports_the_command_line():
    """Domains compute; the command line prints (vaekit.collecting carries results and progress)."""
    for path in (PACKAGE / "domains").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("vaekit.cli"), f"{path.name} imports {node.module}"


def test_a_collect_command_called_from_python_returns_what_it_made_and_prints_nothing(tmp_path, capsys):
    from vaekit.collecting import Collected

    collected = get_domain("ternary").collect(out=tmp_path / "ternary.npz", seed=0)
    assert isinstance(collected, Collected) and collected.path.is_file()
    assert sum(collected.metadata["counts"].values()) == 3**9
    assert capsys.readouterr().out == ""


def test_collect_from_python_takes_the_declared_defaults_and_checks_as_the_flags_do(tmp_path):
    collected = get_domain("ternary").collect(out=tmp_path / "ternary.npz")  # seed: the declared 42
    assert collected.metadata["seed"] == 42
    with pytest.raises(VaekitUsageError, match="--count 0: expected at least 1"):
        get_domain("arc").collect(count=0, out=tmp_path / "arc.npz")
    with pytest.raises(VaekitUsageError, match="unknown collect option 'episodes'"):
        get_domain("ternary").collect(episodes=3)
    with pytest.raises(VaekitUsageError, match="collect needs --from"):
        get_domain("arrays").collect(out=tmp_path / "arrays.npz")
    assert not (tmp_path / "arc.npz").exists() and not (tmp_path / "arrays.npz").exists()


def test_a_domain_whose_collector_differs_from_its_declared_options_is_refused_at_definition():
    from vaekit.collecting import CollectOption

    class Mismatched(type(get_domain("ternary"))):
        collect_options = (CollectOption("seed", int, 0, "Seed."),)

    with pytest.raises(TypeError, match=r"its collector takes \['seed', 'out'\] but collect_options declares \['seed'\]"):
        check_domain_class("mismatched", Mismatched)


@pytest.mark.parametrize("name", [n for n in DOMAINS.names() if DOMAINS.get(n).collector is not None])
def test_every_declared_collect_option_is_a_flag_of_the_domains_command(name):
    from typer.testing import CliRunner

    from vaekit.cli import app

    shown = CliRunner().invoke(app, ["collect", name, "--help"], env={"COLUMNS": "200"}).output
    for option in DOMAINS.get(name).collect_options:
        assert option.flag in shown and option.help[:40] in shown, option.flag

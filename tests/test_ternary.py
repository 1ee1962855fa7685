import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import TINY_TERNARY_FLAGS
from vaekit import load_corpus
from vaekit.cli import app
from vaekit.config import Config
from vaekit.domains import get_domain
from vaekit.domains.ternary import (NUM_OPERATIONS, all_operations, operation_ids, prior_coverage,
                                    reconstruction_coverage)
from vaekit.models import create_model


def test_enumeration_is_exhaustive_and_unique():
    ops = all_operations()
    assert ops.shape == (19683, 9) and ops.dtype == np.int8
    assert set(np.unique(ops)) == {-1, 0, 1}
    assert len({row.tobytes() for row in ops}) == 19683
    assert torch.equal(operation_ids(torch.from_numpy(ops)), torch.arange(19683))


def test_seed_42_split_sizes_and_disjointness(ternary_corpus):
    corpus = load_corpus(ternary_corpus)
    assert {k: v.shape[0] for k, v in corpus.splits.items()} == {"train": 15746, "val": 1968, "test": 1969}
    indices = np.concatenate([corpus.arrays[f"{s}_index"] for s in ("train", "val", "test")])
    assert sorted(indices.tolist()) == list(range(NUM_OPERATIONS))
    assert np.array_equal(corpus.arrays["val"], all_operations()[corpus.arrays["val_index"]])


class HandBuiltModel(torch.nn.Module):
    """encode: z = x (9 values); decode: logits put the argmax at round(z), except where told."""

    prior_dim = 9

    def __init__(self, zero_first_position=False, prior_op=None):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.zero_first_position, self.prior_op = zero_first_position, prior_op

    def encode(self, batch):
        return batch.float(), torch.ones(batch.shape)

    def decode(self, z):
        values = z.round().clamp(-1, 1).long()
        if self.zero_first_position:
            values[:, 0] = 0
        return torch.nn.functional.one_hot(values + 1, 3).float()

    def decode_prior(self, z):
        if self.prior_op is not None:
            return self.decode(torch.tensor(self.prior_op).float().expand(z.shape[0], 9))
        return self.decode(z)

    def pathway_predictions(self, output):
        return {"": (output.argmax(-1) - 1).to(torch.int8)}


def test_reconstruction_coverage_on_a_known_decoder():
    ops = torch.from_numpy(all_operations())
    assert reconstruction_coverage(HandBuiltModel(), ops) == {"": 1.0}
    # A decoder that always writes 0 at position 0 is right for exactly the third with x0 = 0.
    assert reconstruction_coverage(HandBuiltModel(zero_first_position=True), ops) == {"": pytest.approx(1 / 3)}


def test_prior_coverage_counts_distinct_operations_once():
    one_op = HandBuiltModel(prior_op=[1, 0, -1, 0, 1, 0, -1, 0, 1])
    assert prior_coverage(one_op, 5000, torch.Generator().manual_seed(0)) == {"": 1 / 19683}
    # round(z) of 9 standard normals: with 200,000 draws nearly all 19,683 tables appear
    spread = prior_coverage(HandBuiltModel(), 200_000, torch.Generator().manual_seed(0))[""]
    assert 0.95 < spread <= 1.0


def test_dual_schedules_at_their_knots():
    model = create_model("ternary_dual", 16, {"lambda3_period": 4})
    expected = {1: (0.1, 0.45), 40: (0.1, 0.3), 80: (0.2, 0.3), 120: (0.3, 0.3), 185: (0.5, 0.45),
                250: (0.7, 0.3), 399: (0.7, 0.15)}
    for epoch, (rho, lambda3) in expected.items():
        logged = model.on_epoch_start(epoch, 400)
        assert logged["rho"] == pytest.approx(rho) and float(model.lambda3) == pytest.approx(lambda3), epoch
    model.on_epoch_start(25, 400)
    assert float(model.beta_a_now) == pytest.approx(0.55) and float(model.beta_b_now) == pytest.approx(0.25)
    logged = model.on_epoch_start(200, 400)
    assert logged["temperature_A"] == pytest.approx(0.65) and logged["temperature_B"] == pytest.approx(0.55)
    assert logged["beta_A"] == pytest.approx(0.8) and logged["beta_B"] == pytest.approx(0.5)
    logged = model.on_epoch_start(400, 400)
    assert (logged["temperature_A"], logged["temperature_B"]) == (pytest.approx(0.3), pytest.approx(0.2))


def test_cross_injection_blocks_gradients_between_pathways():
    model = create_model("ternary_dual", 4, {"statenet": False})
    model.on_epoch_start(300, 400)  # ρ = 0.7
    z = torch.randn(2, 8, requires_grad=True)
    model.decode(z)[:, 0].sum().backward()  # pathway A's output
    assert z.grad[:, 4:].abs().sum() == 0 and z.grad[:, :4].abs().sum() > 0


def test_statenet_is_about_a_thousand_parameters_and_moves_lr_by_at_most_5_percent():
    model = create_model("ternary_dual", 16)
    assert 800 <= sum(p.numel() for p in model.statenet.parameters()) <= 1200
    model.on_epoch_start(1, 10)
    model.correction_sum.fill_(1.0)
    model.correction_steps.fill_(1.0)
    assert model.corrects_lr and model.lr_factor() == pytest.approx(1.05)
    assert model.on_epoch_end()["statenet_lr_factor"] == pytest.approx(1.05)
    assert not create_model("ternary_dual", 16, {"statenet": False}).corrects_lr


def test_dual_and_baseline_end_to_end(tmp_path, ternary_corpus):
    runner = CliRunner()
    runs = tmp_path / "runs"
    common = ["--data", str(ternary_corpus), "--runs-dir", str(runs), "--epochs", "2", "--no-progress",
              *TINY_TERNARY_FLAGS]
    result = runner.invoke(app, ["train", "ternary", "--model", "ternary_dual", "--run-id", "dual", *common,
                                 "--set", "train.selection_metric=reconstruction_coverage,prior_coverage",
                                 "--set", "train.pictures_every=2"])
    assert result.exit_code == 0, result.output
    assert (runs / "dual" / "results" / "reconstructions_epoch_002.png").read_bytes()[:4] == b"\x89PNG"
    records = [json.loads(x) for x in (runs / "dual" / "metrics.jsonl").read_text().splitlines()]
    for key in ("rho", "temperature_A", "temperature_B", "beta_A", "beta_B", "lambda1", "lambda3",
                "val_reconstruction_coverage_A", "val_prior_coverage_B", "val_entropy_A", "val_kl_B", "phase",
                "val_latent_entropy_bits_A", "val_latent_entropy_bits_B"):
        assert key in records[-1], key
    assert [r["phase"] for r in records] == [1, 1]
    assert runner.invoke(app, ["train", "ternary", "--run-id", "mlp", *common]).exit_code == 0
    result = runner.invoke(app, ["eval", "dual", "--runs-dir", str(runs)])
    assert result.exit_code == 0 and "Prior coverage, pathway B" in result.stdout
    metrics = json.loads((runs / "dual" / "results" / "metrics.json").read_text())["test"]
    assert metrics["prior_samples"] == 5000 and 0 <= metrics["prior_coverage"] <= 1
    result = runner.invoke(app, ["report", "dual", "mlp", "--runs-dir", str(runs)])
    assert result.exit_code == 0 and "ternary_dual" in result.stdout and "ternary_mlp" in result.stdout
    assert runner.invoke(app, ["sample", "mlp", "--runs-dir", str(runs), "-n", "16"]).exit_code == 0
    assert (runs / "mlp" / "results" / "samples.png").is_file()


def test_domain_defaults_use_the_baseline():
    cfg_dict = get_domain("ternary").default_config()
    assert cfg_dict["model"]["name"] == "ternary_mlp" and Config().domain == "arc"


def _example_config(name: str) -> Config:
    from pathlib import Path

    from vaekit.config import build_config, load_yaml
    path = Path(__file__).parent.parent / "examples" / "configs" / name
    return build_config([(str(path), load_yaml(path))])


def test_v5_5_config_has_the_reports_parameter_counts():
    """Report: 168,770 parameters (VAE-A 50,203, VAE-B 117,499, StateNet 1,068)."""
    cfg = _example_config("ternary_v5_5.yaml")
    model = create_model(cfg.model.name, cfg.model.latent_dim, cfg.model.options)
    count = lambda *modules: sum(p.numel() for m in modules for p in m.parameters())
    assert count(model.encoder["A"], model.decoder["A"]) == 50_203
    assert count(model.encoder["B"], model.decoder["B"]) == 117_499
    assert count(model.statenet) == 1_068
    assert count(model) == 168_770


def test_unknown_encoder_input_is_refused_with_the_choices():
    from vaekit.errors import VaekitUsageError
    with pytest.raises(VaekitUsageError, match="encoder_input.*one_hot, values.*'bits'"):
        create_model("ternary_dual", 4, {"encoder_input": "bits"})


def test_latent_entropy_bits_is_log2_of_the_dimensions_shared_equally_and_zero_for_one():
    from vaekit.domains.ternary import latent_entropy_bits

    class Fixed:
        pathways = ("A", "B")

        def encode(self, batch):
            n = batch.shape[0]
            even = torch.randn(n, 16, generator=torch.Generator().manual_seed(0)).sign()  # equal variances
            one = torch.zeros(n, 16)
            one[:, 3] = torch.arange(n).float()
            return torch.cat([even, one], 1), None

    bits = latent_entropy_bits(Fixed(), torch.zeros(4096, 9))
    assert bits["latent_entropy_bits_A"] == pytest.approx(4.0, abs=0.01)
    assert bits["latent_entropy_bits_B"] == pytest.approx(0.0, abs=1e-6)


def test_dual_phase_marker_follows_the_rho_knots():
    model = create_model("ternary_dual", 4, {"rho_knots": [[40, 0.1], [120, 0.3], [250, 0.7]]})
    assert [model.phase(e) for e in (1, 39, 40, 119, 120, 250, 400)] == [1, 1, 2, 2, 3, 4, 4]
    assert model.on_epoch_start(103, 400)["phase"] == 2


def test_full_v5_5_config_runs_through_the_reports_phase_2_events():
    cfg = _example_config("ternary_v5_5_full.yaml")
    assert cfg.train.epochs >= 104 and cfg.train.checkpoint_every == 10 and cfg.train.early_stopping_patience == 0
    model = create_model(cfg.model.name, cfg.model.latent_dim, cfg.model.options)
    assert model.on_epoch_start(50, cfg.train.epochs)["beta_B"] == pytest.approx(0.5)
    assert model.on_epoch_start(103, cfg.train.epochs)["rho"] == pytest.approx(0.26, abs=0.005)


def test_the_nine_trits_are_the_factors():
    from vaekit.domains import get_domain
    from vaekit.domains.ternary import all_operations

    domain = get_domain("ternary")
    operations = all_operations()
    factors = domain.item_factors({"test": operations}, "test")
    assert len(domain.factor_names) == 9 and domain.factor_sizes == (3,) * 9
    assert factors.min() == 0 and factors.max() == 2
    assert np.array_equal(domain.items_for_factors(factors), operations)

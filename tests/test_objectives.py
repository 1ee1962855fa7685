"""The training objectives: their estimators checked against the mathematics, every objective
training every model it takes, exact resume and torchrun, and the bad input refused before any file
is written."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from conftest import TINY_MODEL_FLAGS
from conftest import stored_batch
from test_contracts import TINY
from vaekit.cli import app
from vaekit.config import LossConfig, TrainConfig
from vaekit.domains import get_domain, list_domains
from vaekit.evaluation import evaluate
from vaekit.models import MODELS, create_model
from vaekit.objectives import OBJECTIVES, ObjectiveContext, create_objective, takes_objective
from vaekit.objectives.annealed import AnnealedCapacity
from vaekit.objectives.btcvae import kl_decomposition
from vaekit.objectives.dipvae import covariance, dip_penalty
from vaekit.objectives.factorvae import discriminator, permute_dims
from vaekit.objectives.infovae import mmd
from vaekit.objectives.iwae import iwae_bound, log_importance_weights
from vaekit.training.loop import make_optimizer
from vaekit.training.step import TrainStep

runner = CliRunner()
N = 50_000  # items in the imagined dataset behind the minibatch estimates


def codes(n: int, correlation: float, sigma: float = 0.1, seed: int = 0):
    """Posterior means of n items from a 2-d Gaussian with the given correlation, each posterior
    N(mu, sigma²), and one code drawn from each."""
    g = torch.Generator().manual_seed(seed)
    cov = torch.tensor([[1.0, correlation], [correlation, 1.0]])
    mu = torch.randn(n, 2, generator=g) @ torch.linalg.cholesky(cov).T
    sigma_t = torch.full_like(mu, sigma)
    z = mu + sigma_t * torch.randn(n, 2, generator=g)
    return z, mu, sigma_t, cov + sigma**2 * torch.eye(2)


def gaussian_tc(cov: torch.Tensor) -> float:
    """The total correlation of N(0, cov) in closed form: ½ (Σ log cov_ii − log det cov)."""
    return 0.5 * float(torch.log(torch.diagonal(cov)).sum() - torch.logdet(cov))


@pytest.mark.parametrize("correlation", [0.0, 0.8])
def test_the_stratified_tc_estimate_matches_the_closed_form(correlation):
    z, mu, sigma, aggregate_cov = codes(2048, correlation)
    parts = kl_decomposition(z, mu, sigma, dataset_size=N, sampling="mss")
    assert float(parts["tc"]) == pytest.approx(gaussian_tc(aggregate_cov), abs=0.08)
    if correlation == 0.0:
        assert abs(float(parts["tc"])) < 0.08


def test_the_three_parts_add_up_to_the_sampled_kl_and_the_weighted_estimate_ranks_alike():
    z, mu, sigma, _ = codes(1024, 0.8)
    stratified = kl_decomposition(z, mu, sigma, N, "mss")
    analytic_kl = float((0.5 * (sigma**2 + mu**2 - 1 - torch.log(sigma**2))).sum(1).mean())
    assert float(sum(stratified.values())) == pytest.approx(analytic_kl, rel=0.1)
    independent = kl_decomposition(*codes(1024, 0.0)[:3], N, "mws")
    correlated = kl_decomposition(z, mu, sigma, N, "mws")
    assert float(correlated["tc"]) > float(independent["tc"]) + 0.3  # MWS carries a constant, not the ranking


def test_mmd_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(512, 4, generator=g), torch.randn(512, 4, generator=g)
    same = float(mmd(x, y))
    shifted = [float(mmd(x, y + shift)) for shift in (0.5, 1.0)]
    assert abs(same) < 0.005
    assert same + 0.01 < shifted[0] < shifted[1]
    assert float(mmd(x, y + 1.0, kernel="rbf")) > float(mmd(x, y, kernel="rbf")) + 0.01


def test_dip_penalties_vanish_for_an_identity_covariance_and_not_otherwise():
    assert float(dip_penalty(torch.eye(3), 10.0, 100.0)) == 0.0
    g = torch.Generator().manual_seed(0)
    means = torch.randn(4096, 3, generator=g) * math.sqrt(0.5)
    dip_ii = covariance(means) + torch.diag(torch.full((3,), 0.5))  # Cov[mu] + E[σ²] = I
    assert float(dip_penalty(dip_ii, 10.0, 10.0)) < 0.05
    assert float(dip_penalty(covariance(means), 10.0, 10.0)) > 0.5  # DIP-I sees only Cov[mu] = I/2


def tiny_vectors_model():
    torch.manual_seed(0)
    return create_model("mlp_vectors", 2, TINY["mlp_vectors"]).eval()


def test_the_iwae_bound_with_one_sample_is_the_elbo_and_grows_with_k():
    model, batch = tiny_vectors_model(), torch.randn(16, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mu, sigma = model.encode(batch)
        torch.manual_seed(3)
        one = iwae_bound(log_importance_weights(model, batch, mu, sigma, 1)[0])
        torch.manual_seed(3)
        z = mu + sigma * torch.randn((1, *mu.shape))[0]
        elbo = model.log_likelihood(batch, z) - (0.5 * (sigma**2 + mu**2 - 1 - torch.log(sigma**2))).sum(1)
        log_q_minus_log_p = (-0.5 * ((z - mu) / sigma) ** 2 - sigma.log() + 0.5 * z**2).sum(1)
        assert torch.allclose(one, model.log_likelihood(batch, z) - log_q_minus_log_p, atol=1e-4)
        bounds = [float(torch.stack([iwae_bound(log_importance_weights(model, batch, mu, sigma, k)[0]).mean()
                                     for _ in range(200)]).mean()) for k in (1, 5, 25)]
    assert bounds[0] == pytest.approx(float(elbo.mean()), abs=0.05 * abs(float(elbo.mean())))
    assert bounds[0] < bounds[1] < bounds[2]


def train_discriminator(make_codes, steps: int = 300) -> float:
    """Train FactorVAE's discriminator on codes from ``make_codes`` and return its accuracy on fresh ones."""
    torch.manual_seed(0)
    net = discriminator(2, 32, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        z = make_codes(256)
        logits = torch.cat([net(z), net(permute_dims(z))])
        labels = torch.cat([torch.zeros(256), torch.ones(256)]).long()
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        z = make_codes(4096)
        return 0.5 * float((net(z).argmax(1) == 0).float().mean() + (net(permute_dims(z)).argmax(1) == 1).float().mean())


def test_the_factorvae_discriminator_stays_at_chance_on_independent_codes_and_learns_correlated_ones():
    assert train_discriminator(lambda n: torch.randn(n, 2)) == pytest.approx(0.5, abs=0.05)
    assert train_discriminator(lambda n: codes(n, 0.95, seed=int(torch.randint(0, 10**6, ())))[0]) > 0.7


def test_the_annealed_capacity_rises_linearly_then_holds():
    objective = AnnealedCapacity({"c_max": 20.0}, ObjectiveContext(steps_per_epoch=10, epochs=6))
    assert objective.ramp_steps == 20  # a third of the run's 60 steps by default
    assert [objective.capacity_at(s) for s in (0, 10, 20, 40)] == [0.0, 10.0, 20.0, 20.0]
    objective.before_step(5)
    assert float(objective.capacity) == 5.0


def default_model(domain_name: str) -> str:
    return get_domain(domain_name).default_config()["model"]["name"]


def objective_pairs():
    """(domain, model, objective) for each domain's default model and every objective it takes."""
    return [(d, default_model(d), o) for d in list_domains() for o in OBJECTIVES.names()
            if takes_objective(default_model(d), o)]


@pytest.mark.parametrize("domain_name, model_name, objective_name", objective_pairs())
def test_every_objective_trains_every_domains_model_it_takes(domain_name, model_name, objective_name):
    torch.manual_seed(0)
    domain, model = get_domain(domain_name), create_model(model_name, 2, TINY[model_name])
    batch = stored_batch(domain.data_format, 8, torch.Generator().manual_seed(0), TINY[model_name])
    objective = create_objective(objective_name, {"disc_hidden": 8, "disc_layers": 1} if objective_name == "factorvae"
                                 else {}, ObjectiveContext(latent_dim=2, dataset_size=8, steps_per_epoch=2))
    step = TrainStep(model, make_optimizer(model, TrainConfig()), "fp32",
                     torch.device("cpu"), LossConfig(), objective=objective)
    before = [p.detach().clone() for p in model.parameters()]
    for index, half in enumerate((batch[:4], batch[4:]), start=1):
        loss, _, _ = step(half, 1.0, global_step=index)
        assert math.isfinite(float(loss))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    metrics = evaluate(model, batch, domain, LossConfig(), 1.0, objective=objective)
    assert math.isfinite(metrics["loss"])


def test_only_the_dual_ternary_model_refuses_the_other_objectives():
    refusing = [m for m in MODELS.names() if not takes_objective(m, "btcvae")]
    assert refusing == ["ternary_dual"]
    assert all(takes_objective(m, "elbo") for m in MODELS.names())


def train(corpus, runs, run_id, *extra):
    args = ["train", "arc", "--data", corpus, "--runs-dir", runs, "--run-id", run_id, "--no-progress",
            "--set", "threads=1", "--set", "train.early_stopping_patience=0", *TINY_MODEL_FLAGS, *extra]
    return runner.invoke(app, [str(a) for a in args])


SMALL_DISCRIMINATOR = ["--set", "objective.disc_hidden=16", "--set", "objective.disc_layers=2"]


@pytest.mark.parametrize("objective", ["factorvae", "annealed"])
def test_an_objective_with_state_resumes_exactly(tmp_path, arc_corpus, objective):
    runs = tmp_path / "runs"
    own = SMALL_DISCRIMINATOR if objective == "factorvae" else ["--set", "objective.capacity_steps=6"]  # not run-length
    extra = ["--objective", objective, *own]
    assert train(arc_corpus, runs, "whole", "--epochs", 2, *extra).exit_code == 0
    assert train(arc_corpus, runs, "split", "--epochs", 1, *extra).exit_code == 0
    resumed = train(arc_corpus, runs, "split", "--epochs", 2, "--resume", *extra[2:])
    assert resumed.exit_code == 0, resumed.output
    whole, split = [[json.loads(line) for line in (runs / r / "metrics.jsonl").read_text().splitlines()]
                    for r in ("whole", "split")]
    keys = ["val_loss", "val_recon", "train_loss"] + (["val_disc_loss", "val_tc"] if objective == "factorvae"
                                                      else ["val_capacity"])
    assert [[r[k] for k in keys] for r in whole] == [[r[k] for k in keys] for r in split]
    if objective == "factorvae":
        last = torch.load(runs / "split" / "checkpoints" / "last.pt", weights_only=False)
        assert "discriminator.0.weight" in last["step"]["objective"] and last["step"]["objective_optimizer"]["state"]


def test_factorvae_trains_under_torchrun_with_two_workers(tmp_path, arc_corpus):
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "vaekit", "train", "arc", "--data", str(arc_corpus), "--runs-dir", str(runs),
               "--run-id", "ddp", "--no-progress", "--set", "threads=1", "--epochs", "1", "--objective", "factorvae",
               *SMALL_DISCRIMINATOR, *TINY_MODEL_FLAGS]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((runs / "ddp" / "metrics.jsonl").read_text().splitlines()[-1])
    assert math.isfinite(record["val_disc_loss"]) and 0.0 <= record["val_disc_accuracy"] <= 1.0


@pytest.mark.parametrize("extra, message", [
    (["--objective", "btcvea"], "did you mean 'btcvae'"),
    (["--objective", "btcvae", "--set", "objective.c_max=5"], "objective.c_max is not a key of objective 'btcvae'; "
                                                              "it takes: objective.alpha, objective.beta"),
    (["--objective", "iwae", "--set", "objective.samples=0"], "objective.samples must be an integer of at least 1"),
    (["--objective", "factorvae", "--batch-size", "1"], "train.batch_size 1 is too small for objective 'factorvae'"),
    (["--objective", "annealed", "--set", "objective.gamma=-1"], "objective.gamma must be positive"),
])
def test_bad_objective_input_is_refused_before_anything_is_written(tmp_path, arc_corpus, extra, message):
    runs = tmp_path / "runs"
    result = train(arc_corpus, runs, "bad", "--epochs", 1, *extra)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.lower().split()) or message in " ".join(result.output.split())
    assert not (runs / "bad").exists()


def test_a_model_without_a_gaussian_posterior_is_refused_naming_the_objectives_it_takes(tmp_path, ternary_corpus):
    result = runner.invoke(app, ["train", "ternary", "--data", str(ternary_corpus), "--runs-dir", str(tmp_path),
                                 "--run-id", "dual", "--model", "ternary_dual", "--objective", "btcvae"])
    assert result.exit_code == 2
    assert "model 'ternary_dual' cannot train with objective 'btcvae'" in " ".join(result.output.split())
    assert "it takes: elbo" in " ".join(result.output.split())
    assert not (tmp_path / "dual").exists()


def test_a_non_finite_discriminator_loss_stops_with_65(tmp_path, arc_corpus, monkeypatch):
    from vaekit.objectives import factorvae

    original = factorvae.FactorVAE.forward

    def poisoned(self, model, batch, beta, loss_cfg):
        out = original(self, model, batch, beta, loss_cfg)
        out.auxiliary = out.auxiliary * math.nan
        return out

    monkeypatch.setattr(factorvae.FactorVAE, "forward", poisoned)
    result = train(arc_corpus, tmp_path / "runs", "nan", "--epochs", 1, "--objective", "factorvae", *SMALL_DISCRIMINATOR)
    assert result.exit_code == 65
    assert "auxiliary loss" in " ".join(result.output.split())


def test_infovae_stays_finite_on_an_epochs_last_batch_of_one_item():
    """An epoch's last batch can hold one item (n % batch_size == 1): the MMD has no pairs there."""
    one = torch.randn(1, 4)
    assert math.isfinite(float(mmd(one, torch.randn(1, 4))))
    model = tiny_vectors_model().train()
    objective = create_objective("infovae", {}, ObjectiveContext(latent_dim=2, dataset_size=9))
    assert math.isfinite(float(objective(model, torch.randn(1, 5), torch.tensor(1.0), LossConfig()).total.detach()))

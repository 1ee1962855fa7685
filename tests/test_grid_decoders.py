"""The ARC context decoder decodes from z alone, and evaluation reports how much z matters."""

import json

import torch
from typer.testing import CliRunner

from vaekit.config import LossConfig
from vaekit.domains import get_domain
from vaekit.evaluation import evaluate
from vaekit.models import create_model
from vaekit.models.grid_ar import causal_mask

TINY_AR = {"channels": [8, 8, 8], "hidden": 16, "decoder_channels": [8, 8], "head_channels": 8}


def grids(n, seed):
    return torch.randint(0, 10, (n, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_causal_mask_reads_only_cells_before_the_centre():
    mask = causal_mask(5)
    assert mask[:2].all() and mask[2, :2].all()
    assert mask[2, 2:].sum() == 0 and mask[3:].sum() == 0


def test_teacher_forced_logits_of_a_cell_do_not_depend_on_it_or_later_cells():
    torch.manual_seed(0)
    model = create_model("conv2d_ar", 4, TINY_AR).eval()
    x = grids(2, 0)
    z = torch.randn(2, 4)
    changed = x.clone()
    changed[:, 7, 5:] = (changed[:, 7, 5:] + 1) % 10  # cell (7, 5) and everything after it in row 7
    changed[:, 8:] = (changed[:, 8:] + 1) % 10
    before = model.decode_for_likelihood(z, x)[:, :, :7]
    after = model.decode_for_likelihood(z, changed)[:, :, :7]
    assert torch.equal(before, after)
    cell_before = model.decode_for_likelihood(z, x)[:, :, 7, 5]
    assert torch.allclose(cell_before, model.decode_for_likelihood(z, changed)[:, :, 7, 5])


def test_free_running_reconstruction_never_reads_the_target():
    torch.manual_seed(0)
    model = create_model("conv2d_ar", 4, TINY_AR).eval()
    x, other = grids(6, 1), grids(6, 2)
    mu = model.encode(x)[0]
    reconstruction = model.decode_data(mu)
    # Scoring a likelihood does read its grid (teacher forcing)...
    assert not torch.equal(model.decode_for_likelihood(mu, x), model.decode_for_likelihood(mu, other))
    model.loss_terms(other)
    # ...but decoding from z gives the same grid whichever grid was offered as a target,
    assert torch.equal(model.decode_data(mu), reconstruction)
    # and each free-running logit is the teacher-forced logit of the model's own earlier decisions.
    assert torch.allclose(model.decode(mu), model.decode_for_likelihood(mu, reconstruction), atol=1e-5)


class LookupVAE(torch.nn.Module):
    """A 'perfect' grid VAE for tests: z is the item's index, the decoder looks the grid up."""

    latent_dim = 1

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def objective(self, batch, beta, loss_cfg):
        index = torch.stack([torch.nonzero((self.table == g).flatten(1).all(1))[0, 0] for g in batch]).float()
        mu = index[:, None]
        logits = self.decode(mu)
        from vaekit.models.base import LossTerms
        terms = LossTerms(recon=torch.zeros(len(batch)), kl_per_dim=torch.zeros(len(batch), 1), output=logits, mu=mu)
        return terms.recon.mean(), terms, {}

    def decode(self, z):
        return torch.nn.functional.one_hot(self.table[z[:, 0].long()].long(), 10).permute(0, 3, 1, 2).float()

    def reconstruct(self, output):
        return output.argmax(1).to(torch.uint8)


def test_z_swap_accuracy_drops_for_a_decoder_that_uses_z():
    table = grids(8, 3)
    metrics = evaluate(LookupVAE(table), table, get_domain("arc"), LossConfig(), 0.0, z_swap=True)
    assert metrics["pixel_accuracy"] == 1.0
    assert metrics["zswap_pixel_accuracy"] < 0.2  # random grids agree on about 10% of cells


def test_z_swap_accuracy_equals_accuracy_for_a_decoder_that_ignores_z():
    torch.manual_seed(0)
    model = create_model("conv2d", 2, {"channels": [8, 8, 8], "hidden": 16, "decoder_channels": [8, 8]})
    with torch.no_grad():
        model.decoder.dense[0].weight.zero_()  # the decoder no longer sees z
    metrics = evaluate(model, grids(16, 4), get_domain("arc"), LossConfig(), 0.0, z_swap=True)
    assert metrics["zswap_pixel_accuracy"] == metrics["pixel_accuracy"]


def test_accuracy_by_density_and_colour_count_covers_every_grid():
    domain = get_domain("arc")
    batch = torch.zeros(4, 16, 16, dtype=torch.uint8)
    batch[1, :2] = 3                            # 12.5% non-zero, 2 colours
    batch[2] = grids(1, 5)[0]                   # dense, many colours
    batch[3, :, :10] = 1                        # 62.5% non-zero, 2 colours
    model = create_model("conv2d", 2, {"channels": [8, 8, 8], "hidden": 16, "decoder_channels": [8, 8]})
    sums = domain.quality_sums(model, batch, torch.nn.functional.one_hot(batch.long(), 10).permute(0, 3, 1, 2))
    density = [sums[f"pixel_accuracy_density_{b}"][1] for b in ("00_10", "10_30", "30_60", "60_100")]
    colours = [sums[f"pixel_accuracy_colours_{b}"][1] for b in ("1", "2", "3", "4plus")]
    assert [int(d) for d in density] == [256, 256, 0, 512]
    assert [int(c) for c in colours] == [256, 512, 0, 256]


def test_tiny_autoregressive_run_trains_evaluates_and_samples(tmp_path, arc_corpus):
    from vaekit.cli import app

    runner = CliRunner()
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "arc", "--data", str(arc_corpus), "--runs-dir", str(runs), "--run-id", "ar",
                                 "--no-progress", "--model", "conv2d_ar", "--latent", "4", "--epochs", "2",
                                 "--batch-size", "64", "--set", f"model.options={json.dumps(TINY_AR)}"])
    assert result.exit_code == 0, result.output
    test = json.loads((runs / "ar" / "results" / "metrics.json").read_text())["test"]
    for key in ("pixel_accuracy", "zswap_pixel_accuracy", "pixel_accuracy_density_00_10", "kl_per_dim", "active_dims"):
        assert key in test, key
    assert runner.invoke(app, ["sample", "ar", "--runs-dir", str(runs), "-n", "4"]).exit_code == 0
    assert (runs / "ar" / "results" / "reconstructions.png").is_file()


def test_autoregressive_likelihood_is_teacher_forced_and_iwae_bounds_it_above_the_elbo():
    from vaekit.likelihood import importance_sampled_log_likelihood

    torch.manual_seed(0)
    model = create_model("conv2d_ar", 4, TINY_AR).eval()
    x = grids(4, 6)
    z = model.encode(x)[0]
    expected = -model.reconstruction_nll(model.decode_for_likelihood(z, x), x, "sum")
    assert torch.allclose(model.log_likelihood(x, z), expected)
    estimate = importance_sampled_log_likelihood(model, x, 16, torch.Generator().manual_seed(0))
    assert (estimate.iwae >= estimate.elbo).all()


def test_autoregressive_evaluation_and_decoding_run_in_bf16_inference():
    from vaekit.training.precision import inference

    torch.manual_seed(0)
    model = create_model("conv2d_ar", 4, TINY_AR)
    x = grids(8, 6)  # random grids: dense, many colours
    metrics = evaluate(model, x, get_domain("arc"), LossConfig(), 1.0, z_swap=True, precision="bf16")
    for key in ("loss", "pixel_accuracy", "zswap_pixel_accuracy", "pixel_accuracy_density_60_100",
                "pixel_accuracy_colours_4plus"):
        assert 0 <= metrics[key] < float("inf"), key
    with inference("bf16", torch.device("cpu")):
        mu = model.encode(x)[0]
        logits = model.decode(mu)
        decoded = model.decode_data(mu)
    assert logits.dtype == torch.float32 and logits.shape == (8, 10, 16, 16)
    assert decoded.dtype == torch.uint8 and decoded.shape == x.shape

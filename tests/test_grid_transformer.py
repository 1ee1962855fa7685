"""The transformer grid VAE: shapes, that it learns, that every cell sees the others, and its bad input."""

import pytest
import torch
from typer.testing import CliRunner

from vaekit.cli import app
from vaekit.config import LossConfig
from vaekit.models import create_model
from vaekit.models.attention import count_cpu_attention_flops
from vaekit.models.grid_transformer import TransformerGridVAE

TINY = TransformerGridVAE.tiny_options


def grids(n, seed):
    return torch.randint(0, 10, (n, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["transformer_grid", "transformer_grid_cls"])
def test_forward_gives_a_posterior_and_logits_of_every_cell(name):
    torch.manual_seed(0)
    model = create_model(name, 6, TINY)
    mu, sigma = model.encode(grids(3, 0))
    assert mu.shape == sigma.shape == (3, 6) and (sigma > 0).all()
    assert model.decode(mu).shape == (3, 10, 16, 16)
    assert model.decode_data(mu).shape == (3, 16, 16) and model.decode_data(mu).dtype == torch.uint8


def test_a_cell_of_the_input_reaches_every_part_of_the_output():
    """Attention, not a local window: changing one corner cell moves the logits of the far corner."""
    torch.manual_seed(0)
    model = create_model("transformer_grid", 4, TINY).eval()
    x = grids(1, 1)
    changed = x.clone()
    changed[0, 0, 0] = (changed[0, 0, 0] + 1) % 10
    before, after = (model.decode(model.encode(g)[0])[0, :, 15, 15] for g in (x, changed))
    assert not torch.allclose(before, after)


def test_the_loss_falls_over_a_few_steps_on_a_tiny_batch():
    torch.manual_seed(0)
    model = create_model("transformer_grid", 4, {**TINY, "width": 16})
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch, losses = torch.zeros(8, 16, 16, dtype=torch.uint8), []
    for i in range(8):
        batch[i, 2 * i] = i + 1  # one coloured row per grid on a black background
    for _ in range(30):
        loss, _, _ = model.objective(batch, 0.01, LossConfig())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_the_flop_count_includes_the_attention():
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model("transformer_grid", 4, TINY)
    count_cpu_attention_flops()
    with FlopCounterMode(display=False) as counter:
        model.encode(grids(2, 3))
    attention = 2 * 2 * (2 * 2 * 256 * 256 * 4)  # QKᵀ and AV, 2 FLOPs a product, 2 grids, 2 heads of width 4
    linear_only = sum(v for op, v in counter.get_flop_counts()["Global"].items() if "attention" not in str(op))
    assert counter.get_total_flops() - linear_only == attention


@pytest.mark.parametrize("option, value, message", [
    ("width", 33, "model.options.width 33: must be a multiple of model.options.heads (2)"),
    ("encoder_depth", 0, "model.options.encoder_depth 0: expected an integer ≥ 1"),
    ("decoder_depth", 0, "model.options.decoder_depth 0: expected an integer ≥ 1"),
    ("pool", "max", "model.options.pool 'max': expected one of mean, cls"),
    ("grid_size", 8, "model.options.grid_size 8: the grids are 16×16"),
    ("patch", 3, "model.options.patch 3: must divide model.options.grid_size (16)"),
])
def test_bad_options_exit_2_naming_the_option_before_any_file(tmp_path, arc_corpus, option, value, message):
    result = CliRunner().invoke(app, ["train", "arc", "--model", "transformer_grid", "--data", str(arc_corpus),
                                      "--runs-dir", str(tmp_path), "--run-id", "bad", "--set", "threads=1",
                                      "--set", f"model.options.{option}={value}"])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not list(tmp_path.iterdir())


def test_it_trains_with_a_schedule_and_another_objective(tmp_path, arc_corpus):
    options = [f"model.options.{k}={v}" for k, v in TINY.items()]
    result = CliRunner().invoke(app, ["train", "arc", "--model", "transformer_grid", "--data", str(arc_corpus),
                                      "--runs-dir", str(tmp_path), "--run-id", "tc", "--objective", "btcvae",
                                      "--epochs", "1", "--set", "threads=1", "--set", "beta.schedule=three_phase",
                                      *[a for o in options for a in ("--set", o)]])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tc" / "checkpoints" / "vae_best.pth").is_file()


def test_patches_are_cut_in_raster_order_and_put_back_where_they_came_from():
    from vaekit.models.grid_transformer import from_patches, to_patches

    cells = torch.arange(2 * 16 * 16).view(2, 16, 16)
    patches = to_patches(cells, 4)
    assert patches.shape == (2, 16, 4, 4)
    assert torch.equal(patches[0, 1], cells[0, 0:4, 4:8]) and torch.equal(patches[1, 4], cells[1, 4:8, 0:4])
    assert torch.equal(from_patches(patches, 16), cells)


def test_patch_1_is_the_cell_token_model_parameter_for_parameter():
    torch.manual_seed(0)
    cell_tokens = create_model("transformer_grid", 4, TINY)
    torch.manual_seed(0)
    patch_1 = create_model("transformer_grid", 4, {**TINY, "patch": 1})
    assert {k: v.shape for k, v in cell_tokens.state_dict().items()} == \
        {k: v.shape for k, v in patch_1.state_dict().items()}
    x = grids(2, 4)
    assert torch.equal(cell_tokens.decode(cell_tokens.encode(x)[0]), patch_1.decode(patch_1.encode(x)[0]))


def test_patch_tokens_give_every_cell_its_own_logits_and_colour_place():
    """p = 2: 64 tokens, yet each cell of a patch is read and predicted at its own place."""
    torch.manual_seed(0)
    model = create_model("transformer_grid", 4, {**TINY, "patch": 2}).eval()
    assert model.encoder.positions().shape[0] == 64
    x = grids(1, 5)
    x[0, 0, 0], x[0, 0, 1] = 1, 2
    swapped = x.clone()
    swapped[0, 0, 0], swapped[0, 0, 1] = 2, 1  # two cells of one patch trade colours
    assert not torch.allclose(model.encode(x)[0], model.encode(swapped)[0])
    logits = model.decode(model.encode(x)[0])
    assert logits.shape == (1, 10, 16, 16) and not torch.allclose(logits[0, :, 0, 0], logits[0, :, 0, 1])

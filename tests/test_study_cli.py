"""encode, traverse, interpolate, eval --nll-samples/--json, report/runs --json on tiny runs of
every domain, end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import TINY_MODEL_OPTIONS, TINY_TERNARY_FLAGS
from vaekit import load_corpus
from vaekit.cli import app
from vaekit.domains.ternary import all_operations
from vaekit.trained_runs import load_run

runner = CliRunner()

# domain -> (extra train flags, identifiers encode must carry, whether bits/dim apply)
DOMAINS = {
    "arc": (["--set", f"model.options={json.dumps(TINY_MODEL_OPTIONS)}", "--batch-size", "64"],
            {"task", "height", "width"}, True),
    "atari": (["--latent", "4", "--batch-size", "16",
               "--set", "model.options={channels: [8, 8, 8, 8, 8], decoder_channels: [8, 8, 8, 8, 8]}"],
              {"episode", "step"}, True),
    "ternary": ([*TINY_TERNARY_FLAGS, "--model", "ternary_dual", "--latent", "4",
                 "--set", "model.options={hidden_a: [32], hidden_b: [32]}"], {"index"}, True),
    "gaussians": (["--latent", "8", "--set", "model.options={length: 64, encoder_filters: [8, 8, 8], "
                   "decoder_filters: [8, 8, 8]}"], {"source_index"}, False),
    "images": (["--latent", "4", "--batch-size", "32", "--set",
                "model.options={channels: [8, 8], decoder_channels: [8, 8], hidden: 32}"],
               {"index", "path", "label"}, True),
    "arrays": (["--latent", "4", "--set", "model.options={hidden: [16]}"], {"index"}, False),
}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def gaussians_corpus(tmp_path_factory, arc_corpus):
    from vaekit.domains.gaussians import collect_gaussians

    path = tmp_path_factory.mktemp("splats") / "splats.npz"
    collect_gaussians(arc_corpus, path, count=30, splats=64, steps=5)  # 3 test scenes
    return path


@pytest.fixture(scope="module")
def corpora(arc_corpus, atari_corpus, ternary_corpus, gaussians_corpus, images_corpus, arrays_corpus):
    return {"arc": arc_corpus, "atari": atari_corpus, "ternary": ternary_corpus, "gaussians": gaussians_corpus,
            "images": images_corpus, "arrays": arrays_corpus}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpora):
    """One tiny run per domain, trained for one epoch."""
    folder = tmp_path_factory.mktemp("runs")
    for domain, (flags, _, _) in DOMAINS.items():
        result = invoke("train", domain, "--data", corpora[domain], "--runs-dir", folder, "--run-id", domain,
                        "--epochs", 1, "--no-progress", "--set", "threads=1", *flags)
        assert result.exit_code == 0, result.output
    return folder


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_encode_writes_every_item_with_its_identifiers(domain, runs, corpora, tmp_path):
    out = tmp_path / "codes.npz"
    result = invoke("encode", domain, "--runs-dir", runs, "--out", out, "--batch-size", 7)
    assert result.exit_code == 0, result.output
    corpus = load_corpus(corpora[domain])
    with np.load(out, allow_pickle=False) as saved:
        codes = {key: saved[key] for key in saved.files}
    metadata = json.loads(str(codes.pop("metadata")))
    identifiers = DOMAINS[domain][1]
    assert set(codes) == {"mu", "logvar", "split", "row", *identifiers} and set(metadata["identifiers"]) == identifiers
    total = sum(len(corpus.arrays[s]) for s in ("train", "val", "test"))
    latent_dim = metadata["latent_dim"]
    assert codes["mu"].shape == codes["logvar"].shape == (total, latent_dim) and codes["mu"].dtype == np.float32
    for name in identifiers:  # joins back to the corpus row by row
        test = codes["split"] == "test"
        assert np.array_equal(codes[name][test], corpus.arrays[f"test_{name}"][codes["row"][test]])
    # the same numbers as encoding the test items in one go
    loaded = load_run(domain, runs)
    items = loaded.domain.training_arrays(corpus)["test"]
    with torch.no_grad():
        mu, sigma = loaded.model.encode(torch.as_tensor(items))
    assert np.allclose(codes["mu"][codes["split"] == "test"], mu.numpy(), atol=1e-5)
    assert np.allclose(codes["logvar"][codes["split"] == "test"], 2 * np.log(sigma.numpy()), atol=1e-5)


def test_encode_of_one_split_and_its_errors(runs, corpora, tmp_path):
    result = invoke("encode", "ternary", "--runs-dir", runs, "--split", "val")
    assert result.exit_code == 0, result.output
    with np.load(runs / "ternary" / "results" / "latents_val.npz") as saved:
        assert set(saved["split"].tolist()) == {"val"}
        assert np.array_equal(all_operations()[saved["index"]], load_corpus(corpora["ternary"]).arrays["val"])
    before = corpora["ternary"].read_bytes()
    result = invoke("encode", "ternary", "--runs-dir", runs, "--out", corpora["ternary"])
    assert result.exit_code == 2 and "is not a `vaekit encode` output" in result.stderr
    assert corpora["ternary"].read_bytes() == before
    result = invoke("encode", "ternary", "--runs-dir", runs, "--split", "val")  # its own output: replaced
    assert result.exit_code == 0, result.output
    result = invoke("encode", "ternary", "--runs-dir", runs, "--split", "tests")
    assert result.exit_code == 2 and "--split 'tests'" in result.stderr
    result = invoke("encode", "ternary", "--runs-dir", runs, "--data", corpora["arc"])
    assert result.exit_code == 2 and "a 'arc' corpus, but run 'ternary' is a 'ternary' model" in result.stderr


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_traverse_and_interpolate_draw_pngs(domain, runs, tmp_path):
    result = invoke("traverse", domain, "--runs-dir", runs, "--items", 2, "--steps", 3, "--max-dims", 3,
                    "--out-dir", tmp_path)
    assert result.exit_code == 0, result.output
    pngs = sorted(tmp_path.glob("traversal_test_*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert "mean KL" in result.stdout and result.stdout.count("yes") >= 3  # three dimensions shown
    result = invoke("interpolate", domain, "--runs-dir", runs, "--pairs", 1, "--steps", 4, "--out-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "interpolation_test.png").read_bytes()[:4] == b"\x89PNG"


def test_picture_options_are_checked(runs):
    result = invoke("interpolate", "arc", "--runs-dir", runs, "--item", 0, "--item", 1, "--item", 2)
    assert result.exit_code == 2 and "in pairs" in result.stderr
    result = invoke("traverse", "arc", "--runs-dir", runs, "--item", 10_000)
    assert result.exit_code == 2 and "--item 10000: the split has rows 0 to" in result.stderr
    result = invoke("interpolate", "arc", "--runs-dir", runs, "--method", "cubic")
    assert result.exit_code == 2 and "linear or spherical" in result.stderr


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_eval_json_reports_the_iwae_bound_above_the_elbo(domain, runs):
    result = invoke("eval", domain, "--runs-dir", runs, "--nll-samples", 8, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # stdout holds the JSON document and nothing else
    metrics = document["metrics"]
    assert metrics["iwae_samples"] == 8
    assert metrics["iwae_log_likelihood"] >= metrics["iwae_elbo"]  # Jensen on the same samples
    assert metrics["iwae_log_likelihood"] >= metrics["elbo"]  # the one-sample ELBO of the metric table
    assert ("iwae_bits_per_dim" in metrics) == DOMAINS[domain][2] == metrics["iwae_normalised"]
    declared = [*load_run(domain, runs).domain.targets, *load_run(domain, runs).domain.further_targets]
    assert [t["metric"] for t in document["targets"]] == [t.metric for t in declared]
    baselines = metrics.get("baselines", {})  # every baseline's figure beside each target it scores
    assert bool(baselines) == (domain in ("arc", "atari", "images"))
    for target, reported in zip(declared, document["targets"]):
        assert reported["baselines"] == {name: scores[target.metric] for name, scores in baselines.items()
                                         if target.metric in scores}
        assert reported["baseline"] == next(iter(reported["baselines"].values()), None)
    if domain == "arc":  # the exact-grid rate, last, beside the all-background answer's
        assert document["targets"][-1]["baselines"] == {"all-background": baselines["all-background"]["exact_grid_rate"]}
    recorded = json.loads((runs / domain / "results" / "metrics.json").read_text())["test"]
    assert recorded["iwae_log_likelihood"] == pytest.approx(metrics["iwae_log_likelihood"])


def test_eval_prints_the_specification_block(runs):
    result = invoke("eval", "arc", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Test Set Evaluation (30 images):" and lines[1] == "━" * 32
    assert lines[2].startswith("Pixel-wise Accuracy:  ") and lines[2].endswith(("✓", "✗"))
    assert lines[3].startswith("Mean KL Divergence:   ") and lines[4].startswith("Active Dimensions:    ")
    assert lines[5] == "━" * 32
    if lines[2].endswith("✗"):  # a one-epoch model misses 90 %: the specification's advice follows
        assert "Advice:" in lines[6]
    assert "ELBO (nats/sample)" in result.stdout  # the full table stays below


def test_report_runs_and_models_print_one_json_document(runs):
    result = invoke("report", "arc", "ternary", "--runs-dir", runs, "--json")
    assert result.exit_code == 0, result.output
    assert [r["run"] for r in json.loads(result.stdout)["runs"]] == ["arc", "ternary"]
    result = invoke("runs", "--runs-dir", runs, "--json")
    assert {r["run"] for r in json.loads(result.stdout)["runs"]} == set(DOMAINS)
    result = invoke("models", "--json")
    document = json.loads(result.stdout)
    assert "conv2d" in [m["name"] for m in document["models"]] and "arc" in document["domains"]
    fits = {m["name"]: m["domains"] for m in document["models"]}  # the model–domain contract
    assert fits["conv2d"] == ["arc"] and fits["ternary_dual"] == ["ternary"]


def test_runs_filters_and_sorts(runs, tmp_path):
    result = invoke("runs", "--runs-dir", runs, "--domain", "ternary", "--json")
    assert [r["run"] for r in json.loads(result.stdout)["runs"]] == ["ternary"]
    result = invoke("runs", "--runs-dir", runs, "--sort", "kl", "--json")
    kls = [r["metrics"]["kl"] for r in json.loads(result.stdout)["runs"]]
    assert kls == sorted(kls, reverse=True)
    result = invoke("runs", "--runs-dir", runs, "--sort", "kl", "--ascending", "--json")
    assert [r["metrics"]["kl"] for r in json.loads(result.stdout)["runs"]] == sorted(kls)
    result = invoke("runs", "--runs-dir", runs, "--sort", "pixel_accuracy")
    assert result.exit_code == 0 and result.stdout.index("arc") < result.stdout.index("ternary")  # runs without it last
    result = invoke("runs", "--runs-dir", runs, "--sort", "pixel_acuracy")
    assert result.exit_code == 2 and "pixel_accuracy" in result.stderr


def test_version_and_completion():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip().startswith("vaekit ")
    assert "--install-completion" in invoke("--help").stdout


def test_new_commands_have_help_with_examples():
    for command in ("encode", "traverse", "interpolate", "runs", "models"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Example" in result.stdout, command

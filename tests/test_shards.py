"""Sharded corpora (`vaekit collect ... --shards`): the same corpus as the .npz, training on it equals
training on the .npz, and every damaged or unfinished corpus is refused with exit 2 naming the shard."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import TINY_ATARI_COLLECT, collect
from vaekit import load_corpus
from vaekit.cli import app
from vaekit.errors import VaekitUsageError
from vaekit.shards import INDEX, ShardWriter
from vaekit.training.device import to_device

runner = CliRunner()
TINY_FRAMES = ["--set", "model.options={channels: [8, 8], decoder_channels: [8, 8], hidden: 16}", "--set", "threads=1",
               "--epochs", "2", "--no-progress"]
SHARD_MIB = "0.05"  # 52 KiB: a 16×16×3 image is 768 bytes, so 68 images a shard and 4 shards of training images


@pytest.fixture(scope="module")
def image_array(tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "images.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (300, 16, 16, 3), dtype=np.uint8))
    return path


@pytest.fixture
def sharded(tmp_path, image_array):
    result = collect("images", "--from", image_array, "--out", tmp_path / "im.npz", "--shards", "--shard-mib",
                     SHARD_MIB)
    assert result.exit_code == 0, result.output
    return tmp_path / "im.shards"


def index_of(folder) -> dict:
    return json.loads((folder / INDEX).read_text())


def train(corpus, runs, run_id, *extra):
    return runner.invoke(app, [str(a) for a in ("train", "images", "--data", corpus, "--runs-dir", runs, "--run-id",
                                                run_id, *TINY_FRAMES, *extra)])


def refusal(corpus, tmp_path) -> str:
    result = train(corpus, tmp_path / "runs", "refused")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "runs" / "refused").exists()
    return result.stderr.strip()


def test_collect_writes_shards_and_an_index_marked_complete(sharded):
    index = index_of(sharded)
    assert index["complete"] is True and index["format"] == "vaekit-sharded-corpus"
    train_shards = index["arrays"]["train"]["shards"]
    assert [s["file"] for s in train_shards] == [f"train-{k:05d}.npy" for k in range(4)]
    assert sum(s["count"] for s in train_shards) == index["arrays"]["train"]["count"] == 240


@pytest.mark.parametrize("domain, args", [
    ("images", None),  # the image array of the fixture
    ("arrays", None),
    ("sprites", ["--count", "300"]),
    ("atari", TINY_ATARI_COLLECT[2:]),
])
def test_every_collect_writes_the_same_corpus_sharded_as_in_its_npz(tmp_path, image_array, domain, args):
    if domain == "images":
        args = ["--from", image_array]
    elif domain == "arrays":
        np.save(tmp_path / "v.npy", np.random.default_rng(1).normal(size=(200, 5)).astype(np.float32))
        args = ["--from", tmp_path / "v.npy"]
    for extra in ([], ["--shards", "--shard-mib", SHARD_MIB]):
        result = collect(domain, *args, "--out", tmp_path / "c.npz", *extra)
        assert result.exit_code == 0, result.output
    whole, sharded = load_corpus(tmp_path / "c.npz"), load_corpus(tmp_path / "c.shards")
    assert sorted(sharded.arrays) == sorted(whole.arrays)
    for name, array in whole.arrays.items():
        assert np.array_equal(np.asarray(sharded.arrays[name]), array), name
    assert sharded.metadata["counts"] == whole.metadata["counts"]


def test_training_on_the_shards_equals_training_on_the_npz(tmp_path, image_array, sharded):
    assert collect("images", "--from", image_array, "--out", tmp_path / "im.npz").exit_code == 0
    runs = tmp_path / "runs"
    assert train(tmp_path / "im.npz", runs, "whole").exit_code == 0
    result = train(sharded, runs, "sharded")
    assert result.exit_code == 0, result.output
    records = {run: [json.loads(line) for line in (runs / run / "metrics.jsonl").read_text().splitlines()]
               for run in ("whole", "sharded")}
    drop = {"seconds"}
    assert ([{k: v for k, v in r.items() if k not in drop} for r in records["sharded"]]
            == [{k: v for k, v in r.items() if k not in drop} for r in records["whole"]])
    for command in ("eval", "sample", "report", "encode"):  # the run dir names the sharded corpus; these read it
        assert runner.invoke(app, [command, "sharded", "--runs-dir", str(runs)]).exit_code == 0, command


def test_a_missing_shard_is_refused_naming_it(tmp_path, sharded):
    (sharded / "train-00002.npy").unlink()
    message = refusal(sharded, tmp_path)
    assert "shard train-00002.npy of array 'train' is missing" in message and "collect it again" in message


def test_a_truncated_shard_is_refused_naming_it(tmp_path, sharded):
    shard = sharded / "train-00001.npy"
    shard.write_bytes(shard.read_bytes()[:-100])
    assert "shard train-00001.npy of array 'train' has" in refusal(sharded, tmp_path)
    assert "(truncated or replaced)" in refusal(sharded, tmp_path)


def test_a_foreign_shard_of_the_same_shape_is_refused_by_its_checksum(tmp_path, sharded):
    other = tmp_path / "other.npy"
    np.save(other, np.random.default_rng(9).integers(0, 256, (68, 16, 16, 3), dtype=np.uint8))
    os.replace(other, sharded / "train-00000.npy")
    message = refusal(sharded, tmp_path)
    assert "shard train-00000.npy of array 'train' does not match its checksum" in message


def test_an_index_that_disagrees_with_its_shards_is_refused(tmp_path, sharded):
    index = index_of(sharded)
    index["arrays"]["train"]["item_shape"] = [16, 16, 1]
    (sharded / INDEX).write_text(json.dumps(index))
    assert "the index disagrees with its shard" in refusal(sharded, tmp_path)
    index["arrays"]["train"]["item_shape"] = [16, 16, 3]
    index["arrays"]["train"]["count"] = 250
    (sharded / INDEX).write_text(json.dumps(index))
    assert "array 'train': its shards hold 240 items, index.json says 250" in refusal(sharded, tmp_path)


def test_a_collect_killed_half_way_is_refused_as_incomplete(tmp_path, image_array, monkeypatch):
    def killed(self, metadata):
        raise KeyboardInterrupt  # as a signal would stop it: after some shards, before the index is complete

    monkeypatch.setattr(ShardWriter, "finish", killed)
    result = collect("images", "--from", image_array, "--out", tmp_path / "im.npz", "--shards", "--shard-mib",
                     SHARD_MIB)
    assert result.exit_code != 0
    monkeypatch.undo()
    folder = tmp_path / "im.shards"
    assert (folder / "train-00000.npy").is_file() and index_of(folder)["complete"] is False
    message = refusal(folder, tmp_path)
    assert "incomplete: its collect was stopped before it finished" in message
    again = collect("images", "--from", image_array, "--out", tmp_path / "im.npz", "--shards")  # starts again
    assert again.exit_code == 0 and index_of(folder)["complete"] is True


def test_a_refused_collect_leaves_no_folder_and_a_foreign_folder_is_left_alone(tmp_path, image_array):
    result = collect("images", "--from", image_array, "--out", tmp_path / "im.npz", "--shards", "--resize", "no")
    assert result.exit_code == 2 and not (tmp_path / "im.shards").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = collect("images", "--from", image_array, "--out", tmp_path / "mine", "--shards")
    assert result.exit_code == 2 and "holds no index.json of a vaekit sharded corpus" in result.stderr
    (tmp_path / "mine" / "index.json").write_text('{"name": "my web app"}')
    result = collect("images", "--from", image_array, "--out", tmp_path / "mine", "--shards")
    assert result.exit_code == 2 and (tmp_path / "mine" / "index.json").read_text() == '{"name": "my web app"}'
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    result = collect("images", "--from", image_array, "--out", tmp_path / "x.npz", "--shards", "--shard-mib", "0")
    assert result.exit_code == 2 and "--shard-mib 0.0: expected a positive size" in result.stderr


def test_batches_read_ahead_or_not_are_the_rows_and_a_corpus_changed_under_training_is_refused(sharded):
    split = to_device(load_corpus(sharded).arrays["train"], "cpu")
    whole = np.concatenate([np.load(sharded / f"train-{k:05d}.npy") for k in range(4)])
    rows = torch.tensor([0, 239, 70, 71])  # across three shards, out of order
    split.prefetch(rows)  # read ahead, as the epoch does for its next batch
    assert torch.equal(split[rows], torch.from_numpy(whole[rows.numpy()]))
    assert torch.equal(split[10:13], torch.from_numpy(whole[10:13]))
    split.check_unchanged()
    shard = sharded / "train-00003.npy"
    os.utime(shard, ns=(0, shard.stat().st_mtime_ns + 10**9))
    with pytest.raises(VaekitUsageError, match="train-00003.npy: the corpus changed while training read it"):
        split.check_unchanged()


class ChannelFirstImages(torch.utils.data.Dataset):
    """(image, label) items as torchvision gives them: float (C, H, W) tensors in [0, 1]."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return torch.from_numpy(self.images[i]).permute(2, 0, 1).float() / 255, 0


def test_a_large_dataset_given_to_train_streams_into_shards_and_trains_like_the_array(tmp_path, image_array,
                                                                                    monkeypatch):
    import vaekit
    import vaekit.domains.images as images_module

    images = np.load(image_array)
    options = dict(epochs=1, threads=1, quiet=True, runs_dir=tmp_path / "runs",
                   overrides={"model.options": {"channels": [8, 8], "decoder_channels": [8, 8], "hidden": 16}})
    whole = vaekit.train("images", data=images, run_id="whole", **options)
    monkeypatch.setattr(images_module, "STREAM_DATASETS_FROM", 0)  # every Dataset counts as large

    def no_stacking(data):
        raise AssertionError("a large Dataset was stacked in memory")

    monkeypatch.setattr(images_module, "python_items", no_stacking)
    streamed = vaekit.train("images", data=ChannelFirstImages(images), run_id="streamed", **options)
    corpus = streamed.config.data.path
    assert corpus.endswith(".shards") and index_of(tmp_path / "runs" / "corpora" / corpus.split("/")[-1])["complete"]
    assert np.array_equal(np.asarray(load_corpus(corpus).arrays["train"]),
                          load_corpus(whole.config.data.path).arrays["train"])
    records = [[{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (run.path / "metrics.jsonl").read_text().splitlines()] for run in (whole, streamed)]
    assert records[0] == records[1]
    again = vaekit.train("images", data=ChannelFirstImages(images), run_id="again", **options)
    assert again.config.data.path == corpus  # the same data, the same corpus
    assert sorted(p.name for p in (tmp_path / "runs" / "corpora").iterdir() if p.suffix == ".shards") == [
        corpus.split("/")[-1]]

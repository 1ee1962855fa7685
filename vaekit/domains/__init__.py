"""Data domains. A domain knows its corpus, its default model and config, its augmentation, the
metrics that describe its quality, and the pictures that show it.

    @register_domain("arc")
    class ArcDomain(Domain): ...

The model–domain contract: a domain declares the ``data_format`` of its corpus splits and the
``model_protocol`` its metrics and pictures call; a model fits a domain when it reads that format
and provides that protocol (``Domain.model_problem``). Both are checked before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vaekit.corpus import SPLITS, Corpus, load_corpus
from vaekit.data_formats import DataFormat
from vaekit.errors import VaekitUsageError
from vaekit.evaluation import SELECTION_METRICS
from vaekit.models import MODELS
from vaekit.models.protocols import VAEModel, missing_members
from vaekit.registry import Registry
from vaekit.targets import Target


class Domain:
    """Base class of a data domain; subclasses override what differs."""

    name: str = ""
    default_corpus: str = ""
    collect_command: str = ""
    # What every split of the corpus holds (checked on load); the models that read it may train here.
    data_format: DataFormat
    # What this domain's metrics and pictures call on a model (vaekit.models.protocols).
    model_protocol: type = VAEModel
    # Validation metrics of this domain where higher is better: what train.selection_metric may
    # name besides evaluation.SELECTION_METRICS.
    selection_metrics: tuple[str, ...] = ()
    # (metric key, column label, format) shown by `eval` and `report`, in order.
    headline_metrics: list[tuple[str, str, str]] = []
    # Validation metrics drawn in the quality panel of training_curves.png.
    curve_metrics: list[str] = []
    # The headline lines of the evaluation block (`vaekit eval`), with targets where a seed
    # specification states one.
    targets: list[Target] = []
    # What one item is called in the evaluation block ("Test Set Evaluation (10,000 images)").
    item_noun: str = "items"
    # Per-item side arrays of the corpus (stored as ``{split}_{name}``) that identify an item, so
    # that `vaekit encode` output can be joined with other data.
    item_identifiers: tuple[str, ...] = ()
    # The known generative factors of every item (`vaekit eval RUN --disentanglement`): their names
    # and how many values each takes. Empty for a domain without known factors; a domain that sets
    # them implements ``item_factors``, and ``items_for_factors`` if it can draw items for chosen
    # factor values (the FactorVAE score needs that).
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()

    def default_config(self) -> dict:
        """Config overrides (nested dict) that make this domain's defaults."""
        return {"data": {"path": self.default_corpus}}

    def load(self, path: str | Path) -> Corpus:
        """Load a corpus and check every split against ``data_format`` (see ``validate``)."""
        corpus = load_corpus(path, collect_hint=self.collect_command)
        self.validate(corpus)
        return corpus

    def validate(self, corpus: Corpus) -> None:
        """Refuse a corpus whose splits do not hold this domain's data: one error naming the file,
        the split, what it holds and what was expected. Domains with side arrays extend this."""
        expected = self.data_format.description
        for split in SPLITS:
            problem = self.data_format.problem(corpus.arrays[split])
            if problem:
                raise VaekitUsageError(f"{corpus.path}: split '{split}' {problem}; expected {expected}")
        shapes = {split: corpus.arrays[split].shape[1:] for split in SPLITS}
        for split in SPLITS[1:]:
            if shapes[split] != shapes["train"]:
                raise VaekitUsageError(f"{corpus.path}: split '{split}' has items of shape {shapes[split]} but "
                                       f"'train' has {shapes['train']}; every split must hold the same shape")

    def model_problem(self, model_cls: type) -> str | None:
        """Why a model class cannot train on this domain, or None when it fits."""
        reads = getattr(model_cls, "data_format", None)
        if reads != self.data_format:
            what = reads.description if isinstance(reads, DataFormat) else "no declared data format"
            return f"it reads {what}, the domain holds {self.data_format.description}"
        missing = missing_members(model_cls, self.model_protocol)
        if missing:
            return f"it lacks {', '.join(missing)} ({self.model_protocol.__name__})"
        return None

    def fitting_models(self) -> list[str]:
        """The registered models that fit this domain."""
        return [name for name in MODELS.names() if self.model_problem(MODELS.get(name)) is None]

    def check_model(self, name: str) -> type:
        """The registered model class ``name``, refused unless it fits this domain."""
        problem = self.model_problem(MODELS.get(name))
        if problem:
            raise VaekitUsageError(f"model '{name}' cannot train on domain '{self.name}': {problem}. "
                                   f"Models for {self.name}: {', '.join(self.fitting_models())}")
        return MODELS.get(name)

    def selection_metric_names(self, model_cls: type) -> list[str]:
        """What train.selection_metric may name for this domain and model."""
        return [*SELECTION_METRICS, *self.selection_metrics]

    def training_arrays(self, corpus: Corpus) -> dict[str, np.ndarray]:
        """The arrays the model consumes, per split (by default the split arrays themselves)."""
        return corpus.splits

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random training augmentation of a stored-format batch; identity by default."""
        return batch

    def quality_sums(self, model, batch: torch.Tensor, output: torch.Tensor) -> dict[str, tuple]:
        """Per-batch (numerator, denominator) sums of this domain's quality metrics."""
        return {}

    def derived_metrics(self, metrics: dict) -> dict:
        """Metrics computed from the split's other metrics (e.g. PSNR from MSE)."""
        return {}

    def infer_model_options(self, corpus: Corpus) -> dict:
        """Model options that follow from the data (e.g. frame channels); config options win."""
        return {}

    def extra_metrics(self, model, tensors: dict, config, during_training: bool) -> dict:
        """Metrics that need more than one validation batch at a time (e.g. coverage of a whole set).

        ``during_training`` is True for the per-epoch log, where a domain may use a cheaper estimate.
        """
        return {}

    def item_factors(self, arrays: dict[str, np.ndarray], split: str) -> np.ndarray:
        """(n, K) 0-based factor indices of the items of ``split``, one column per ``factor_names``."""
        raise NotImplementedError(f"domain '{self.name}' has no known factors")

    def items_for_factors(self, factors: np.ndarray) -> np.ndarray:
        """Items in stored format for rows of 0-based factor indices (n, K); None when the domain
        cannot make items to order."""
        return None

    def item_images(self, items: np.ndarray, arrays: dict[str, np.ndarray]):
        """Pictures of stored-format items (as ``decode_data`` returns them) and how to draw them.

        Returns:
            (images, style): an array of 2D (colour-mapped) or H×W×3 images, one per item, and a
            ``vaekit.plots.ImageStyle``.
        """
        raise NotImplementedError(f"domain '{self.name}' cannot draw its items")

    def render_items(self, cells: list[list[np.ndarray | None]], arrays: dict[str, np.ndarray], path: Path,
                     title: str, row_labels: list[str], column_labels: list[str]) -> Path:
        """Draw rows of stored-format items as one labelled image grid; None leaves a cell blank."""
        from vaekit.plots import save_item_table

        filled = [item for row in cells for item in row if item is not None]
        images, style = self.item_images(np.stack(filled), arrays)
        pictures = iter(images)
        drawn = [[None if item is None else next(pictures) for item in row] for row in cells]
        return save_item_table(drawn, path, title, row_labels, column_labels, style)

    def save_pictures(self, model, arrays, results: Path, n: int, generator: torch.Generator) -> list[Path]:
        """Write samples and reconstructions under ``results``; return the files written."""
        return []

    @staticmethod
    def samples_and_reconstructions(model, arrays, results: Path, n: int, generator: torch.Generator,
                                    shown: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n prior samples (also saved as results/samples.npz), and up to ``shown`` test items with
        their reconstructions from the posterior mean, all in stored format."""
        device = next(model.parameters()).device
        samples = model.sample_prior(n, generator).cpu().numpy()
        test = torch.as_tensor(arrays["test"][: min(n, shown)], device=device)
        with torch.no_grad():
            recon = model.decode_data(model.encode(test)[0]).cpu().numpy()
        np.savez_compressed(results / "samples.npz", samples=samples)
        return samples, test.cpu().numpy(), recon


def check_domain_class(name: str, cls: type) -> None:
    """A registered domain declares its data format and a model protocol."""
    if not isinstance(getattr(cls, "data_format", None), DataFormat):
        raise TypeError(f"domain '{name}' ({cls.__name__}) must set data_format to the stored format of its "
                        "corpus splits, e.g. vaekit.data_formats.ARC_GRID")
    if not getattr(cls.model_protocol, "_is_protocol", False):
        raise TypeError(f"domain '{name}' ({cls.__name__}): model_protocol must be a typing.Protocol "
                        "(see vaekit.models.protocols)")


DOMAINS: Registry[type[Domain]] = Registry("domain", check_domain_class)
register_domain = DOMAINS.register


def get_domain(name: str) -> Domain:
    return DOMAINS.get(name)()


def list_domains() -> list[str]:
    return DOMAINS.names()


from vaekit.domains import arc, atari, gaussians, sprites, ternary  # noqa: E402,F401

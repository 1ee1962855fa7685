"""Data domains. A domain knows its corpus, its default model and config, its augmentation, the
metrics that describe its quality, and the pictures that show it.

    @register_domain("arc")
    class ArcDomain(Domain): ...

Adding a domain is one module in this package (every module here is imported, so it registers
itself) plus its test: it declares its corpus format, its default model and config, its metrics and
pictures, and its ``collect`` (``collect_options``, ``collector``). No other file lists domains: help texts and
errors take the names from the registry.

The model–domain contract: a domain declares the ``data_format`` of its corpus splits and the
``model_protocol`` its metrics and pictures call; a model fits a domain when it reads that format
and provides that protocol (``Domain.model_problem``). Both are checked before anything is written.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaekit.collecting import Collected, CollectOption, collect_with
from vaekit.corpus import SPLITS, Corpus, load_corpus
from vaekit.data_formats import DataFormat
from vaekit.errors import VaekitUsageError, nearest
from vaekit.evaluation import SELECTION_METRICS
from vaekit.metrics import Metric, common_metric
from vaekit.models import MODELS
from vaekit.models.protocols import VAEModel, missing_members
from vaekit.registry import Registry, import_submodules
from vaekit.targets import TargetCheck


class Domain:
    """Base class of a data domain; subclasses override what differs."""

    name: str = ""
    default_corpus: str = ""
    # How to make this domain's corpus, as a user types it (shown in errors about a missing corpus).
    collect_command: str = ""
    # `vaekit collect NAME`: its options, declared once (vaekit.collecting.CollectOption), and the
    # collector, a function taking exactly those keywords whose docstring is the command's --help
    # (wrap it in staticmethod). It computes and returns a vaekit.collecting.Collected, reporting
    # progress through vaekit.collecting.progress_task; vaekit/cli/collect.py generates the flags,
    # draws the progress and prints the summary; Domain.collect calls it from Python.
    collect_options: tuple[CollectOption, ...] = ()
    collector: Callable[..., Collected] | None = None
    # What every split of the corpus holds (checked on load); the models that read it may train here.
    data_format: DataFormat
    # What this domain's metrics and pictures call on a model (vaekit.models.protocols).
    model_protocol: type = VAEModel
    # The domain's own metrics, declared once each (vaekit.metrics.Metric): key, label, format,
    # direction, and whether train.selection_metric may name it, `eval`/`report` show it, the training
    # curves draw it, and its target (a line of the evaluation block, in this order, with a pass mark
    # where a specification states one). The common metrics every VAE has (loss, KL, ELBO, ...)
    # follow them.
    metrics: tuple[Metric, ...] = ()
    # The metrics a sweep's table shows of each trial's evaluation (before the KL); empty: the first
    # two headline metrics.
    table_metrics: tuple[str, ...] = ()
    # The metric `vaekit sweep run` optimises unless --metric says otherwise, in its declared
    # direction; empty takes the first headline metric.
    sweep_metric: str = ""
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
    # The keys `loss.options` may set for this domain, with what each does; any other is refused.
    loss_options: dict[str, str] = {}

    def collect(self, **options) -> Collected:
        """Build this domain's corpus as `vaekit collect NAME` does: the declared defaults fill what
        ``options`` leaves out (keywords as the collector names them, e.g. ``from_``)."""
        if self.collector is None:
            raise VaekitUsageError(f"domain '{self.name}' has no collect; its corpus comes from elsewhere")
        return collect_with(self.collect_options, self.collector, options)

    def default_config(self) -> dict:
        """Config overrides (nested dict) that make this domain's defaults."""
        return {"data": {"path": self.default_corpus}}

    def load(self, path: str | Path) -> Corpus:
        """Load a corpus, check every split against ``data_format`` (see ``validate``) and keep what
        the domain needs of it (``use_corpus``)."""
        corpus = load_corpus(path, collect_hint=self.collect_command)
        self.validate(corpus)
        self.use_corpus(corpus)
        return corpus

    def use_corpus(self, corpus: Corpus) -> None:
        """Keep what this domain's metrics and losses need of the corpus just loaded (the frames
        domains: its background); nothing by default. ``load`` calls it after ``validate``."""

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

    def corpus_from_data(self, data, folder: Path) -> Path:
        """The corpus file this domain's collect code makes from items given in Python (an array, a
        tensor or a Dataset), written under ``folder``. Domains collected from elsewhere refuse."""
        raise VaekitUsageError(f"domain '{self.name}' takes its data as a corpus path; make one with "
                               f"`{self.collect_command}`")

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

    @property
    def selection_metrics(self) -> tuple[str, ...]:
        """The domain's own metrics that train.selection_metric may name."""
        return tuple(m.key for m in self.metrics if m.selectable)

    @property
    def headline_metrics(self) -> list[tuple[str, str, str]]:
        """(key, label, format) of the domain's rows in `eval` and `report`, in order."""
        return [(m.key, m.label, m.fmt) for m in self.metrics if m.headline]

    @property
    def targets(self) -> list[TargetCheck]:
        """The lines of the evaluation block (`vaekit eval`): the metrics that declare a target."""
        return [m.target_check() for m in self.metrics if m.target is not None and not m.target.beneath]

    @property
    def further_targets(self) -> list[TargetCheck]:
        """The lines beneath the evaluation block (which stays as the seed wrote it), each beside the
        baselines' figures: the metrics whose target is declared ``beneath``."""
        return [m.target_check() for m in self.metrics if m.target is not None and m.target.beneath]

    @property
    def curve_metrics(self) -> list[str]:
        """The validation metrics drawn in the quality panel of training_curves.png."""
        return [m.key for m in self.metrics if m.curve]

    def selection_metric_names(self, model_cls: type) -> list[str]:
        """What train.selection_metric may name for this domain and model."""
        return [*SELECTION_METRICS, *self.selection_metrics]

    def metric(self, key: str) -> Metric | None:
        """The declaration of a metric of this domain's evaluations (its own, then the common ones)."""
        return next((m for m in self.metrics if m.key == key), None) or common_metric(key)

    def normalise(self, items: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Stored items as the model takes them (identity unless the domain normalises; gaussians
        standardises its splat parameters with the corpus's statistics). ``denormalise`` undoes it."""
        return items

    def denormalise(self, values: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Model-format items (what ``model.decode_data`` returns) back in the stored format."""
        return values

    def training_arrays(self, corpus: Corpus) -> dict[str, np.ndarray]:
        """The arrays the model consumes, per split: the splits, normalised."""
        return {split: self.normalise(corpus.arrays[split], corpus.arrays) for split in SPLITS}

    def rgb_images(self, corpus: Corpus) -> dict[str, np.ndarray] | None:
        """The corpus's items as colour pictures per split, (n, H, W, 3) float32 in [0, 1], for
        domains built on another's pictures (gaussians fits splats to them); None when the items
        are not pictures."""
        return None

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random training augmentation of a stored-format batch; identity by default."""
        return batch

    def quality_sums(self, model, batch: torch.Tensor, output: torch.Tensor) -> dict[str, tuple]:
        """Per-batch (numerator, denominator) sums of this domain's quality metrics."""
        return {}

    def baselines(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """The trivial answers shown beside the model's figures, by name ("all-background"), each as
        the answers to every item of the stored ``batch`` in the form ``answer_sums`` scores; none by
        default. `vaekit eval` scores them with the model's metric code, under ``metrics["baselines"]``."""
        return {}

    def answer_sums(self, answers: torch.Tensor, batch: torch.Tensor) -> dict[str, tuple]:
        """Per-batch (numerator, denominator) sums of the domain's quality metrics of ``answers`` to
        the items of ``batch``: how a domain with ``baselines`` scores them (and, through
        ``quality_sums``, the model's reconstructions)."""
        raise NotImplementedError(f"domain '{self.name}' declares baselines but cannot score answers")

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

    def check_loss_options(self, options: dict) -> None:
        """Refuse a ``loss.options`` key this domain does not declare in ``loss_options`` (exit 2)."""
        for key in options:
            if key not in self.loss_options:
                valid = ", ".join(self.loss_options) or "none"
                hint = nearest(key, self.loss_options)
                raise VaekitUsageError(f"loss.options.{key}: not a loss option of domain '{self.name}'"
                                       f"{f' (did you mean {hint!r}?)' if hint else ''}; its loss options: {valid}")

    def prepare_model(self, model, config) -> None:
        """Give a built model what its training loss needs of the loaded corpus (the frames domains:
        the background, for ``loss.options.foreground_weight``); nothing by default. Called after
        ``load`` and before the model trains or is scored."""

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

    def save_pictures(self, model, shown: "PictureItems", results: Path, n: int,
                      generator: torch.Generator) -> list[Path]:
        """Write ``n`` prior samples and reconstructions of the ``shown`` items under ``results``;
        return the files written."""
        return []

    def samples_and_reconstructions(self, model, shown: "PictureItems", results: Path, n: int,
                                    generator: torch.Generator,
                                    count: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n prior samples (also saved as results/samples.npz), and up to ``count`` of the shown items
        with their reconstructions from the posterior mean, all in stored format."""
        device = next(model.parameters()).device
        samples = self.denormalise(model.sample_prior(n, generator).cpu().numpy(), shown.corpus)
        items = shown.items[: min(n, count)]
        with torch.no_grad():
            codes = model.encode(torch.as_tensor(self.normalise(items, shown.corpus), device=device))[0]
            recon = self.denormalise(model.decode_data(codes).cpu().numpy(), shown.corpus)
        np.savez_compressed(results / "samples.npz", samples=samples)
        return samples, items, recon


@dataclass
class PictureItems:
    """What a domain's pictures show: one split of a corpus, in the stored format.

    Attributes:
        split: the split's name.
        items: its items, as stored.
        side: its per-item side arrays by name (``image`` for the corpus's ``{split}_image``).
        corpus: every array of the corpus (normalisation statistics and the like).
    """

    split: str
    items: np.ndarray
    side: dict[str, np.ndarray]
    corpus: dict[str, np.ndarray]


def picture_items(arrays: dict[str, np.ndarray], split: str) -> PictureItems:
    """The items of one split of corpus ``arrays`` and their side arrays, for ``save_pictures``."""
    prefix = f"{split}_"  # np.asarray: a sharded corpus's split is read here whole (val or test: a tenth)
    side = {key[len(prefix):]: np.asarray(value) for key, value in arrays.items() if key.startswith(prefix)}
    return PictureItems(split, np.asarray(arrays[split]), side, arrays)


def check_domain_class(name: str, cls: type) -> None:
    """A registered domain declares its data format and a model protocol, scores the baselines it
    declares, and its collector takes exactly the collect options it declares."""
    if not isinstance(getattr(cls, "data_format", None), DataFormat):
        raise TypeError(f"domain '{name}' ({cls.__name__}) must set data_format to the stored format of its "
                        "corpus splits, e.g. vaekit.data_formats.ARC_GRID")
    if not getattr(cls.model_protocol, "_is_protocol", False):
        raise TypeError(f"domain '{name}' ({cls.__name__}): model_protocol must be a typing.Protocol "
                        "(see vaekit.models.protocols)")
    if cls.baselines is not Domain.baselines and cls.answer_sums is Domain.answer_sums:
        raise TypeError(f"domain '{name}' ({cls.__name__}) declares baselines but no answer_sums to score them")
    if cls.collector is not None:
        takes = list(inspect.signature(cls.collector).parameters)
        declared = [option.name for option in cls.collect_options]
        if takes != declared:
            raise TypeError(f"domain '{name}' ({cls.__name__}): its collector takes {takes} but collect_options "
                            f"declares {declared}")


DOMAINS: Registry[type[Domain]] = Registry("domain", check_domain_class)
register_domain = DOMAINS.register


def get_domain(name: str) -> Domain:
    return DOMAINS.get(name)()


def list_domains() -> list[str]:
    return DOMAINS.names()


import_submodules(__name__, __path__)  # each module registers its domain

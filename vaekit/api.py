"""The Python API, for notebooks and scripts: the functions the CLI calls, behind one ``Run`` object.

    import vaekit
    run = vaekit.train("ternary", epochs=2, latent_dim=8)   # the same config layers as `vaekit train`
    run = vaekit.train("images", data=images_array)         # data: a corpus path, an array, a tensor or a Dataset
    run = vaekit.load_run("runs/run_003")
    mu, logvar = run.encode(run.items("test")[:16])
    operations = run.decode(mu)
    metrics = run.evaluate("test", nll_samples=10)         # the same metrics as `vaekit eval`

docs/api.md documents it; tests/test_api.py runs that page's example.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from vaekit import latent, latent_studies
from vaekit.config import Config, set_dotted
from vaekit.config_fields import ambiguous_keywords, keyword_paths
from vaekit.domains import get_domain
from vaekit.errors import VaekitUsageError, nearest
from vaekit.experiment import resolve_config, train_run
from vaekit.trained_runs import LoadedRun, evaluate_loaded
from vaekit.trained_runs import load_run as load_loaded_run

DEFAULT_RUNS_DIR = Path("runs")


def keyword_layer(fields: dict, overrides: dict | None = None) -> dict:
    """Nested config overrides from keyword arguments.

    A keyword names a config field (``vaekit.config_fields.keyword_paths``): a top-level one
    (``seed``, ``threads``) or a section field whose name is unique (``epochs`` → train.epochs,
    ``latent_dim`` → model.latent_dim, ``max_beta`` → beta.max_beta). ``overrides`` takes dotted names
    for the rest (``{"model.options": {...}}``).
    """
    paths, ambiguous = keyword_paths(), ambiguous_keywords()
    nested: dict = {}
    for name, value in fields.items():
        if value is None:
            continue
        if name in ambiguous:
            raise VaekitUsageError(f"'{name}' is ambiguous ({', '.join(ambiguous[name])}): pass it as "
                                   f"overrides={{'{ambiguous[name][0]}': ...}}")
        if name not in paths:
            hint = nearest(name, paths)
            raise VaekitUsageError(f"unknown config field '{name}'" + (f" (did you mean '{hint}'?)" if hint else ""))
        set_dotted(nested, paths[name], value)
    for dotted, value in (overrides or {}).items():
        set_dotted(nested, dotted, value)
    return nested


class Run:
    """A trained run: its config, domain and best model, and what can be done with them.

    Tensors come back on the CPU in the corpus's stored format (``decode``, ``sample``) or as
    float32 codes (``encode``).
    """

    def __init__(self, loaded: LoadedRun):
        self._loaded = loaded

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}: {self.config.model.name} on {self.config.domain}, d={self.model.latent_dim})"

    @property
    def path(self) -> Path:
        return self._loaded.run.path

    @property
    def run_id(self) -> str:
        return self._loaded.run.run_id

    @property
    def config(self) -> Config:
        return self._loaded.config

    @property
    def domain(self):
        return self._loaded.domain

    @property
    def model(self) -> torch.nn.Module:
        return self._loaded.model

    def items(self, split: str = "test", data: str | Path | None = None) -> np.ndarray:
        """The items of a split as the model takes them (the run's corpus, or ``data``)."""
        latent_studies.chosen_splits(split)
        return latent_studies.corpus_items(self._loaded, data)[1][split]

    def encode(self, x, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means and log-variances, (n, d) each, of items ``x`` (array or tensor)."""
        return latent.encode(self.model, torch.as_tensor(x), batch_size)

    def decode(self, z, batch_size: int = 1024) -> torch.Tensor:
        """Items decoded from codes ``z`` (n, d) by ``model.decode_data``."""
        return latent.decode(self.model, torch.as_tensor(z, dtype=torch.float32), batch_size)

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` items decoded from prior draws (the run's seed unless ``seed`` is given)."""
        generator = torch.Generator().manual_seed(self.config.seed if seed is None else seed)
        return self.model.sample_prior(n, generator).cpu()

    def evaluate(self, split: str = "test", nll_samples: int = 0) -> dict:
        """The metrics `vaekit eval` reports (and records in results/metrics.json)."""
        return evaluate_loaded(self._loaded, split, nll_samples)

    def encode_corpus(self, out: str | Path | None = None, split: str = "all", data: str | Path | None = None) -> Path:
        """What `vaekit encode` writes; returns the .npz path."""
        return latent_studies.encode_corpus(self._loaded, Path(out) if out else None, data, split)[0]

    def traverse(self, split: str = "test", items: int = 3, **options) -> list[Path]:
        """What `vaekit traverse` draws (options as its flags: span, steps, max_dims, rows, out_dir)."""
        return latent_studies.traverse_run(self._loaded, split, items, **options).paths

    def interpolate(self, split: str = "test", pairs: int = 3, **options) -> Path:
        """What `vaekit interpolate` draws (options as its flags: steps, methods, rows, out_dir)."""
        return latent_studies.interpolate_run(self._loaded, split, pairs, **options)


def load_run(ref: str | Path, runs_dir: str | Path = DEFAULT_RUNS_DIR, device: str = "auto") -> Run:
    """Reopen a run from its directory (a path, or a run id under ``runs_dir``)."""
    return Run(load_loaded_run(ref, Path(runs_dir), device))


def train(domain: str, *, config: str | Path | None = None, data=None,
          model: str | None = None, overrides: dict | None = None, runs_dir: str | Path = DEFAULT_RUNS_DIR,
          run_id: str | None = None, resume: bool = False, overwrite: bool = False, progress: bool = True,
          quiet: bool = False, **fields) -> Run:
    """Train like `vaekit train` and return the finished run.

    Layers, lowest first: defaults, the domain's defaults, ``config`` (YAML), then the keyword
    arguments: ``data`` (data.path), ``model`` (model.name), any config field by its name
    (``epochs=5``, ``latent_dim=16``, ``max_beta=0.5``, ``threads=1``) and ``overrides`` by dotted
    name.

    Args:
        data: a corpus path, or (for domains that collect from Python, e.g. images and arrays) a
            numpy array, a tensor or a ``torch.utils.data.Dataset``: the domain's collect code then
            writes it as ``<runs_dir>/corpora/<domain>_<content hash>.npz`` (the same data, the same
            file), and the run's config.yaml names that file like any corpus.
        quiet: print nothing (else the run's lines and, with ``progress``, a live bar).
    """
    in_memory = data is not None and not isinstance(data, (str, Path))
    layer = keyword_layer({**fields, "path": None if in_memory else (str(data) if data else None)}, overrides)
    if model is not None:
        set_dotted(layer, "model.name", model)
    if in_memory:  # every keyword and key is checked before the data is converted and written
        if not resume:
            resolve_config(domain, Path(config) if config else None, [("keyword arguments", layer)])
        set_dotted(layer, "data.path", str(get_domain(domain).corpus_from_data(data, Path(runs_dir) / "corpora")))
    console = Console(quiet=quiet)
    run = train_run(domain, Path(config) if config else None, [("keyword arguments", layer)], Path(runs_dir),
                    run_id, resume, overwrite, console, progress and not quiet)
    return load_run(run.path)

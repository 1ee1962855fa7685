"""vaekit: train and study variational autoencoders from the command line."""

__version__ = "0.1.0"

from vaekit.corpus import load_corpus  # noqa: E402

__all__ = ["__version__", "load_corpus"]

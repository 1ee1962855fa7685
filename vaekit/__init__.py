"""vaekit: train and study variational autoencoders from the command line and from Python.

    import vaekit
    run = vaekit.train("ternary", epochs=2, latent_dim=8)
    mu, logvar = run.encode(run.items("test"))

See docs/api.md. ``train``, ``load_run`` and ``Run`` are imported on first use, so that the
command line starts without loading torch.
"""

__version__ = "0.1.0"

from vaekit.corpus import load_corpus  # noqa: E402

_API = ("train", "load_run", "Run")

__all__ = ["__version__", "load_corpus", *_API]


def __getattr__(name: str):
    if name in _API:
        from vaekit import api

        return getattr(api, name)
    raise AttributeError(f"module 'vaekit' has no attribute '{name}'")

"""What every VAE in the zoo provides to the trainer, evaluators and samplers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from vaekit.data_formats import DataFormat
from vaekit.training.losses import gaussian_kl_per_dim, kl_with_free_bits

SIGMA_FLOOR = 1e-6  # keeps log σ² finite when Softplus underflows


@dataclass
class LossTerms:
    """Per-sample quantities of one forward pass.

    Attributes:
        recon: (batch,) reconstruction negative log-likelihood, reduced over elements.
        kl_per_dim: (batch, d) unclamped KL per latent dimension, in nats.
        output: the decoder output (logits or means), for metrics.
        mu: (batch, d) posterior means.
        sigma: (batch, d) posterior standard deviations (None where a model's posterior is not one
            diagonal Gaussian).
        z: (batch, d) the codes decoded (a reparameterised sample, or mu); None likewise.
    """

    recon: torch.Tensor
    kl_per_dim: torch.Tensor
    output: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor | None = None
    z: torch.Tensor | None = None


def at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in fp32 if autocast left it in a 16-bit float type; fp32 and fp64 pass unchanged."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


class TrainingHooks:
    """What the training loop calls on every model, around its own steps; all do nothing here.

    A model that holds its own schedules or controllers (the dual ternary model) overrides them;
    the loop calls them in this order and never relies on anything else of a model's internals.
    """

    def on_epoch_start(self, epoch: int, total_epochs: int) -> dict:
        """Set per-epoch schedules held by the model; returns values to log (none by default)."""
        return {}

    def after_backward(self) -> None:
        """Called after each step's gradients are final (averaged over workers, clipped) and
        before the optimizer step: the one place a model may read its parameters' ``.grad``."""

    # True where the model corrects the learning rate after each epoch by ``lr_factor()``.
    corrects_lr: bool = False

    def lr_factor(self) -> float:
        """The factor this epoch's updates ask the lr to be multiplied by (1.0 by default); the loop's
        scheduler applies it after the configured schedule's step (vaekit.training.lr_schedules),
        when ``corrects_lr`` is set."""
        return 1.0

    def on_epoch_end(self) -> dict:
        """Act after an epoch's updates and its lr step (e.g. a controller adjusting loss weights);
        returns values to log."""
        return {}

    def phase_boundaries(self) -> list[tuple[int, str]]:
        """(epoch, label) of schedule changes held by the model, marked on the training curves."""
        return []


class GaussianVAE(TrainingHooks, nn.Module):
    """A VAE with a diagonal-Gaussian posterior and a standard-normal prior.

    Subclasses set ``data_format`` (the stored format they read, from vaekit.data_formats),
    ``self.encoder`` (input tensor -> (mu, sigma)) and ``self.decoder`` (z -> output), and define
    how a stored batch becomes model input and how the output is scored against it. Batches arrive
    as stored in the corpus (e.g. uint8 grids or frames). vaekit.models.protocols.VAEModel lists
    everything the rest of vaekit calls.

    ``encode``, ``decode`` and ``decode_for_likelihood`` return fp32 (or the model's own fp64) even
    when autocast runs the layers in bf16 or fp16, so that every loss term, KL sum and metric is
    computed and accumulated in fp32. A subclass that overrides them keeps that contract
    (tests/test_models.py checks it for every registered model).
    """

    data_format: ClassVar[DataFormat]
    latent_dim: int
    encoder: nn.Module
    decoder: nn.Module
    # Convolutional models whose kernels run faster on NHWC tensors say so; ``create_model`` then
    # stores their 4-d weights channels-last (the measurements are in docs/training.md).
    prefers_channels_last: bool = False
    # A variant's defaults in place of its family constructor's (vaekit.models.create_model applies them).
    default_options: ClassVar[dict] = {}
    # Options that make the model tiny (hundreds to a few thousand parameters) for tests and smoke
    # runs; a variant inherits its family's. Shape options (frame_size, features, length) set the
    # size of the example data the tests draw for it.
    tiny_options: ClassVar[dict] = {}
    # False where the objective cannot be compiled as a whole (e.g. it reads gradients or turns tensors
    # into Python numbers every step, so torch.compile would recompile until it gives up).
    supports_compile: bool = True
    # True where the posterior is one diagonal Gaussian and ``loss_terms`` gives its z, mu and sigma:
    # then every objective of vaekit.objectives trains the model, else only the model's own (elbo).
    gaussian_posterior: bool = True

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Turn a stored batch into the encoder's input tensor."""
        raise NotImplementedError

    def encoder_input(self, batch: torch.Tensor) -> torch.Tensor:
        """The encoder's input for a stored batch: ``prepare(batch)``, unless the family builds it
        straight in the dtype its first layer runs in (vaekit.training.precision.compute_dtype), with
        the same values autocast's cast would give."""
        return self.prepare(batch)

    def reconstruction_nll(self, output: torch.Tensor, batch: torch.Tensor, reduction: str) -> torch.Tensor:
        """Per-sample negative log-likelihood of ``batch`` under the decoder output."""
        raise NotImplementedError

    def reconstruction_objective(self, output: torch.Tensor, batch: torch.Tensor,
                                 reduction: str) -> torch.Tensor | None:
        """Per-sample reconstruction term the training objective minimises instead of the NLL (e.g.
        a focal loss), or None when it minimises ``reconstruction_nll`` itself (the default).

        Only ``objective`` reads it: every reported likelihood (recon, ELBO, IWAE) stays the NLL.
        """
        return None

    def reconstruct(self, output: torch.Tensor) -> torch.Tensor:
        """The most likely stored-format batch for a decoder output (argmax, mean, ...)."""
        raise NotImplementedError

    def encode(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, sigma = self.encoder(self.encoder_input(batch))
        return at_least_fp32(mu), at_least_fp32(sigma) + SIGMA_FLOOR

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return at_least_fp32(self.decoder(z))

    def decode_for_likelihood(self, z: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The decoder output that scores ``batch`` given ``z`` (its log-likelihood's factors).

        Factorised decoders ignore ``batch``. Autoregressive decoders read it as the context of each
        element (teacher forcing): only ever to score a likelihood, never to reconstruct.
        """
        return self.decode(z)

    def decode_data(self, z: torch.Tensor) -> torch.Tensor:
        """The stored-format batch the model decodes from latent codes ``z`` alone.

        Every picture, sample and quality metric goes through this, so decoders that predict each
        element from already-decoded ones (autoregressive) are scored free-running, never from a
        target. Factorised decoders take the most likely value of each element.
        """
        return self.reconstruct(self.decode(z))

    # Width of one quantisation bin of the stored data in the space where the likelihood is a
    # probability (1.0) or a density (e.g. 1/255 for 8-bit intensities on [0, 1]). None when
    # reconstruction_nll is not a normalised negative log-likelihood: then an importance-sampled
    # estimate is a bound only up to a constant, and no bits per dimension are reported.
    data_bin_width: float | None = None

    def log_likelihood(self, batch: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) per sample, in nats: the term importance sampling weighs.

        The default scores ``batch`` with the summed reconstruction NLL of ``decode_for_likelihood``
        (so an autoregressive decoder's teacher-forced factors). A model with several decoders
        overrides this.
        """
        return -self.reconstruction_nll(self.decode_for_likelihood(z, batch), batch, "sum")

    def loss_terms(self, batch: torch.Tensor, reduction: str = "sum", sample: bool = True) -> LossTerms:
        """Encode, sample z by reparameterisation (or take the mean), decode and score."""
        mu, sigma = self.encode(batch)
        z = mu + sigma * torch.randn_like(mu) if sample else mu
        return self.terms_from(batch, mu, sigma, z, reduction)

    def terms_from(self, batch: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor,
                   reduction: str = "sum") -> LossTerms:
        """Decode ``z`` and score ``batch``: the per-sample terms of a posterior already encoded."""
        output = self.decode_for_likelihood(z, batch)
        recon = self.reconstruction_nll(output, batch, reduction)
        return LossTerms(recon=recon, kl_per_dim=gaussian_kl_per_dim(mu, sigma), output=output, mu=mu, sigma=sigma,
                         z=z)

    def objective(self, batch: torch.Tensor, beta: float, loss_cfg) -> tuple[torch.Tensor, LossTerms, dict]:
        """The scalar to minimise, the per-sample terms behind it, and extra values to log.

        The β-VAE objective: mean reconstruction NLL + β · KL after free bits. A model whose
        ``reconstruction_objective`` gives another term (a focal loss) minimises that in place of the
        NLL and logs its mean as ``recon_objective``; ``terms.recon`` stays the NLL. Families with a
        different objective (e.g. the dual-pathway ternary VAE) override this.
        """
        terms = self.loss_terms(batch, reduction=loss_cfg.recon_reduction)
        kl_penalty = kl_with_free_bits(terms.kl_per_dim, loss_cfg.free_bits, loss_cfg.free_bits_mode)
        trained = self.reconstruction_objective(terms.output, batch, loss_cfg.recon_reduction)
        if trained is None:
            return terms.recon.mean() + beta * kl_penalty, terms, {}
        return trained.mean() + beta * kl_penalty, terms, {"recon_objective": trained.detach().mean()}

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode n draws of z ~ N(0, I) into stored-format samples."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device="cpu").to(device)
        return self.decode_data(z)

"""The dual-pathway ternary VAE of the seed report (v5.5): two VAEs coupled by a permeability ρ, with
their own temperatures and β warm-ups, an entropy-alignment term, and the StateNet controller.
docs/domains/ternary.md gives the exact math of every mechanism, matching this file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vaekit.models import register_model
from vaekit.models.base import SIGMA_FLOOR, GaussianVAE, LossTerms, at_least_fp32
from vaekit.models.ternary import (
    ENCODER_INPUTS,
    TernaryCodec,
    TernaryDecoder,
    TernaryEncoder,
    _categorical_nll,
)
from vaekit.training.losses import gaussian_kl_per_dim, kl_with_free_bits


class StateNet(nn.Module):
    """A ~1k-parameter controller: training state (11 numbers) -> corrections in (-1, 1)^4.

    Corrections are [Δlr, Δλ1, Δλ2, Δλ3]; the model scales them by ±5% (lr) and ±1% (λ).
    """

    STATE = ("entropy_A", "entropy_B", "kl_A", "kl_B", "recon_A", "recon_B", "log_grad_ratio",
             "rho", "lambda1", "lambda2", "lambda3")

    def __init__(self, width: int = 24, code: int = 12, norm: bool = True):
        super().__init__()
        layers = [nn.LayerNorm(width)] if norm else []
        self.encode = nn.Sequential(nn.Linear(len(self.STATE), width), *layers, nn.Tanh(), nn.Linear(width, code))
        self.decode = nn.Sequential(nn.Linear(code, width), nn.ReLU(), nn.Linear(width, 4), nn.Tanh())

    def forward(self, state):
        return self.decode(self.encode(state))


def _piecewise(epoch: float, knots: list[tuple[float, float]]) -> float:
    """Linear interpolation through (epoch, value) knots, constant outside them."""
    if epoch <= knots[0][0]:
        return knots[0][1]
    for (e0, v0), (e1, v1) in zip(knots, knots[1:]):
        if epoch <= e1:
            return v0 + (v1 - v0) * (epoch - e0) / (e1 - e0)
    return knots[-1][1]


def batch_latent_entropy(z: torch.Tensor) -> torch.Tensor:
    """Differential entropy (nats) of a Gaussian fitted per dimension to a batch of codes."""
    variance = z.var(dim=0, unbiased=False) + 1e-6
    return 0.5 * torch.log(2 * math.pi * math.e * variance).sum()


@dataclass(frozen=True)
class Pathway:
    """One pathway of the dual model: its layers and its own schedules."""

    hidden: tuple  # encoder widths
    decoder_hidden: tuple  # decoder widths
    temperature: tuple  # (first epoch, last epoch): the decoder's softmax temperature, linear over the run
    beta: tuple  # (start, end): the weight of its KL over the β warm-up
    residual_blocks: int = 0  # after the decoder's hidden layers
    encoder_residual_blocks: int = 0  # after the encoder's
    residual_norm: bool = True  # LayerNorm inside the residual blocks


@dataclass(frozen=True)
class Coupling:
    """How the pathways meet: ρ's knots, the length of the β warm-ups, the loss weights λ1–λ3."""

    rho_knots: tuple  # (epoch, ρ) knots of the permeability, linear between them
    beta_warmup_epochs: int
    lambda1: float  # initial weight of pathway A's loss (StateNet moves it within [0.5, 0.95])
    lambda2: float  # initial weight of pathway B's loss
    lambda3_center: float  # λ3 (entropy alignment) = center + amplitude · sin(2π epoch / period)
    lambda3_amplitude: float
    lambda3_period: int


@dataclass(frozen=True)
class Controller:
    """StateNet's size and how far its mean corrections of an epoch move the lr and λ1, λ2."""

    width: int
    code: int
    norm: bool
    lr_scale: float  # the lr is multiplied by 1 ± lr_scale
    lambda_scale: float  # λ1, λ2 move by ± lambda_scale
    penalty: float  # weight of the corrections' squared size in the loss


@register_model("ternary_dual")
class DualTernaryVAE(TernaryCodec, GaussianVAE):
    """Dual-pathway ternary VAE (seed v5.5): VAE-A explores, VAE-B (residual) consolidates.

    The latent of the joint model is [z_A, z_B] (2·d values); each pathway has d dimensions. Built
    from a config's flat options by ``from_options``; the constructor takes them grouped.

    Args:
        latent_dim: d, per pathway.
        a, b: pathway A and pathway B.
        coupling: ρ, the β warm-up and the loss weights.
        controller: StateNet, or None to train without it.
        encoder_input: 'one_hot' (9×3 inputs) or 'values' (the 9 values); see ENCODER_INPUTS.
    """
    tiny_options = {"hidden_a": [8], "hidden_b": [8]}

    pathways = ("A", "B")
    supports_compile = False  # the objective reads its temperatures as Python floats and updates running sums in place
    gaussian_posterior = False  # two gated pathways with their own controllers: only its own objective (elbo)

    @classmethod
    def from_options(
        cls, latent_dim: int = 16, encoder_input: str = "one_hot",
        hidden_a: tuple = (128, 128), decoder_hidden_a: tuple | None = None,  # None: the encoder's reversed
        temperature_a: tuple = (1.0, 0.3), beta_a: tuple = (0.3, 0.8),
        hidden_b: tuple = (128, 128), decoder_hidden_b: tuple | None = None, residual_blocks_b: int = 1,
        encoder_residual_blocks_b: int | None = None, residual_norm: bool = True,  # None: residual_blocks_b
        temperature_b: tuple = (0.9, 0.2), beta_b: tuple = (0.0, 0.5),
        rho_knots: tuple = ((40, 0.1), (120, 0.3), (250, 0.7)), beta_warmup_epochs: int = 50,
        lambda1: float = 0.7, lambda2: float = 0.7,
        lambda3_center: float = 0.3, lambda3_amplitude: float = 0.15, lambda3_period: int = 30,
        statenet: bool = True, statenet_width: int = 24, statenet_code: int = 12, statenet_norm: bool = True,
        lr_correction_scale: float = 0.05, lambda_correction_scale: float = 0.01, correction_penalty: float = 0.01,
    ) -> DualTernaryVAE:
        """The model of a config's ``model.options`` (the names the seed configs write), grouped."""
        a = Pathway(tuple(hidden_a), tuple(reversed(hidden_a) if decoder_hidden_a is None else decoder_hidden_a),
                    tuple(temperature_a), tuple(beta_a))
        b = Pathway(tuple(hidden_b), tuple(reversed(hidden_b) if decoder_hidden_b is None else decoder_hidden_b),
                    tuple(temperature_b), tuple(beta_b), residual_blocks_b,
                    residual_blocks_b if encoder_residual_blocks_b is None else encoder_residual_blocks_b,
                    residual_norm)
        coupling = Coupling(tuple(tuple(k) for k in rho_knots), beta_warmup_epochs, lambda1, lambda2,
                            lambda3_center, lambda3_amplitude, lambda3_period)
        controller = Controller(statenet_width, statenet_code, statenet_norm, lr_correction_scale,
                                lambda_correction_scale, correction_penalty) if statenet else None
        return cls(latent_dim, a, b, coupling, controller, encoder_input)

    def __init__(self, latent_dim: int, a: Pathway, b: Pathway, coupling: Coupling, controller: Controller | None,
                 encoder_input: str = "one_hot"):
        super().__init__()
        self.latent_dim = 2 * latent_dim
        self.pathway_dim = latent_dim
        if encoder_input not in ENCODER_INPUTS:
            raise ValueError(f"model.options.encoder_input: expected one of {', '.join(ENCODER_INPUTS)}, "
                             f"got {encoder_input!r}")
        input_dim, self._encode_input = ENCODER_INPUTS[encoder_input]
        self.pathway_specs = {"A": a, "B": b}
        self.encoder = nn.ModuleDict({
            name: TernaryEncoder(p.hidden, latent_dim, p.encoder_residual_blocks, input_dim, p.residual_norm)
            for name, p in self.pathway_specs.items()})
        self.decoder = nn.ModuleDict({
            name: TernaryDecoder(p.decoder_hidden, latent_dim, p.residual_blocks, p.residual_norm)
            for name, p in self.pathway_specs.items()})
        self.statenet = StateNet(controller.width, controller.code, controller.norm) if controller else None
        self.coupling, self.controller = coupling, controller
        self.corrects_lr = controller is not None
        # Training state lives in buffers so that it is checkpointed and restored with the weights.
        for name, value in {"rho": coupling.rho_knots[0][1], "tau_a": a.temperature[0], "tau_b": b.temperature[0],
                            "beta_a_now": a.beta[0], "beta_b_now": b.beta[0], "lambda1": coupling.lambda1,
                            "lambda2": coupling.lambda2, "lambda3": coupling.lambda3_center,
                            "grad_ratio": 1.0}.items():
            self.register_buffer(name, torch.tensor(float(value)))
        self.register_buffer("correction_sum", torch.zeros(4))
        self.register_buffer("correction_steps", torch.zeros(()))

    # ------------------------------------------------------------------ the two pathways

    @property
    def prior_dim(self) -> int:
        return self.pathway_dim

    def encode(self, batch):
        x = self._encode_input(batch)
        (mu_a, s_a), (mu_b, s_b) = self.encoder["A"](x), self.encoder["B"](x)
        return at_least_fp32(torch.cat([mu_a, mu_b], 1)), at_least_fp32(torch.cat([s_a, s_b], 1)) + SIGMA_FLOOR

    def decode(self, z):
        """Cross-injection: each decoder sees (1−ρ)·own + ρ·stop_gradient(other)."""
        z_a, z_b = z.split(self.pathway_dim, dim=1)
        rho = self.rho
        mixed_a = (1 - rho) * z_a + rho * z_b.detach()
        mixed_b = (1 - rho) * z_b + rho * z_a.detach()
        return at_least_fp32(torch.stack([self.decoder["A"](mixed_a), self.decoder["B"](mixed_b)], dim=1))

    def decode_prior(self, z):
        """A prior draw feeds both pathways, so the cross-injection leaves it unchanged."""
        return self.decode(torch.cat([z, z], dim=1))

    def reconstruction_nll(self, output, batch, reduction):
        return (_categorical_nll(output[:, 0], batch, reduction, float(self.tau_a))
                + _categorical_nll(output[:, 1], batch, reduction, float(self.tau_b)))

    def reconstruct(self, output):
        return super().reconstruct(output[:, 0])

    def log_likelihood(self, batch, z):
        """log p(x | z) of pathway A (the pathway samples and reconstructions are decoded from) at
        its current temperature, with z = [z_A, z_B]: ρ mixes z_B into decoder A's input, so
        both halves of the code matter. (The training NLL adds pathway B's term as well, which
        makes it the likelihood of the operation seen twice, not of one operation.)"""
        return -_categorical_nll(self.decode(z)[:, 0], batch, "sum", float(self.tau_a))

    def pathway_predictions(self, output):
        return {"A": super().reconstruct(output[:, 0]), "B": super().reconstruct(output[:, 1])}

    @torch.no_grad()
    def sample_prior(self, n, generator=None):
        z = torch.randn(n, self.pathway_dim, generator=generator).to(self.rho.device)
        return self.reconstruct(self.decode_prior(z))

    # ------------------------------------------------------------------ objective and schedules

    def phase_boundaries(self):
        knots = [(int(epoch), f"ρ phase {i + 2}") for i, (epoch, _) in enumerate(self.coupling.rho_knots)]
        return sorted([*knots, (self.coupling.beta_warmup_epochs, "β warm-up done")])

    def _pathway_grad_norm(self, name: str) -> float:
        grads = [p.grad.reshape(-1) for m in (self.encoder[name], self.decoder[name])
                 for p in m.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.cat(grads))) if grads else 0.0

    def after_backward(self) -> None:
        """Record ‖∇A‖ / ‖∇B‖ of this step's gradients: StateNet reads it in the next objective()."""
        if self.statenet is not None:
            grad_a, grad_b = self._pathway_grad_norm("A"), self._pathway_grad_norm("B")
            if grad_a > 0 and grad_b > 0:
                self.grad_ratio.fill_(grad_a / grad_b)

    def objective(self, batch, beta, loss_cfg):
        """λ1·L_A + λ2·L_B + λ3·|H(z_A) − H(z_B)| (+ StateNet's correction penalty); ``beta`` is unused:
        each pathway follows its own β warm-up."""
        mu, sigma = self.encode(batch)
        z = mu + sigma * torch.randn_like(mu)
        output = self.decode(z)
        d = self.pathway_dim
        recon_a = _categorical_nll(output[:, 0], batch, loss_cfg.recon_reduction, float(self.tau_a))
        recon_b = _categorical_nll(output[:, 1], batch, loss_cfg.recon_reduction, float(self.tau_b))
        kl = gaussian_kl_per_dim(mu, sigma)
        kl_a = kl_with_free_bits(kl[:, :d], loss_cfg.free_bits, loss_cfg.free_bits_mode)
        kl_b = kl_with_free_bits(kl[:, d:], loss_cfg.free_bits, loss_cfg.free_bits_mode)
        loss_a = recon_a.mean() + self.beta_a_now * kl_a
        loss_b = recon_b.mean() + self.beta_b_now * kl_b
        entropy_a, entropy_b = batch_latent_entropy(z[:, :d]), batch_latent_entropy(z[:, d:])
        lambdas = torch.stack([self.lambda1, self.lambda2, self.lambda3])
        penalty = torch.zeros((), device=mu.device)
        if self.statenet is not None:
            state = torch.stack([entropy_a, entropy_b, kl[:, :d].sum(1).mean(), kl[:, d:].sum(1).mean(),
                                 recon_a.mean(), recon_b.mean(), torch.log(self.grad_ratio), self.rho,
                                 *lambdas]).detach()
            corrections = self.statenet(torch.sign(state) * torch.log1p(state.abs())).float()  # squash scales
            lambdas = lambdas + self.controller.lambda_scale * corrections[1:]
            penalty = self.controller.penalty * corrections.pow(2).sum()
            if self.training:
                self.correction_sum += corrections.detach()
                self.correction_steps += 1
        loss = lambdas[0] * loss_a + lambdas[1] * loss_b + lambdas[2] * (entropy_a - entropy_b).abs() + penalty
        terms = LossTerms(recon=recon_a + recon_b, kl_per_dim=kl, output=output, mu=mu)
        logs = {"recon_A": recon_a.mean(), "recon_B": recon_b.mean(), "kl_A": kl[:, :d].sum(1).mean(),
                "kl_B": kl[:, d:].sum(1).mean(), "entropy_A": entropy_a, "entropy_B": entropy_b}
        return loss, terms, logs

    def phase(self, epoch: int) -> int:
        """The report's phase marker: 1 before the first ρ knot, +1 from each knot on (1-4)."""
        return 1 + sum(epoch >= knot_epoch for knot_epoch, _ in self.coupling.rho_knots)

    def on_epoch_start(self, epoch: int, total_epochs: int) -> dict:
        progress = min(1.0, epoch / max(total_epochs, 1))
        coupling, a, b = self.coupling, self.pathway_specs["A"], self.pathway_specs["B"]
        warm = min(1.0, epoch / coupling.beta_warmup_epochs)
        values = {
            "rho": _piecewise(epoch, coupling.rho_knots),
            "tau_a": a.temperature[0] + (a.temperature[1] - a.temperature[0]) * progress,
            "tau_b": b.temperature[0] + (b.temperature[1] - b.temperature[0]) * progress,
            "beta_a_now": a.beta[0] + (a.beta[1] - a.beta[0]) * warm,
            "beta_b_now": b.beta[0] + (b.beta[1] - b.beta[0]) * warm,
            "lambda3": coupling.lambda3_center
            + coupling.lambda3_amplitude * math.sin(2 * math.pi * epoch / coupling.lambda3_period),
        }
        for name, value in values.items():
            getattr(self, name).fill_(value)
        self.correction_sum.zero_()
        self.correction_steps.zero_()
        return {"phase": self.phase(epoch), "rho": values["rho"], "temperature_A": values["tau_a"], "temperature_B": values["tau_b"],
                "beta_A": values["beta_a_now"], "beta_B": values["beta_b_now"]}

    def _mean_correction(self) -> torch.Tensor | None:
        """StateNet's mean correction [Δlr, Δλ1, Δλ2, Δλ3] over this epoch's steps (None without any)."""
        if self.statenet is None or float(self.correction_steps) == 0:
            return None
        return self.correction_sum / self.correction_steps

    def lr_factor(self) -> float:
        """The lr correction of this epoch: ×(1 ± 5%) by StateNet's mean Δlr (the loop's scheduler applies it)."""
        mean = self._mean_correction()
        return 1.0 if mean is None else 1.0 + self.controller.lr_scale * float(mean[0])

    def on_epoch_end(self) -> dict:
        """Apply StateNet's mean corrections of the epoch to λ1, λ2 (± 1%); λ3 is cyclic."""
        mean = self._mean_correction()
        if mean is None:
            return {"lambda1": float(self.lambda1), "lambda2": float(self.lambda2), "lambda3": float(self.lambda3)}
        scale = self.controller.lambda_scale
        self.lambda1.copy_((self.lambda1 + scale * mean[1]).clamp(0.5, 0.95))
        self.lambda2.copy_((self.lambda2 + scale * mean[2]).clamp(0.5, 0.95))
        return {"lambda1": float(self.lambda1), "lambda2": float(self.lambda2),
                "lambda3": float(self.lambda3 + scale * mean[3]), "statenet_lr_factor": self.lr_factor(),
                "grad_ratio": float(self.grad_ratio)}

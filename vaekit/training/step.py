"""One optimisation step, in the run's precision and optionally compiled with torch.compile."""

from __future__ import annotations

import inspect
import math
import time

import torch

from vaekit.config import LossConfig
from vaekit.training.distributed import SINGLE, Workers
from vaekit.training.precision import autocast, grad_scaler


class NonFiniteStep(Exception):
    """Raised by a step whose loss or gradient is not finite, before the optimizer changed anything.

    Attributes:
        term: what went non-finite: 'reconstruction', 'KL', 'loss' (the model's own terms, with
            reconstruction and KL finite) or 'gradient norm'.
        value: its value (nan, inf or -inf).
    """

    def __init__(self, term: str, value: float):
        super().__init__(f"the {term} is {value}")
        self.term, self.value = term, value


def nonfinite_term(loss: float, recon: float, kl: float, auxiliary: float = 0.0) -> tuple[str, float]:
    """Which term made a non-finite loss: reconstruction, KL, the objective's own optimizer's loss
    (FactorVAE's discriminator), else the model's or objective's other terms."""
    for name, value in (("reconstruction term", recon), ("KL term", kl),
                        ("objective's auxiliary loss (e.g. FactorVAE's discriminator loss)", auxiliary)):
        if not math.isfinite(value):
            return name, value
    return "loss (the objective's own terms; reconstruction and KL are finite)", loss


class LossModule(torch.nn.Module):
    """The model and its training objective, with the objective's loss as ``forward``: the shape
    DistributedDataParallel needs (DDP averages gradients through hooks it sets up in ``forward``,
    bucketed and overlapping backward), and it averages the objective's own parameters' gradients
    (FactorVAE's discriminator) with the model's."""

    def __init__(self, model: torch.nn.Module, objective: torch.nn.Module, loss_cfg: LossConfig):
        super().__init__()
        self.model, self.objective, self.loss_cfg = model, objective, loss_cfg

    def forward(self, batch: torch.Tensor, beta: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The loss the model minimises, the loss the objective's own optimizer minimises (0 where
        there is none), and the batch means of the reconstruction term and of the unclamped KL of each
        latent dimension, shape (d,) (plain tensors: DDP follows the graph from forward's outputs, and
        loses it in a dataclass)."""
        out = self.objective(self.model, batch, beta, self.loss_cfg)
        auxiliary = out.auxiliary if out.auxiliary is not None else out.total.new_zeros(())
        return out.total, auxiliary, out.terms.recon.detach().mean(), out.terms.kl_per_dim.detach().mean(0)


def data_parallel(model: torch.nn.Module, objective: torch.nn.Module, loss_cfg: LossConfig, device: torch.device,
                  workers: Workers) -> torch.nn.Module:
    """``LossModule(model, objective)``, wrapped in DistributedDataParallel when there are several workers.

    Wrapping broadcasts the main worker's parameters and buffers to every worker. Buffers are not
    broadcast again at each forward (the loop averages them after each epoch). DDP looks for
    parameters a step leaves unused (a walk of the autograd graph every step) only for a model whose
    class sets ``has_unused_parameters = True`` (docs/models.md)."""
    module = LossModule(model, objective, loss_cfg)
    if not workers.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    options = {"device_ids": [device.index] if device.type == "cuda" else None,
               "find_unused_parameters": bool(getattr(model, "has_unused_parameters", False))}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        options["forward_sync_buffers"] = False  # torch ≥ 2.13 (broadcast_buffers is deprecated there)
    else:
        options["broadcast_buffers"] = False
    return DistributedDataParallel(module, **options)


class TrainStep:
    """Forward under autocast, backward (loss-scaled for fp16; under torchrun DistributedDataParallel
    averages the gradients over the workers during it), clipping, the non-finite check, the model's
    ``after_backward`` hook and the optimizer step.


    With ``compile``, the forward pass is compiled by ``torch.compile``; AOTAutograd compiles its
    backward graph with it, so the whole objective and its gradient run as generated kernels. Only
    the optimizer step (already one fused kernel) stays eager. Call ``compile_now`` before training
    so that compiling is timed on its own rather than inside the first epoch.

    Args:
        model: the VAE, already on ``device``.
        optimizer: its optimizer.
        precision: a resolved precision ('fp32', 'bf16' or 'fp16').
        device: the training device.
        loss_cfg: the run's loss settings, passed to the objective.
        grad_clip: clip the gradient norm of the model to this value (0 disables).
        workers: the data-parallel workers whose gradients are averaged.
        objective: the training objective (vaekit.objectives); None trains the model's own (elbo).
            Its own parameters, if any, are stepped by its own optimizer after the model's.
    """

    def __init__(self, model, optimizer: torch.optim.Optimizer, precision: str, device: torch.device,
                 loss_cfg: LossConfig, grad_clip: float = 0.0, workers: Workers = SINGLE, objective=None):
        self.model, self.optimizer, self.precision, self.device = model, optimizer, precision, device
        self.loss_cfg, self.grad_clip, self.workers = loss_cfg, grad_clip, workers
        self.scaler = grad_scaler(precision, device)
        if objective is None:
            from vaekit.objectives import ObjectiveContext, create_objective

            objective = create_objective("elbo", {}, ObjectiveContext())
        self.objective = objective.to(device)
        self.objective_optimizer = objective.make_optimizer()
        self.optimizers = [optimizer] + ([self.objective_optimizer] if self.objective_optimizer else [])
        self.loss_module = data_parallel(model, self.objective, loss_cfg, device, workers)
        self.forward = self.eager_forward
        self.compile_error: str | None = None
        self._beta = (None, None)
        self.kl_per_dim: torch.Tensor | None = None  # the last step's, on the device (see __call__)
        self.votes: list[float] = []  # the last step's votes summed over the workers (see __call__)

    def eager_forward(self, batch: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The loss to minimise, and the batch means of the reconstruction term and of the unclamped
        KL of each latent dimension (d,)."""
        with autocast(self.precision, self.device):
            return self.loss_module(batch, beta)

    def zero_grad(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    def __call__(self, batch: torch.Tensor, beta: float, votes: tuple[float, ...] = (), global_step: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update the model on one batch; returns the loss and the batch means of the reconstruction
        term and of the total unclamped KL. The batch mean of each dimension's unclamped KL is left in
        ``self.kl_per_dim`` (d,), on the device: reading it is the caller's choice (a host sync).

        Before the backward pass the workers agree (one small all-reduce under torchrun, none
        otherwise) on whether the loss is finite everywhere and on ``votes``, numbers each worker
        adds to (e.g. 1 for "I received SIGTERM"); their sums over the workers are left in
        ``self.votes``, so every worker takes the same decision after the step.

        Raises:
            NonFiniteStep: the loss on any worker, or (outside fp16, whose loss scaler skips such
                steps itself) the gradient norm, is not finite; the model and optimizer are left
                unchanged, on every worker alike. Checking costs one device-to-host read per step.
        """
        if global_step is not None:
            self.objective.before_step(global_step)
        loss, auxiliary, recon, kl_per_dim = self.forward(batch, self.beta_tensor(beta))
        self.kl_per_dim, kl = kl_per_dim, kl_per_dim.sum()
        terms = torch.stack([loss.detach(), recon, kl, auxiliary.detach()]).float()
        if self.workers.distributed:
            agreed = self.workers.agree(torch.cat([terms, torch.tensor(votes, device=terms.device)])).tolist()
        else:
            agreed = terms.tolist() + list(votes)
        self.votes = agreed[4:]
        if not all(math.isfinite(v) for v in agreed[:4]):
            raise NonFiniteStep(*nonfinite_term(*agreed[:4]))
        self.zero_grad()
        self.scaler.scale(loss + auxiliary).backward()  # each part's gradient reaches only its own parameters
        for optimizer in self.optimizers:
            self.scaler.unscale_(optimizer)  # true gradients for clipping and the model (no-op unless fp16)
        norm = self.gradient_norm()
        if not torch.isfinite(norm):  # gradients are averaged over the workers: all see the same norm
            if not self.scaler.is_enabled():
                self.zero_grad()
                raise NonFiniteStep("gradient norm", norm.item())
            # fp16: the scaler skips this step and lowers the loss scale; the model sees no gradient
        else:
            self.model.after_backward()  # the model's one look at this step's final gradients, outside any compiled region
        for optimizer in self.optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()
        return loss.detach(), recon, kl

    def gradient_norm(self) -> torch.Tensor:
        """The norm of all gradients, clipped to ``grad_clip`` when that is set (the norm before
        clipping is returned)."""
        if self.grad_clip > 0:
            return torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return torch.zeros((), device=self.device)
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))

    def compile_now(self, example_batches: list[torch.Tensor], beta: float) -> float | None:
        """Compile the forward and backward for the batch shapes of an epoch, leaving the model, its
        gradients and the random state as they were.

        Returns:
            The seconds spent compiling, or None if torch.compile failed here (then the step stays
            eager and ``compile_error`` says why).
        """
        compiled = torch.compile(self.eager_forward)
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}
        started = time.perf_counter()
        try:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                for batch in example_batches:
                    loss, auxiliary, _, _ = compiled(batch, self.beta_tensor(beta))
                    (loss + auxiliary).backward()
        except Exception as error:  # a missing C++ compiler, an unsupported backend, ...
            first_line = (str(error).strip().splitlines() or [""])[0]
            self.compile_error = f"{type(error).__name__}: {first_line}"[:300]
            return None
        finally:
            self.zero_grad()
            with torch.no_grad():
                for name, b in self.model.named_buffers():
                    b.copy_(buffers[name])
        self.forward = compiled
        return time.perf_counter() - started

    def beta_tensor(self, beta: float) -> torch.Tensor:
        """β as a 0-d tensor on the device, made once per value: a compiled step takes it as an input,
        where a Python float would be compiled in as a constant (and recompiled for 0 and 1)."""
        if self._beta[0] != beta:
            self._beta = (beta, torch.tensor(float(beta), device=self.device))
        return self._beta[1]

    def state_dict(self) -> dict:
        """What last.pt keeps of the step: the fp16 loss scale, and the objective's own state and
        optimizer (FactorVAE's discriminator) where it has them."""
        state = {"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}
        if self.objective.state_dict():
            state["objective"] = self.objective.state_dict()
        if self.objective_optimizer is not None:
            state["objective_optimizer"] = self.objective_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore the loss scale of an fp16 run (a checkpoint of another precision has none) and the
        objective's state and optimizer."""
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if "objective" in state:
            self.objective.load_state_dict(state["objective"])
        if self.objective_optimizer is not None and "objective_optimizer" in state:
            self.objective_optimizer.load_state_dict(state["objective_optimizer"])


def epoch_batch_sizes(n: int, batch_size: int) -> list[int]:
    """The distinct mini-batch sizes of an epoch over ``n`` samples (a shorter last batch adds one)."""
    sizes = [min(batch_size, n)]
    if n > batch_size and n % batch_size:
        sizes.append(n % batch_size)
    return sizes

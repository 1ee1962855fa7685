"""Data-parallel training under torchrun: which worker this process is, and the few collectives the
training loop needs.

Every worker holds the whole corpus and an identical model; each epoch they draw the same shuffled
order from the same seeded generator and each takes its own share of it (workers also draw the same
augmentation and reparameterisation noise, for different samples). After each backward pass the
gradients are averaged across workers, so all copies of the model take the same optimizer step. Only
the main worker (rank 0) writes the run directory and prints.

The training step wraps the model in ``DistributedDataParallel`` through a module whose ``forward``
is the objective (``vaekit.training.step.Objective``), so gradients are averaged by DDP's bucketed
all-reduce, overlapping the backward pass. Each worker draws its own reparameterisation noise
(seeded with seed + rank); augmentation noise comes from the shared data generator.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Workers:
    """This process's place among the training workers (one worker when not under torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This worker's share of a shuffled order: every world_size-th entry from its rank on, so the
        workers' k-th batches together are the k-th batch a single process with world_size × the batch
        size would take. The remainder of ``len(order) / world_size`` is left out this epoch, so every
        worker takes the same number of steps."""
        if not self.distributed:
            return order
        usable = order.shape[0] // self.world_size * self.world_size
        return order[self.rank : usable : self.world_size]

    def average_gradients(self, model: torch.nn.Module) -> None:
        """Replace every gradient by its mean over the workers (one all-reduce of a flat buffer); the
        training step leaves this to DistributedDataParallel."""
        if not self.distributed:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise mean of a tensor over the workers."""
        if not self.distributed:
            return values
        values = values.clone()
        dist.all_reduce(values)
        return values / self.world_size

    def copy_from_main(self, model: torch.nn.Module) -> None:
        """Give every worker the main worker's parameters and buffers."""
        if not self.distributed:
            return
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)

    def average_buffers(self, model: torch.nn.Module) -> None:
        """Average floating-point buffers over the workers (BatchNorm statistics and running sums,
        which each worker gathers from its own batches); take the main worker's other buffers."""
        if not self.distributed:
            return
        for buffer in model.buffers():
            if buffer.is_floating_point():
                buffer.copy_(self.mean(buffer))
            else:
                dist.broadcast(buffer, src=0)

    def noise_seed(self, seed: int) -> int:
        """The seed of this worker's own random stream (reparameterisation noise): seed + rank, so a
        single process draws what it always drew and the workers' noise differs."""
        return seed + self.rank

    def gather(self, value) -> list:
        """Every worker's value of a small picklable object, by rank, on every worker."""
        if not self.distributed:
            return [value]
        out = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def main_decides(self, value):
        """The main worker's value of a small picklable object, on every worker."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


SINGLE = Workers()


def workers_from_environment() -> Workers:
    """The workers torchrun describes in WORLD_SIZE / RANK / LOCAL_RANK, or a single worker."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE
    return Workers(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def join(workers: Workers, device: torch.device) -> torch.device:
    """Join the process group (NCCL on GPUs, Gloo on CPU) and return this worker's device: under
    torchrun each worker on a GPU box takes the GPU of its local rank."""
    if not workers.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", workers.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def leave(workers: Workers) -> None:
    if workers.distributed and dist.is_initialized():
        gc.collect()  # a DistributedDataParallel freed after its process group aborts the process
        dist.destroy_process_group()

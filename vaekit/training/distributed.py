"""Data-parallel training under torchrun: which worker this process is, and the few collectives the
training loop needs.

Every worker holds the whole corpus and an identical model; each epoch they draw the same shuffled
order from the same seeded generator and each takes its own share of it. After each backward pass the
gradients are averaged across workers, so all copies of the model take the same optimizer step. Only
the main worker (rank 0) writes the run directory and prints.

The training step wraps the model in ``DistributedDataParallel`` through a module whose ``forward``
is the objective (``vaekit.training.step.Objective``), so gradients are averaged by DDP's bucketed
all-reduce, overlapping the backward pass. Each worker draws its own reparameterisation noise
(seeded with seed + rank) and its own augmentation transforms (a generator of its own, seeded from
seed and rank).

Decisions are collective: every step the workers sum a few numbers (the loss terms and their votes to
stop or to checkpoint, ``Workers.agree``), so a non-finite loss on one worker or a signal sent to one
worker stops all of them at the same step, the same way.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

AUGMENT_STREAM = 1  # tells the augmentation seed apart from other streams derived from (seed, rank)


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

    def share_size(self, n: int) -> int:
        """How many of ``n`` items ``shard`` gives this worker (without indexing anything)."""
        return n if not self.distributed else n // self.world_size

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise mean of a tensor over the workers."""
        if not self.distributed:
            return values
        values = values.clone()
        dist.all_reduce(values)
        return values / self.world_size

    def agree(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of a small tensor over the workers: how they take a decision together
        (a non-finite loss anywhere makes every worker's sum non-finite; a count of votes tells every
        worker whether any worker voted)."""
        if not self.distributed:
            return values
        values = values.clone()
        dist.all_reduce(values)
        return values

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

    def augment_seed(self, seed: int) -> int:
        """The seed of this worker's augmentation generator, derived from (seed, rank) and distinct
        from the data-order generator's, so turning augmentation on or off leaves the order alone
        and each worker draws its own transforms."""
        return int(np.random.SeedSequence([seed, self.rank, AUGMENT_STREAM]).generate_state(1, np.uint64)[0] >> 1)

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

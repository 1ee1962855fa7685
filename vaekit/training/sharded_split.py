"""A corpus split read from memory-mapped shards (``vaekit.shards``), indexed the way training and
evaluation index an in-memory split tensor: ``split[index_tensor]`` and ``split[a:b]`` give a tensor
of those items on the device, in the stored dtype (the model converts to float, batch by batch).
``prefetch(next_index_tensor)`` reads the next batch's rows in a background thread while the step
runs (the training epoch calls it), so a batch that is not in the page cache is read off disk ahead."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from vaekit.errors import VaekitUsageError
from vaekit.shards import ShardedArray


class ShardedSplit:
    """The tensor-like view of a ``ShardedArray`` on ``device``: ``shape``, ``dtype``, ``device``,
    ``len`` and indexing by an index tensor, a slice or an int. Only the rows asked for are read."""

    def __init__(self, array: ShardedArray, device: torch.device):
        self.array, self.device = array, torch.device(device)
        self.shape = torch.Size(array.shape)
        self.dtype = torch.from_numpy(np.empty(0, array.dtype)).dtype
        self.ndim = len(self.shape)
        self._reader: ThreadPoolExecutor | None = None
        self._ahead: tuple[np.ndarray, Future] | None = None  # the rows being read ahead, and their read

    def __len__(self) -> int:
        return self.shape[0]

    def dim(self) -> int:
        return self.ndim

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, torch.Tensor):
            rows = key.detach().cpu().numpy()
            ahead, self._ahead = self._ahead, None
            if ahead is not None and np.array_equal(ahead[0], rows):
                return self._on_device(ahead[1].result())
        elif isinstance(key, slice):
            rows = np.arange(len(self))[key]
        elif isinstance(key, (int, np.integer)):
            return self[torch.tensor([key])][0]
        else:
            rows = np.asarray(key)
        return self._on_device(self.array.take(rows))

    def prefetch(self, key: torch.Tensor) -> None:
        """Start reading the rows of ``key`` in the background; the next ``self[key]`` takes them."""
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="vaekit-prefetch")
        rows = key.detach().cpu().numpy()
        self._ahead = (rows, self._reader.submit(self.array.take, rows))

    def _on_device(self, items: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(items)
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch.to(self.device)

    def check_unchanged(self) -> None:
        """Refuse to go on when a shard was rewritten or removed since the corpus was opened."""
        changed = self.array.changed_shard()
        if changed is not None:
            raise VaekitUsageError(f"{changed}: the corpus changed while training read it (a shard was rewritten or "
                                   "removed); put the corpus back as it was, or collect it again into a new folder "
                                   "and train a new run")

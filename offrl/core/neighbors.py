"""Exact nearest-neighbour search over a fixed point set, on CPU (KD-tree) or on the GPU (brute force).

Both backends return the index of the exact Euclidean nearest neighbour; they differ only in where
the work happens (PRDC queries 256 points per actor step against the whole dataset).
"""

from __future__ import annotations

import numpy as np
import scipy.spatial
import torch
from torch import Tensor

BACKENDS = ("auto", "kdtree", "torch")


class NearestNeighbors:
    def __init__(self, points: Tensor, backend: str = "auto", chunk_size: int = 65_536) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"neighbour backend '{backend}' is unknown; expected one of {BACKENDS}")
        if backend == "auto":
            backend = "torch" if points.is_cuda else "kdtree"
        self.backend, self.chunk_size = backend, chunk_size
        self.points = points
        if backend == "kdtree":
            self.tree = scipy.spatial.cKDTree(points.detach().cpu().numpy().astype(np.float64))

    def query(self, keys: Tensor) -> Tensor:
        """Index (B,) of the nearest point to each key (B, D), on the keys' device."""
        if self.backend == "kdtree":
            _, index = self.tree.query(keys.detach().cpu().numpy().astype(np.float64), k=1, workers=-1)
            return torch.as_tensor(index, device=keys.device)
        return self._brute_force(keys.detach())

    def _brute_force(self, keys: Tensor) -> Tensor:
        best_d = torch.full((keys.shape[0],), float("inf"), dtype=torch.float64, device=keys.device)
        best_i = torch.zeros(keys.shape[0], dtype=torch.long, device=keys.device)
        for start in range(0, self.points.shape[0], self.chunk_size):
            chunk = self.points[start:start + self.chunk_size]
            # ||k||^2 - 2 k.p + ||p||^2 by matmul (fast), in float64 so near-ties resolve like the KD-tree
            d = (keys.double().pow(2).sum(1, keepdim=True) - 2.0 * keys.double() @ chunk.double().T
                 + chunk.double().pow(2).sum(1))
            value, index = d.min(dim=1)
            better = value < best_d
            best_d = torch.where(better, value, best_d)
            best_i = torch.where(better, index + start, best_i)
        return best_i

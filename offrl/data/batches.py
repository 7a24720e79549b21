"""Batch sources: what the trainer draws training batches from.

A source has ``sample(batch_size) -> Batch`` and checkpoint state; the trainer never asks which kind
it holds. ``StoreSampler`` draws uniform rows of one ``TransitionStore`` (the offline dataset, the
online replay); ``Mixture`` composes sources in fixed shares with rows interleaved, so any
contiguous split of a batch into minibatches (RLPD/EXPO's UTD schedule) keeps the shares.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from offrl.core.errors import ConfigError
from offrl.data.store import Batch, TransitionStore, combine


class BatchSource(Protocol):
    def __len__(self) -> int:
        """Rows available now (0: the source cannot be sampled yet)."""

    def sample(self, batch_size: int) -> Batch: ...

    def refresh(self, agent_step: int) -> None:
        """Called by the trainer before each draw: a source whose data changes with training (a
        synthetic table regenerated every K agent steps) updates itself here; others do nothing."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class StoreSampler:
    """Uniform rows of a store, drawn on its device. Its checkpoint state is the sampling RNG only:
    the rows belong to whoever owns the store (the dataset file, or the online phase's replay)."""

    def __init__(self, store: TransitionStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def sample(self, batch_size: int) -> Batch:
        return self.store.sample(batch_size)

    def refresh(self, agent_step: int) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.store.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.store.generator.set_state(state["generator"])


class Mixture:
    """``parts`` = [(source, share), ...]: each batch holds round(share * B) rows of each source
    (largest-remainder rounding, so the counts add up to B), interleaved evenly. A source with no rows
    yet gives its share to the others."""

    def __init__(self, parts: list[tuple[BatchSource, float]]) -> None:
        shares = np.array([share for _, share in parts], dtype=np.float64)
        if len(parts) == 0 or (shares < 0).any() or shares.sum() <= 0:
            raise ConfigError(f"a batch mixture needs non-negative shares with a positive sum, got {shares.tolist()}")
        self.sources = [source for source, _ in parts]
        self.shares = shares / shares.sum()
        self._orders: dict[tuple[int, ...], Tensor] = {}

    def __len__(self) -> int:
        return sum(len(source) for source in self.sources)

    def counts(self, batch_size: int) -> list[int]:
        shares = np.where([len(source) > 0 for source in self.sources], self.shares, 0.0)
        if shares.sum() == 0:
            raise ConfigError("every source of the batch mixture is empty")
        exact = shares / shares.sum() * batch_size
        counts = np.floor(exact).astype(int)
        counts[np.argsort(counts - exact, kind="stable")[: batch_size - counts.sum()]] += 1
        return counts.tolist()

    def sample(self, batch_size: int) -> Batch:
        counts = self.counts(batch_size)
        parts = [source.sample(n) for source, n in zip(self.sources, counts) if n > 0]
        joined = combine(parts, torch.cat)
        order = self._order(tuple(counts), joined.obs.device)
        return joined.map(lambda field: field[order])

    def refresh(self, agent_step: int) -> None:
        for source in self.sources:
            source.refresh(agent_step)

    def _order(self, counts: tuple[int, ...], device: torch.device) -> Tensor:
        """Positions of the concatenated rows after interleaving: row j of source k sits at rank
        (j + 0.5) / n_k, so every source is spread evenly over the batch."""
        if counts not in self._orders:
            keys = np.concatenate([(np.arange(n) + 0.5) / n for n in counts if n > 0])
            self._orders[counts] = torch.as_tensor(np.argsort(keys, kind="stable"), device=device)
        return self._orders[counts]

    def state_dict(self) -> dict[str, Any]:
        return {"sources": [source.state_dict() for source in self.sources]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for source, saved in zip(self.sources, state["sources"]):
            source.load_state_dict(saved)

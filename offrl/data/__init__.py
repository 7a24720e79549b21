"""Dataset layer: readers (D4RL hdf5, Minari, recipes) -> OfflineData -> TransitionStore on device."""

from offrl.data.arrays import DatasetInfo, OfflineData
from offrl.data.batches import BatchSource, Mixture, StoreSampler
from offrl.data.store import Batch, ObsNormalizer, TransitionStore

__all__ = ["Batch", "BatchSource", "DatasetInfo", "Mixture", "ObsNormalizer", "OfflineData", "StoreSampler",
           "TransitionStore"]

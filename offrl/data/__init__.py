"""Dataset layer: readers (D4RL hdf5, Minari, recipes) -> OfflineData -> TransitionStore on device."""

from offrl.data.arrays import DatasetInfo, OfflineData
from offrl.data.store import Batch, ObsNormalizer, TransitionStore, sample_mixed

__all__ = ["Batch", "DatasetInfo", "ObsNormalizer", "OfflineData", "TransitionStore", "sample_mixed"]

"""Observation specs: how a structured (dict) observation is laid out in the flat vectors agents see.

Readers, the store, environment wrappers and checkpoints use one ``ObservationSpec``: the keys, their
shapes and the slice each occupies when flattened, plus which keys are the goal and the achieved goal
(gymnasium-robotics' ``desired_goal`` / ``achieved_goal``), so goal-conditioned training can find them.
A plain Box observation is the one-field spec ``observation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from offrl.core.errors import DatasetError

GOAL_KEY, ACHIEVED_KEY = "desired_goal", "achieved_goal"


@dataclass(frozen=True)
class ObsField:
    key: str
    shape: tuple[int, ...]
    start: int
    stop: int


@dataclass(frozen=True)
class ObservationSpec:
    fields: tuple[ObsField, ...]

    @classmethod
    def from_shapes(cls, shapes: dict[str, tuple[int, ...]]) -> ObservationSpec:
        fields, start = [], 0
        for key, shape in shapes.items():
            size = int(np.prod(shape))
            fields.append(ObsField(key, tuple(int(d) for d in shape), start, start + size))
            start += size
        return cls(tuple(fields))

    @classmethod
    def flat(cls, dim: int) -> ObservationSpec:
        return cls.from_shapes({"observation": (dim,)})

    @classmethod
    def from_space(cls, space: gym.Space) -> ObservationSpec:
        """Box: one field; Dict of Boxes: one field per key, in the space's key order."""
        if isinstance(space, gym.spaces.Box):
            return cls.flat(int(np.prod(space.shape)))
        if isinstance(space, gym.spaces.Dict) and all(isinstance(s, gym.spaces.Box) for s in space.spaces.values()):
            return cls.from_shapes({key: sub.shape for key, sub in space.spaces.items()})
        raise DatasetError(f"observation space {space} is neither a Box nor a Dict of Boxes")

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> ObservationSpec:
        return cls.from_shapes({f["key"]: tuple(f["shape"]) for f in saved["fields"]})

    def to_dict(self) -> dict[str, Any]:
        return {"fields": [{"key": f.key, "shape": list(f.shape)} for f in self.fields]}

    @property
    def dim(self) -> int:
        return self.fields[-1].stop

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.fields]

    @property
    def achieved_key(self) -> str | None:
        """Where a row's achieved goal is: ``achieved_goal`` (gymnasium-robotics), else the observation
        itself when goals are whole observations (OGBench)."""
        if ACHIEVED_KEY in self.keys:
            return ACHIEVED_KEY
        shapes = {f.key: f.shape for f in self.fields}
        return "observation" if GOAL_KEY in shapes and shapes.get("observation") == shapes[GOAL_KEY] else None

    @property
    def has_goals(self) -> bool:
        return GOAL_KEY in self.keys and self.achieved_key is not None

    def slice(self, key: str) -> slice:
        field = next((f for f in self.fields if f.key == key), None)
        if field is None:
            raise DatasetError(f"observation spec has no key '{key}' (keys: {self.keys})")
        return slice(field.start, field.stop)

    def flatten(self, obs: dict[str, np.ndarray] | np.ndarray, where: str = "observations") -> np.ndarray:
        """(N, dim) float32 from a dict of (N, *shape) arrays (or a flat array), checking keys and shapes."""
        if not isinstance(obs, dict):
            array = np.asarray(obs)
            if array.shape[-1] != self.dim:
                raise DatasetError(f"{where}: observations have {array.shape[-1]} values, the spec expects {self.dim}")
            return array.astype(np.float32)
        missing = [k for k in self.keys if k not in obs]
        if missing:
            raise DatasetError(f"{where}: observation key(s) {missing} missing (found {sorted(obs)}, "
                               f"expected {self.keys})")
        parts = []
        for field in self.fields:
            value = np.asarray(obs[field.key])
            if value.shape[1:] != field.shape:
                raise DatasetError(f"{where}: observation key '{field.key}' has shape {value.shape[1:]} per row, "
                                   f"expected {field.shape}")
            parts.append(value.reshape(len(value), -1))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def check_fits(self, other: ObservationSpec, where: str) -> None:
        """The data's spec must equal the environment's: same keys, same shapes, same order."""
        if self != other:
            ours = {f.key: f.shape for f in self.fields}
            theirs = {f.key: f.shape for f in other.fields}
            raise DatasetError(f"{where}: the data's observation spec {ours} does not match the env's {theirs}")

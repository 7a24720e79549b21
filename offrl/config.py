"""Register the typed config schemas with Hydra's ConfigStore.

The YAML files in ``conf/`` extend these schemas (``defaults: [<schema>, _self_]``), so defaults
live once, in the dataclasses, and a mistyped key or value fails at composition.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from offrl.agents import AGENTS
from offrl.data.sources import DatasetConfig
from offrl.trainer import TrainerConfig


def register_configs() -> None:
    store = ConfigStore.instance()
    for name, cls in AGENTS.items():
        store.store(group="agent", name=f"{name}_schema", node=cls.config_class)
    store.store(group="dataset", name="schema", node=DatasetConfig)
    store.store(group="trainer", name="schema", node=TrainerConfig)

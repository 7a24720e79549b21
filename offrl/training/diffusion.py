"""Assemble a trajectory-model run (policy-guided diffusion's model, ``offrl diffusion train``) on the one trainer:
the same loop, progress, thread choice, Ctrl-C handling, checkpoints, exact resume and TensorBoard as an agent's
run. The model trains offline on windows of a dataset; its evaluation is the validation loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from offrl.core import checkpoint, records
from offrl.core.config import MAX_ROWS, copies, one_of, positive, validate
from offrl.core.errors import OffrlError
from offrl.core.progress import write
from offrl.core.records import RunDir
from offrl.core.runtime import choose_threads, flush_denormals, resolve_device
from offrl.data.sources import Builder, DatasetConfig, load_dataset
from offrl.data.store import TransitionStore
from offrl.data.windows import TrajectoryNormalizer, TrajectoryWindows, WindowSource
from offrl.diffusion.trajectory import TrajectoryLearner, TrajectoryModel, TrajectoryModelConfig, ValidationLoss
from offrl.training.trainer import Trainer, TrainerConfig


@dataclass
class DiffusionRun:
    """What a trajectory-model run trains on and how it runs (the model's own settings: TrajectoryModelConfig)."""

    dataset: str
    size: int | None = positive(None, most=MAX_ROWS)
    preset: str = one_of("paper", "cpu")  # paper | cpu (TrajectoryModelConfig.cpu())
    threads: int | None = copies(None)  # torch CPU threads; None: the cores free at start, as offrl train


def dataset_label(run: DiffusionRun) -> str:
    """The name a model records for its data (checked by synthetic=pgd): ``<name>`` or ``<name>-<size>``."""
    label = run.dataset if run.size is None else f"{run.dataset}-{run.size}"
    return Path(label).stem if label.endswith((".hdf5", ".h5")) else label


def trainer_config(cfg: TrajectoryModelConfig, total_steps: int) -> TrainerConfig:
    return TrainerConfig(mode="offline", steps=total_steps, batch_size=cfg.batch_size, eval_every=cfg.val_every,
                         log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every)


def saved_run(run_dir: Path) -> tuple[DiffusionRun, dict[str, Any]]:
    """The run and model settings of the trajectory-model run in ``run_dir`` (for resume); one line if there is none."""
    last = RunDir(run_dir).last
    if not last.is_file():
        if (run_dir / "checkpoint.pt").is_file():
            raise OffrlError(f"{run_dir}: a trajectory-model run of an earlier offrl (checkpoint.pt, before the "
                             "shared trainer); its model.pt still samples, but it cannot be resumed: start a new run")
        raise OffrlError(f"{run_dir}: no trajectory-model run to resume (expected {last})")
    config = checkpoint.load(last).get("config", {})
    if "model" not in config or "run" not in config:
        raise OffrlError(f"{last}: not a trajectory-model run (an agent's run? continue it with offrl train resume=)")
    return DiffusionRun(**config["run"]), config["model"]


def train_trajectory_model(run: DiffusionRun, cfg: TrajectoryModelConfig, run_dir: str | Path,
                           dataset: DatasetConfig | None = None, resume: bool = False, build: Builder | None = None,
                           log: Callable[[str], None] = write) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) the trajectory model of ``run.dataset`` in ``run_dir``; returns the
    results written to results.json. ``dataset`` says how to read it (default: the named dataset at ``run.size``;
    ``build`` builds it where it is missing). Everything is checked before the run directory is written to."""
    run_dir = Path(run_dir)
    validate(run, "")
    validate(cfg, "")
    checkpoint.check_writable_dir(run_dir, "run directory")
    if not resume:
        records.check_unowned(run_dir, "offrl diffusion train")
    device = resolve_device(cfg.device)
    torch.set_num_threads(choose_threads(run.threads))
    flush_denormals()
    data = load_dataset(dataset or DatasetConfig(name=run.dataset, size=run.size), log=log, build=build)
    label = dataset_label(run)
    store = TransitionStore.from_data(data, device)
    normalizer = None
    if resume:  # the statistics the model was trained with
        normalizer = TrajectoryNormalizer.from_state_dict(
            checkpoint.load(RunDir(run_dir).last)["agent"]["_extra_state"]["normalizer"])
    windows = TrajectoryWindows(store, cfg.horizon, cfg.stride, cfg.val_fraction, cfg.seed, cfg.action_eps,
                                normalizer=normalizer, where=label)
    info = data.info
    meta = {"env_id": info.env_id, "env_kwargs": info.env_kwargs, "ref_min_score": info.ref_min_score,
            "ref_max_score": info.ref_max_score}
    torch.manual_seed(cfg.seed)
    model = TrajectoryModel(cfg, windows.normalizer, label, meta).to(device)
    total = cfg.total_steps(len(windows))
    learner = TrajectoryLearner(model, total, cfg.seed)
    config = {"run": asdict(run), "model": asdict(cfg)}
    with checkpoint.RunLock(run_dir):
        trainer = Trainer(trainer_config(cfg, total), learner, run_dir, cfg.seed, None, info, run_config=config,
                          offline_source=WindowSource(windows, cfg.seed), dataset=store,
                          evaluation=ValidationLoss(windows, cfg.batch_size, cfg.val_batches))
        if resume:
            trainer.restore()  # checked before config.yaml is rewritten
        records.write_config(run_dir, config)
        log(f"offrl: {len(windows)} training / {len(windows.val_starts)} validation windows of {cfg.horizon} steps, "
            f"{windows.channels} channels; {sum(p.numel() for p in model.net.parameters()):,} parameters on "
            f"{device}; {total} steps")
        [results] = trainer.run(resume=resume)
        results = {"agent": learner.name, "dataset": label, "device": str(device), "train_windows": len(windows),
                   "val_windows": len(windows.val_starts), "parameters": sum(p.numel() for p in model.net.parameters()),
                   "train_loss": float(trainer.metrics["loss"]) if "loss" in trainer.metrics else None,
                   **results, "config": config}
        records.write_results(run_dir, results)
    return results

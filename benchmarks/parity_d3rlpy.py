"""offrl against d3rlpy 2.8 on the same hdf5 file: same transitions, budget, seeds, batch, hyperparameters and
evaluation, for every algorithm both have (BC, TD3+BC, PRDC, IQL, CQL, ReBRAC, Cal-QL offline-to-online).

    python benchmarks/parity_d3rlpy.py --d3rlpy-python /work/d3rlpy-venv/bin/python \\
        [--datasets halfcheetah-medium hopper-medium-replay] [--algos bc td3bc prdc iql cql rebrac calql] \\
        [--seeds 0 1 2] [--steps 50000] [--steps-for cql=20000 prdc@halfcheetah-medium=10000] \\
        [--calql-pretrain 25000] [--calql-online 25000] [--episodes 10] [--size N] [--name parity]
    python benchmarks/make_tables.py --pages-only    # the side-by-side table: docs/results/_tables/parity.md

For each dataset x algorithm x seed, one after the other (one training process at a time, 1 torch / OpenMP / BLAS
thread each, pinned to one core, ``--core``):

- offrl: ``offrl train agent=<algo> dataset=<dataset> trainer.steps=... threads=1`` (each agent's own trainer:
  ReBRAC's batches of 1024, Cal-QL's offline_to_online schedule) into
  ``benchmarks/runs/<name>/<algo>_<dataset>_s<seed>/`` (a run that finished is not trained again; a stopped one
  resumes from its checkpoint, as lib.sh's train_once);
- d3rlpy: ``d3rlpy_worker.py --spec`` in d3rlpy's own venv, on the transitions offrl's loader gives for that run's
  composed config (the same rows, the rewards after offrl's reward preprocessing, offrl's state statistics when the
  agent normalises states), with d3rlpy's config set from offrl's composed agent config (``HYPERPARAMETERS``).

Each (implementation, algorithm, dataset, seed) gets one JSON record, ``benchmarks/records/<name>/<impl>_<algo>_
<dataset>_s<seed>.json``: the exact command, date, CPU, budget, score, updates/s and hyperparameters. A record that
exists is kept (delete it to re-run). Evaluation, both sides: ``--episodes`` episodes of the deterministic policy at
the end of training (Cal-QL: also at the end of pre-training), episode i reset with seed seed + 100 + i, normalised
with the file's reference returns. Speed, both sides: gradient updates / seconds spent inside the update call over the
whole run (offrl's results.json ``updates_per_s``; the worker times ``learner.update`` the same way); d3rlpy's loop
rate (sampling and logging included, after ``--warmup`` updates) is recorded too.

Algorithms offrl does not have yet (``offrl.agents.AGENTS``) are skipped with a message; their d3rlpy settings fall
back to the papers' / CORL's defaults for the keys offrl's config does not name (recorded as ``fallbacks``: match
them to offrl's config when the agent lands).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import yaml
from omegaconf import OmegaConf

from offrl import __version__
from offrl.agents import AGENTS
from offrl.core.runtime import cpu_model
from offrl.data.sources import load_dataset
from offrl.generation.recipes import ensure_recipe_dataset
from offrl.training.run import parse_config

ROOT = Path(__file__).resolve().parent.parent
# the checkout that trains offrl's side (its speed is that commit's)
COMMIT = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip() or None
ALGOS = ("bc", "td3bc", "prdc", "iql", "cql", "rebrac", "calql")
DATASETS = ("halfcheetah-medium", "hopper-medium-replay")
ONLINE = {"calql"}  # offline pre-training, then online fine-tuning (trainer=offline_to_online)
# keys that do not change an offline run's updates, or that choose an implementation detail both sides compute exactly
IGNORED = {"exploration_noise": "online exploration only", "neighbor_backend": "exact search either way"}
# ReBRAC's per-dataset (actor, critic) BC coefficients of the paper / CORL (configs/offline/rebrac/*), the fallback
# while offrl's config names none
REBRAC_BETAS = {"halfcheetah-medium": (0.001, 0.01), "hopper-medium-replay": (0.05, 0.5)}


# ---------------------------------------------------------------------- hyperparameters
class Mapping:
    """offrl's composed agent config read into d3rlpy's keywords: each value taken from offrl's config where it
    names the key (the first of ``names`` found), else the fallback, recorded; offrl keys nobody read are listed."""

    def __init__(self, agent: dict) -> None:
        self.agent = agent
        self.read = {"name", "normalize_states", *IGNORED}
        self.fallbacks: dict[str, object] = {}
        self.mismatches: list[str] = []

    def get(self, names: tuple[str, ...], fallback, what: str):
        for name in names:
            if name in self.agent:
                self.read.add(name)
                return self.agent[name]
        self.fallbacks[what] = fallback
        return fallback

    def expect(self, names: tuple[str, ...], supported, what: str) -> None:
        """d3rlpy has one setting here (``supported``): a different offrl value is a mismatch, recorded."""
        value = self.get(names, supported, what)
        if value != supported:
            self.mismatches.append(f"{what}: offrl {value!r}, d3rlpy only {supported!r}")

    def unread(self) -> list[str]:
        return sorted(set(self.agent) - self.read)


def hidden(m: Mapping, names: tuple[str, ...], fallback: list[int]) -> list[int]:
    """The first of ``names`` offrl's config sets (not None), else its ``hidden_dims``, else ``fallback``."""
    for name in names:
        if m.agent.get(name) is not None:
            m.read.add(name)
            return list(m.agent[name])
        if name in m.agent:
            m.read.add(name)  # None: the shared widths
    return list(m.get(("hidden_dims",), fallback, "hidden_dims"))


def td3_family(m: Mapping) -> tuple[dict, dict]:
    actor = hidden(m, ("actor_hidden_dims",), [256, 256])
    config = {"actor_learning_rate": m.get(("actor_lr",), 3e-4, "actor_lr"),
              "critic_learning_rate": m.get(("critic_lr",), 3e-4, "critic_lr"),
              "gamma": m.get(("discount", "gamma"), 0.99, "discount"), "tau": m.get(("tau",), 0.005, "tau"),
              "n_critics": 2, "target_smoothing_sigma": m.get(("policy_noise",), 0.2, "policy_noise"),
              "target_smoothing_clip": m.get(("noise_clip",), 0.5, "noise_clip"),
              "update_actor_interval": m.get(("policy_freq",), 2, "policy_freq")}
    critic = hidden(m, ("critic_hidden_dims",), actor)
    # offrl's critic LayerNorm follows each hidden activation (ReBRAC's order), as d3rlpy's encoder puts it
    norm = m.get(("critic_layer_norm",), False, "critic_layer_norm")
    return config, {"actor": {"hidden_units": actor}, "critic": {"hidden_units": critic, "use_layer_norm": norm}}


def map_bc(m: Mapping, dataset: str) -> tuple[dict, dict]:
    return ({"learning_rate": m.get(("lr", "learning_rate"), 3e-4, "lr"), "policy_type": "deterministic"},
            {"policy": {"hidden_units": hidden(m, (), [256, 256])}})


def map_td3bc(m: Mapping, dataset: str) -> tuple[dict, dict]:
    config, encoders = td3_family(m)
    config["alpha"] = m.get(("alpha",), 2.5, "alpha")
    return config, encoders


def map_prdc(m: Mapping, dataset: str) -> tuple[dict, dict]:
    config, encoders = map_td3bc(m, dataset)
    config["beta"] = m.get(("beta",), 2.0, "beta")
    return config, encoders


def map_rebrac(m: Mapping, dataset: str) -> tuple[dict, dict]:
    """offrl's ReBRACConfig; fallbacks: the paper's / CORL's (lr 1e-3, 3 x 256, LayerNorm in the critics only, the
    per-dataset betas of configs/offline/rebrac)."""
    config, encoders = td3_family(m)
    config["actor_learning_rate"] = m.get(("actor_lr",), 1e-3, "actor_lr")
    config["critic_learning_rate"] = m.get(("critic_lr",), 1e-3, "critic_lr")
    actor_beta, critic_beta = REBRAC_BETAS.get(dataset, (0.001, 0.01))
    config["actor_beta"] = m.get(("beta_actor", "actor_bc_coef", "actor_beta"), actor_beta, "beta_actor")
    config["critic_beta"] = m.get(("beta_critic", "critic_bc_coef", "critic_beta"), critic_beta, "beta_critic")
    m.expect(("alpha",), 1.0, "alpha (d3rlpy's actor loss: -Q / mean |Q|)")
    if "actor_layer_norm" in m.agent:
        encoders["actor"]["use_layer_norm"] = m.get(("actor_layer_norm",), False, "actor_layer_norm")
    return config, encoders


def map_iql(m: Mapping, dataset: str) -> tuple[dict, dict]:
    critic_lr = m.get(("critic_lr",), 3e-4, "critic_lr")
    value_lr = m.get(("value_lr",), critic_lr, "value_lr")
    if value_lr != critic_lr:
        m.mismatches.append(f"value_lr {value_lr} != critic_lr {critic_lr}: d3rlpy trains Q and V with one optimiser "
                            "at critic_learning_rate")
    config = {"actor_learning_rate": m.get(("actor_lr",), 3e-4, "actor_lr"), "critic_learning_rate": critic_lr,
              "gamma": m.get(("discount",), 0.99, "discount"), "tau": m.get(("tau",), 0.005, "tau"), "n_critics": 2,
              "expectile": m.get(("expectile",), 0.7, "expectile"), "weight_temp": m.get(("beta",), 3.0, "beta"),
              "max_weight": m.get(("exp_adv_max",), 100.0, "exp_adv_max")}
    m.expect(("policy",), "gaussian", "policy")
    m.expect(("extraction",), "awr", "extraction")
    m.expect(("log_std_min",), -5.0, "log_std_min")
    m.expect(("log_std_max",), 2.0, "log_std_max")
    m.get(("actor_lr_schedule_steps",), None, "actor_lr_schedule_steps")  # read by spec(): the cosine schedule
    if m.agent.get("extraction", "awr") == "awr":
        m.read.add("alpha")  # the weight of extraction=ddpgbc only
    width = hidden(m, (), [256, 256])
    norm = m.get(("layer_norm",), False, "layer_norm")
    if norm:
        m.mismatches.append("layer_norm: offrl's IQL normalises before each activation (NormedMLP), d3rlpy after")
    dropout = m.get(("actor_dropout",), 0.0, "actor_dropout")
    return config, {"actor": {"hidden_units": width, "dropout_rate": dropout or None},
                    "critic": {"hidden_units": width, "use_layer_norm": norm},
                    "value": {"hidden_units": width, "use_layer_norm": norm}}


def map_cql(m: Mapping, dataset: str) -> tuple[dict, dict]:
    """offrl's CQLConfig / CalQLConfig on d3rlpy's CQLConfig / CalQLConfig; fallbacks: CORL's
    configs/offline/cql (policy lr 3e-5, critic lr 3e-4, cql_alpha 10, 10 sampled actions, no Lagrange, 3 x 256)."""
    actor_lr = m.get(("actor_lr",), 3e-5, "actor_lr")
    critic_lr = m.get(("critic_lr",), 3e-4, "critic_lr")
    lagrange = m.get(("cql_lagrange",), False, "cql_lagrange")
    backup_entropy = m.get(("backup_entropy",), False, "backup_entropy")
    config = {"actor_learning_rate": actor_lr, "critic_learning_rate": critic_lr,
              "temp_learning_rate": m.get(("alpha_lr",), actor_lr, "alpha_lr"),
              "initial_temperature": m.get(("init_temperature",), 1.0, "init_temperature"),
              "gamma": m.get(("discount",), 0.99, "discount"), "tau": m.get(("tau",), 0.005, "tau"),
              "n_critics": m.get(("num_critics",), 2, "num_critics"),
              "conservative_weight": m.get(("cql_alpha",), 10.0, "cql_alpha"),
              "n_action_samples": m.get(("cql_n_actions",), 10, "cql_n_actions"),
              # the Lagrange weight alpha' starts at e and learns at the critics' rate (offrl, CQL's code, CORL)
              "alpha_learning_rate": critic_lr if lagrange else 0.0, "initial_alpha": float(np.e) if lagrange else 1.0,
              "alpha_threshold": m.get(("cql_target_action_gap",), 1.0, "cql_target_action_gap") if lagrange else 0.0,
              "soft_q_backup": backup_entropy,
              "max_q_backup": m.get(("cql_max_target_backup",), False, "cql_max_target_backup")}
    if not lagrange:
        m.read.add("cql_target_action_gap")  # the Lagrange variant's only
    m.expect(("cql_temp",), 1.0, "cql_temp")
    m.expect(("cql_importance_sample",), True, "cql_importance_sample")
    m.expect(("target_entropy",), None, "target_entropy (d3rlpy: -|A|)")
    init = m.get(("orthogonal_init",), False, "orthogonal_init")
    if init:
        m.mismatches.append("orthogonal_init: offrl's critics start orthogonal (CORL's init), d3rlpy's from torch's "
                            "default init")
    if config["max_q_backup"]:
        pass  # both: max over N policy actions at s' of min_j Qbar_j
    elif backup_entropy:
        m.mismatches.append("backup_entropy: d3rlpy's soft backup samples one a' ~ pi(s') and subtracts alpha log pi "
                            "as offrl's; it is the only sampled single-action target d3rlpy has")
    else:
        m.mismatches.append("target action: d3rlpy backs up Qbar(s', tanh(mu(s'))), the policy's mean, where offrl "
                            "(as CQL's code and CORL) samples a' ~ pi(.|s')")
    m.mismatches.append("update order: d3rlpy steps the critics, then the policy and temperature on the updated "
                        "critics; offrl computes every loss from the parameters before the update (CQL's code)")
    actor = hidden(m, ("actor_hidden_dims",), [256, 256, 256])
    critic = hidden(m, ("critic_hidden_dims",), actor)
    return config, {"actor": {"hidden_units": actor}, "critic": {"hidden_units": critic}}


HYPERPARAMETERS = {"bc": map_bc, "td3bc": map_td3bc, "prdc": map_prdc, "iql": map_iql, "cql": map_cql,
                   "calql": map_cql, "rebrac": map_rebrac}


def d3rlpy_settings(algo: str, dataset: str, cfg: dict) -> dict:
    """The worker spec's hyperparameter part for offrl's composed config ``cfg``, with what could not be matched."""
    m = Mapping(cfg["agent"])
    config, encoders = HYPERPARAMETERS[algo](m, dataset)
    trainer = cfg["trainer"]
    if algo == "calql":
        m.mismatches.append("online returns-to-go: offrl adds an online episode's Monte-Carlo returns when it ends; "
                            "d3rlpy computes a row's from its episode's rewards so far (truncated while it runs)")
    if trainer.get("utd", 1) != 1:
        m.mismatches.append(f"trainer.utd={trainer['utd']}: d3rlpy has no critic minibatches per update")
    return {"config": config, "encoders": encoders, "batch_size": trainer["batch_size"],
            "normalize_states": bool(cfg["agent"].get("normalize_states", True)),
            "actor_lr_cosine_steps": cfg["agent"].get("actor_lr_schedule_steps"),
            "fallbacks": m.fallbacks, "mismatches": m.mismatches, "unread_offrl_keys": m.unread()}


# ---------------------------------------------------------------------- runs
def budget(algo: str, dataset: str, args) -> dict:
    """Updates (and env steps) of one run: ``--steps``, or ``--steps-for`` ALGO=N / ALGO@DATASET=N; Cal-QL's own."""
    if algo in ONLINE:
        return {"offline_updates": args.calql_pretrain, "online_env_steps": args.calql_online}
    steps = args.steps_for.get(f"{algo}@{dataset}", args.steps_for.get(algo, args.steps))
    return {"offline_updates": steps, "online_env_steps": 0}


def offrl_overrides(algo: str, dataset: str, seed: int, args, run_dir: Path) -> list[str]:
    b = budget(algo, dataset, args)
    # no trainer=: each agent's own trainer (its batch size: ReBRAC 1024; Cal-QL's offline_to_online schedule), the
    # default (offline, batch 256) for the others; only the budget and the evaluation are set here
    out = [f"agent={algo}", f"dataset={dataset}", f"seed={seed}", "threads=1", "device=cpu",
           f"trainer.eval_episodes={args.episodes}"]
    if args.size:
        out.append(f"dataset.size={args.size}")
    if algo in ONLINE:
        out += [f"trainer.pretrain_steps={b['offline_updates']}", f"trainer.steps={b['online_env_steps']}",
                f"trainer.eval_every={max(b['offline_updates'], b['online_env_steps'])}"]
    else:
        out += [f"trainer.steps={b['offline_updates']}", f"trainer.eval_every={b['offline_updates']}"]
    out.append(f"trainer.checkpoint_every={args.checkpoint_every}")
    return out + [f"hydra.run.dir={run_dir.relative_to(ROOT)}"]


def composed(algo: str, overrides: list[str]) -> dict:
    """offrl's composed config for these overrides (``offrl train ... --cfg job``), checked to train as the
    benchmark expects (offline; Cal-QL offline_to_online)."""
    done = subprocess.run(["offrl", "train", *[o for o in overrides if not o.startswith("hydra.")], "--cfg", "job"],
                          cwd=ROOT, capture_output=True, text=True, env=child_env())
    if done.returncode:
        raise SystemExit(f"offrl train --cfg job failed:\n{done.stderr[-2000:]}")
    cfg = yaml.safe_load(done.stdout)
    mode = "offline_to_online" if algo in ONLINE else "offline"
    if cfg["trainer"]["mode"] != mode:
        raise SystemExit(f"parity: agent={algo} composes trainer.mode={cfg['trainer']['mode']}, expected {mode}")
    return cfg


def child_env() -> dict:
    """One thread for every library in a child (torch, OpenMP, BLAS), datasets offline."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


CORE: int | None = None  # the one core every training process is pinned to (--core); None: not pinned


def pin() -> None:
    """In the child: run on one core only, so that a library's own worker threads (offrl's KD-tree queries use every
    core, d3rlpy's search is set to one job) share it; both implementations get the same single core."""
    if CORE is not None:
        os.sched_setaffinity(0, {CORE})


def run_logged(command: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"parity: {shlex.join(command)}  (log: {log.relative_to(ROOT)})", flush=True)
    with log.open("a") as handle:
        handle.write(f"$ {shlex.join(command)}\n")
        handle.flush()
        done = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=child_env(),
                              preexec_fn=pin)
    if done.returncode:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"parity: failed ({done.returncode}): {shlex.join(command)}\n{tail}")


def train_offrl(run_dir: Path, overrides: list[str], log: Path) -> tuple[list[str], bool]:
    """lib.sh's train_once: a finished run is kept, a stopped one resumed; the train command, and whether resumed."""
    command = ["offrl", "train", *overrides]
    if (run_dir / "results.json").is_file():
        return command, False
    if (run_dir / "checkpoints" / "last.pt").is_file():
        run_logged(["offrl", "train", f"resume={run_dir.relative_to(ROOT)}"], log)
        return command, True
    shutil.rmtree(run_dir, ignore_errors=True)
    run_logged(command, log)
    return command, False


def common(impl: str, algo: str, dataset: str, seed: int, args, cfg: dict) -> dict:
    trainer = cfg["trainer"]
    return {"impl": impl, "algo": algo, "dataset": dataset, "size": args.size, "seed": seed,
            "date": date.today().isoformat(), "offrl_commit": COMMIT, "cpu": cpu_model(),
            "host_machine": platform.machine(), "threads": 1,
            "pinned_core": CORE, "cores": os.cpu_count(),
            "device": "cpu", "benchmark_command": "python benchmarks/parity_d3rlpy.py " + shlex.join(sys.argv[1:]),
            "budget": {**budget(algo, dataset, args), "batch_size": trainer["batch_size"],
                       "eval_episodes": args.episodes, "eval_seeds": f"seed + 100 + i, i < {args.episodes}"}}


def offrl_record(run_dir: Path, command: list[str], resumed: bool, base: dict, cfg: dict) -> dict:
    result = json.loads((run_dir / "results.json").read_text())
    b = base["budget"]
    want = ({"pretrain": b["offline_updates"], "online": b["online_env_steps"]} if b["online_env_steps"] else
            {"offline": b["offline_updates"]})
    if result.get("phase_steps") != want:
        raise SystemExit(f"parity: {run_dir} ran {result.get('phase_steps')}, not this budget ({want}); remove it or "
                         "use --name")
    history = result.get("eval_history", [])
    pretrain = next((e for e in history if e["phase"] == "pretrain"), None)
    return {**base, "command": shlex.join(command), "resumed": resumed, "run_dir": str(run_dir.relative_to(ROOT)),
            "version": __version__, "torch": result.get("torch"), "cpu": result.get("cpu") or base["cpu"],
            "normalized_score": result["normalized_score"], "return_mean": result["return_mean"],
            "return_std": result["return_std"],
            "pretrain_normalized_score": pretrain.get("normalized_score") if pretrain else None,
            "updates": result["gradient_steps"], "updates_per_s": result["updates_per_s"],
            "env_steps_per_s": result.get("env_steps_per_s"), "wall_s": result["wall_s"],
            "data": {**{k: result["data"].get(k) for k in ("location", "transitions", "episodes")},
                     "sha256": file_digest(result["data"].get("location"))},
            "hyperparameters": cfg["agent"], "trainer": cfg["trainer"],
            "reward_preprocessing": {k: cfg["dataset"][k] for k in ("reward_normalization", "reward_scale",
                                                                   "reward_shift")}}


def file_digest(location: str | None) -> str | None:
    """SHA-256 of the dataset file a run read (None if it is not one file): the two sides of a pair, and seeds
    recorded on different machines, can be checked to have trained on the same bytes."""
    if not location or not Path(location).is_file():
        return None
    digest = hashlib.sha256()
    with open(location, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_data(cfg: dict, out_dir: Path) -> tuple[Path, dict]:
    """The transitions offrl's loader gives for ``cfg`` (rows, rewards after offrl's preprocessing, actions mapped
    into [-1, 1]) with offrl's state statistics, as an .npz for the worker (cached per dataset config)."""
    dataset_cfg = {k: v for k, v in cfg["dataset"].items() if k != "relabel"}
    key = hashlib.sha1(json.dumps(dataset_cfg, sort_keys=True).encode()).hexdigest()[:10]
    path = out_dir / f"{cfg['dataset']['name']}{'-' + str(cfg['dataset']['size']) if cfg['dataset']['size'] else ''}" \
                     f"_{key}.npz"
    _, _, _, typed_dataset = parse_config(OmegaConf.create(cfg))
    data = load_dataset(typed_dataset, build=ensure_recipe_dataset)
    info = {"env_id": data.info.env_id, "ref_min_score": data.info.ref_min_score,
            "ref_max_score": data.info.ref_max_score, "location": data.info.location, "transitions": len(data),
            "episodes": data.summary()["episodes"]}
    if not path.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        observations = data.observations.astype(np.float64)
        np.savez(path.with_suffix(".tmp.npz"), observations=data.observations, actions=data.actions,
                 rewards=data.rewards, next_observations=data.next_observations, terminals=data.terminals,
                 episode_ends=data.episode_ends, obs_mean=observations.mean(0), obs_std=observations.std(0),
                 ref_min_score=info["ref_min_score"], ref_max_score=info["ref_max_score"])
        os.replace(path.with_suffix(".tmp.npz"), path)
    return path, info


def run_d3rlpy(algo: str, dataset: str, seed: int, args, cfg: dict, base: dict, runs: Path) -> dict:
    data_path, info = prepare_data(cfg, runs / "_data")
    settings = d3rlpy_settings(algo, dataset, cfg)
    trainer = cfg["trainer"]
    b = base["budget"]
    name = f"{algo}_{dataset}{'-' + str(args.size) if args.size else ''}_s{seed}"
    spec = {"algo": algo, "data": str(data_path), "env_id": info["env_id"], "seed": seed, "threads": 1,
            "steps": b["offline_updates"], "warmup": args.warmup, "episodes": args.episodes,
            "online_steps": b["online_env_steps"], "offline_fraction": trainer.get("offline_fraction", 0.5),
            "buffer_size": trainer.get("buffer_size", 1_000_000),
            "online_warmup_steps": trainer.get("warmup_steps", 0) if algo in ONLINE else 0,
            "updates_per_step": trainer.get("updates_per_step", 1.0),
            **{k: settings[k] for k in ("config", "encoders", "batch_size", "normalize_states",
                                        "actor_lr_cosine_steps")},
            "out": str(runs / "d3rlpy" / f"{name}.json")}
    spec_path = runs / "d3rlpy" / f"{name}.spec.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    command = [args.d3rlpy_python, "benchmarks/d3rlpy_worker.py", "--spec", str(spec_path.relative_to(ROOT))]
    run_logged(command, runs / "logs" / f"d3rlpy_{name}.log")
    out = json.loads(Path(spec["out"]).read_text())
    if settings["mismatches"] or settings["fallbacks"]:
        print(f"parity: {algo}: fallbacks {settings['fallbacks']}; mismatches {settings['mismatches']}", flush=True)
    return {**base, "command": shlex.join(command), "version": out["version"], "torch": out["torch"],
            "normalized_score": out["normalized_score"], "return_mean": out["return_mean"],
            "return_std": out["return_std"], "returns": out["returns"],
            "pretrain_normalized_score": (out.get("pretrain_eval") or {}).get("normalized_score"),
            "updates": out["updates"], "updates_per_s": out["updates_per_s"],
            "loop_updates_per_s": out["loop_updates_per_s"], "loop_window": out["loop_window"],
            "wall_s": out["wall_s"],
            "data": {**{k: info[k] for k in ("location", "transitions", "episodes")},
                     "sha256": file_digest(info["location"])},
            "spec": spec, "hyperparameters": out["config"],
            "mapping": {k: settings[k] for k in ("fallbacks", "mismatches", "unread_offrl_keys")}}


def write_record(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(record, indent=2) + "\n")
    os.replace(path.with_suffix(".tmp"), path)
    print(f"parity: {record['impl']} {record['algo']} {record['dataset']} seed {record['seed']}: normalized score "
          f"{record['normalized_score']:.1f}, {record['updates_per_s']:.1f} updates/s -> {path.relative_to(ROOT)}",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d3rlpy-python", default="/work/d3rlpy-venv/bin/python",
                        help="python of d3rlpy's own venv (benchmarks/README.md#d3rlpy-venv)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=50_000, help="gradient updates of the offline algorithms")
    parser.add_argument("--steps-for", nargs="*", default=[], metavar="ALGO[@DATASET]=N",
                        help="another budget for an algorithm (on one dataset)")
    parser.add_argument("--calql-pretrain", type=int, default=25_000, help="Cal-QL's offline pre-training updates")
    parser.add_argument("--calql-online", type=int, default=25_000, help="Cal-QL's online environment steps")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes at the end")
    parser.add_argument("--size", type=int, default=None, help="train on the dataset's build of N transitions")
    parser.add_argument("--warmup", type=int, default=1000, help="updates before d3rlpy's loop-rate window")
    parser.add_argument("--checkpoint-every", type=int, default=10_000)
    parser.add_argument("--impls", nargs="+", default=["offrl", "d3rlpy"], choices=["offrl", "d3rlpy"])
    parser.add_argument("--name", default="parity", help="records/<name>/ and runs/<name>/")
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)),
                        help="pin every training process to this core (default: the last); -1: no pinning")
    args = parser.parse_args(argv)
    global CORE
    CORE = None if args.core < 0 else args.core
    args.steps_for = {k: int(v) for k, v in (item.split("=", 1) for item in args.steps_for)}
    if "d3rlpy" in args.impls and not Path(args.d3rlpy_python).is_file():
        raise SystemExit(f"{args.d3rlpy_python}: no such python; make d3rlpy's venv (benchmarks/README.md)")
    records, runs = ROOT / "benchmarks" / "records" / args.name, ROOT / "benchmarks" / "runs" / args.name
    for dataset in args.datasets:
        for algo in args.algos:
            if algo not in AGENTS:
                print(f"parity: skipped {algo}: offrl has no agent '{algo}' yet (offrl.agents.AGENTS); "
                      "run again once it lands", flush=True)
                continue
            for seed in args.seeds:
                label = f"{algo}_{dataset}{'-' + str(args.size) if args.size else ''}_s{seed}"
                run_dir = runs / label
                overrides = offrl_overrides(algo, dataset, seed, args, run_dir)
                cfg = None
                for impl in args.impls:
                    path = records / f"{impl}_{label}.json"
                    if path.is_file():
                        print(f"parity: kept {path.relative_to(ROOT)}", flush=True)
                        continue
                    cfg = cfg or composed(algo, overrides)
                    base = common(impl, algo, dataset, seed, args, cfg)
                    if impl == "offrl":
                        command, resumed = train_offrl(run_dir, overrides, runs / "logs" / f"offrl_{label}.log")
                        record = offrl_record(run_dir, command, resumed, base, cfg)
                    else:
                        record = run_d3rlpy(algo, dataset, seed, args, cfg, base, runs)
                    write_record(path, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())

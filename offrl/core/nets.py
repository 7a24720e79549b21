"""Network building blocks shared by every agent."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def mlp(
    in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256), activation: type[nn.Module] = nn.ReLU,
    dropout: float = 0.0,
) -> nn.Sequential:
    """in -> hidden... -> out with ``activation`` between layers and no output activation; with
    ``dropout`` > 0 every hidden activation is followed by ``nn.Dropout`` (active in training mode)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), activation()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class SeedLinear(nn.Module):
    """One ``nn.Linear`` per seed, stacked on a leading seed axis: (K, B, in) -> (K, B, out) as one batched
    matmul (``offrl.training.seeds.stack_agents`` builds it from K trained or freshly initialised layers)."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach().T for layer in layers]).contiguous())
        self.bias = nn.Parameter(torch.stack([layer.bias.detach()[None] for layer in layers]))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers evaluated as one batched matmul: (n, B, in) -> (n, B, out).

    Each member is initialised like ``nn.Linear`` (uniform in +-1/sqrt(in)). With a seed axis (weights
    (K, n, in, out), ``offrl.training.seeds.stack_agents``): (K, n, B, in) -> (K, n, B, out).
    """

    def __init__(self, n: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: Tensor, members: slice | Tensor = slice(None),
                affine: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``members`` selects a subset of the ensemble: a slice, or a tensor of member indices. A layer with one
        output (a critic's last) is a dot product per row, computed as one: a batched matmul with one output
        column runs several times slower on a CPU, forward and backward (benchmarks/bench_ensemble_head.py).

        ``affine`` = (gamma, beta), each (..., n, 1, in): this layer applied to gamma * x + beta (the affine part of
        the LayerNorm before it), computed as x (diag(gamma) W) + (beta W + b): the same function and gradients,
        with the elementwise work on the weights instead of on the rows."""
        seeded = self.weight.dim() == 4  # a seed axis in front
        weight, bias = (self.weight[:, members], self.bias[:, members]) if seeded else \
            (self.weight[members], self.bias[members])
        if affine is not None:
            gamma, beta = affine
            weight, bias = weight * gamma.transpose(-1, -2), bias + beta @ weight
        if weight.shape[-1] == 1:
            return (x * weight.transpose(-1, -2)).sum(dim=-1, keepdim=True) + bias
        return torch.matmul(x, weight) + bias if seeded else torch.baddbmm(bias, x, weight)


class EnsembleMLP(nn.Module):
    """``n`` independent MLPs as one module: (B, in) or (n, B, in) -> (n, B, out). With ``layer_norm``
    each hidden layer is followed by a LayerNorm with per-member affine parameters, before the activation
    (RLPD's order) or, with ``norm_after_activation``, after it (ReBRAC's order). ``activation``: the hidden
    layers' nonlinearity, a function of a tensor (ReLU; FQL's critics: tanh-approximated GELU)."""

    def __init__(self, n: int, in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256),
                 layer_norm: bool = False, norm_after_activation: bool = False,
                 activation: Callable[[Tensor], Tensor] = torch.relu) -> None:
        super().__init__()
        self.n = n
        self.norm_after_activation = norm_after_activation
        self.activation = activation
        dims = [in_dim, *hidden, out_dim]
        self.layers = nn.ModuleList(EnsembleLinear(n, i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.norm_weights = nn.ParameterList(nn.Parameter(torch.ones(n, 1, w)) for w in hidden) if layer_norm else None
        self.norm_biases = nn.ParameterList(nn.Parameter(torch.zeros(n, 1, w)) for w in hidden) if layer_norm else None

    def forward(self, x: Tensor, members: slice | Tensor = slice(None)) -> Tensor:
        """``members`` evaluates a subset of the ensemble only: a slice, or a tensor of member indices
        (e.g. a random subset for REDQ-style targets, drawn on the device)."""
        seeded = self.layers[0].weight.dim() == 4  # a seed axis in front of the members (offrl.training.seeds)
        if x.dim() == (3 if seeded else 2):  # the same batch for every member
            count = members.numel() if isinstance(members, Tensor) else len(range(self.n)[members])
            x = x.unsqueeze(-3).expand(*x.shape[:-2], count, *x.shape[-2:])
        members_of = (slice(None), members) if seeded else members
        affine = None  # a LayerNorm's affine part that the next layer applies (folded into its weights)
        for i, layer in enumerate(self.layers):
            x = layer(x, members, affine)
            affine = None
            if i < len(self.layers) - 1:
                if self.norm_weights is not None and not self.norm_after_activation:
                    x = self._scale_shift(F.layer_norm(x, x.shape[-1:]), self._affine(i, members_of))
                x = self.activation(x)
                if self.norm_weights is not None and self.norm_after_activation:
                    x, affine = F.layer_norm(x, x.shape[-1:]), self._affine(i, members_of)
                    # folded into the next layer where that is less work: more rows than the layer has outputs
                    if x.shape[-2] <= self.layers[i + 1].weight.shape[-1]:
                        x, affine = self._scale_shift(x, affine), None
        return x

    def _affine(self, i: int, members_of: slice | Tensor | tuple) -> tuple[Tensor, Tensor]:
        """Hidden layer ``i``'s LayerNorm affine parameters (gamma, beta) of the members evaluated."""
        return self.norm_weights[i][members_of], self.norm_biases[i][members_of]

    @staticmethod
    def _scale_shift(x: Tensor, affine: tuple[Tensor, Tensor]) -> Tensor:
        gamma, beta = affine
        return torch.addcmul(beta, x, gamma)


class NormedMLP(nn.Module):
    """An MLP with a LayerNorm after every hidden layer: EnsembleMLP's layers with one member, so
    offrl.training.seeds can stack it. (B, in) -> (B, out), (K, B, in) -> (K, B, out) with a seed axis."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.net = EnsembleMLP(1, in_dim, out_dim, hidden, layer_norm=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-3)


class EnsembleCritic(nn.Module):
    """``n`` Q-functions Q_j(s, a) as one module with a leading ensemble dimension: returns (n, B)
    ((K, n, B) with a seed axis).

    ``members`` evaluates a subset only (e.g. ``slice(0, 1)`` for TD3's Q1 in the actor loss, or a tensor
    of member indices) without computing the others; ``layer_norm`` puts a per-member LayerNorm after
    every hidden layer (EXPO / RLPD critics), after its activation with ``norm_after_activation`` (ReBRAC);
    ``activation`` is EnsembleMLP's.
    """

    def __init__(self, obs_dim: int, act_dim: int, n: int = 2, hidden: Sequence[int] = (256, 256),
                 layer_norm: bool = False, norm_after_activation: bool = False,
                 activation: Callable[[Tensor], Tensor] = torch.relu) -> None:
        super().__init__()
        self.n = n
        self.net = EnsembleMLP(n, obs_dim + act_dim, 1, hidden, layer_norm, norm_after_activation, activation)

    def forward(self, obs: Tensor, actions: Tensor, members: slice | Tensor = slice(None)) -> Tensor:
        return self.net(torch.cat([obs, actions], dim=-1), members).squeeze(-1)


class DeterministicActor(nn.Module):
    """pi(s) = tanh(MLP(s)), actions in [-1, 1]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs))


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a deep copy with gradients off."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- tau * source + (1 - tau) * target, as one fused foreach op."""
    torch._foreach_lerp_(_tensors(target), _tensors(source), tau)


def _tensors(module: nn.Module) -> list[Tensor]:
    return [p.data for p in module.parameters()]


class TanhGaussianActor(nn.Module):
    """a = tanh(u), u ~ N(mu(s), sigma(s)^2): state-dependent std with log sigma clipped to
    [log_std_min, log_std_max]. ``forward`` returns a reparameterised sample and its log-density
    including the tanh change of variables, log pi(a|s) = sum_i log N(u_i) - log(1 - tanh(u_i)^2).
    ``dropout`` > 0 follows every hidden activation with dropout (active in training mode)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256),
                 log_std_min: float = -20.0, log_std_max: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, 2 * act_dim, hidden, dropout=dropout)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def distribution(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.trunk(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def forward(self, obs: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A reparameterised sample and its log-density; ``noise``: the standard normal draw xi of
        u = mu + sigma * xi, drawn by the caller (an agent's own noise stream), or None: drawn here."""
        mean, log_std = self.distribution(obs)
        std = log_std.exp()
        u = mean + std * (torch.randn_like(mean) if noise is None else noise)
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)

    def sample_n(self, obs: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """n reparameterised samples per state and their log-densities, the network run once per state:
        ``obs`` (..., B, obs_dim) and ``noise`` (..., B, n, act_dim) give actions (..., B, n, act_dim) and
        log pi (..., B, n), the samples ``forward`` gives for each state repeated n times."""
        mean, log_std = (x.unsqueeze(-2) for x in self.distribution(obs))
        u = mean + log_std.exp() * noise
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)

    def mode(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.distribution(obs)[0])

    def log_prob(self, obs: Tensor, actions: Tensor, eps: float = 1e-6) -> Tensor:
        """log pi(a|s) of given actions: u = atanh(a) with a clamped to [-1 + eps, 1 - eps] (actions on
        the bounds get the density at the clamp and no gradient through the clamp)."""
        mean, log_std = self.distribution(obs)
        return tanh_gaussian_log_prob(torch.atanh(actions.clamp(-1 + eps, 1 - eps)), mean, log_std)


def tanh_gaussian_log_prob(u: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log-density of a = tanh(u) for u ~ N(mean, exp(log_std)^2), summed over the last dim.
    Uses the stable identity log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))."""
    gaussian = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return (gaussian - log_det).sum(-1)


class VAE(nn.Module):
    """Conditional VAE of actions given states (BCQ-style): encoder (s, a) -> N(mu_z, sigma_z), decoder
    (s, z) -> tanh action. log sigma_z is clamped to [-4, 15]."""

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int, hidden: Sequence[int] = (750, 750)) -> None:
        super().__init__()
        self.encoder = mlp(obs_dim + act_dim, 2 * latent_dim, hidden)
        self.decoder = mlp(obs_dim + latent_dim, act_dim, hidden)

    def forward(self, obs: Tensor, actions: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruction with a reparameterised latent z = mean + std * noise (``noise``: a standard normal
        draw of the latent's shape; None: drawn here), and the latent's mean and std."""
        mean, log_std = self.encoder(torch.cat([obs, actions], dim=-1)).chunk(2, dim=-1)
        std = log_std.clamp(-4.0, 15.0).exp()
        z = mean + std * (torch.randn_like(std) if noise is None else noise)
        return self.decode(obs, z), mean, std

    def decode(self, obs: Tensor, z: Tensor) -> Tensor:
        return torch.tanh(self.decoder(torch.cat([obs, z], dim=-1)))


class GaussianActor(nn.Module):
    """pi(a|s) = N(mu(s), diag(sigma^2)) with a state-independent log sigma in [log_std_min, log_std_max]
    and no squashing of the distribution (O-DICE's policy); ``mode`` is the mean clipped to [-1, 1].
    ``squash_mean``: mu(s) = tanh(MLP(s)), the density still that of the Gaussian on the action itself,
    with no change-of-variables term (IQL's policy); ``dropout`` on the mean network's hidden layers."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256),
                 log_std_min: float = -5.0, log_std_max: float = 2.0, squash_mean: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.mean = mlp(obs_dim, act_dim, hidden, dropout=dropout)
        if squash_mean:
            self.mean.append(nn.Tanh())
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        log_std = self.log_std.clamp(self.log_std_min, self.log_std_max)
        z = (actions - self.mean(obs)) / log_std.exp()
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def sample(self, obs: Tensor) -> Tensor:
        log_std = self.log_std.clamp(self.log_std_min, self.log_std_max)
        mean = self.mean(obs)
        return mean + log_std.exp() * torch.randn_like(mean)

    def mode(self, obs: Tensor) -> Tensor:
        return self.mean(obs).clamp(-1.0, 1.0)

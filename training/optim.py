"""Optimisers, learning-rate schedule and early stopping, as NeuroChem trained ANI.

* Weights: AdamW with a weight decay chosen per layer — none on the first layer (as
  NeuroChem and TorchANI's ANI-1x recipe: 0, 1e-5, 1e-6, 0 for the four layers).
* Biases: plain SGD.
* Frozen layers (``requires_grad=False``) are in no optimiser, so nothing can move them.
* Discriminative fine-tuning (Zaverkin et al. 2023): layer ``k`` of ``L`` gets the
  learning rate ``lr * factor**(L - 1 - k)``: full rate at the output, smaller toward the input.
* :class:`Schedule`: ``ReduceLROnPlateau`` on the validation RMSE for both optimisers plus
  early stopping on patience or a minimum learning rate.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from openmm_ani.model import ANIModel

from .build import layers_of

#: ANI-1x's per-layer weight decay for a four-layer network (first layer none).
DEFAULT_WEIGHT_DECAY: Tuple[float, ...] = (0.0, 1e-5, 1e-6, 0.0)


@dataclass
class OptimizerConfig:
    """Learning rates and decay.

    Attributes
    ----------
    lr
        AdamW learning rate of the weights.
    bias_lr
        SGD learning rate of the biases.
    weight_decay
        Decoupled weight decay per layer, input layer first; shorter lists are padded with 0.
        The first entry should be 0 (NeuroChem).
    layer_lr_factor
        ``None``, or the discriminative fine-tuning factor ``f`` in ``lr * f**(L - 1 - k)``.
    plateau_factor, plateau_patience
        ``ReduceLROnPlateau`` factor and patience (epochs).
    min_lr
        Training stops when the weight learning rate falls below this.
    early_stopping_patience
        Training stops after this many epochs without a better validation RMSE.
    """

    lr: float = 1e-3
    bias_lr: float = 1e-3
    weight_decay: Sequence[float] = DEFAULT_WEIGHT_DECAY
    layer_lr_factor: Optional[float] = None
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    min_lr: float = 1e-6
    early_stopping_patience: int = 50

    def to_dict(self) -> Dict[str, Any]:
        return {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in self.__dict__.items()}


def layer_learning_rates(base: float, num_layers: int, factor: Optional[float]) -> List[float]:
    """Per-layer learning rates, input layer first (``base`` for all when ``factor`` is None)."""
    if factor is None:
        return [base] * num_layers
    if not 0.0 < factor <= 1.0:
        raise ValueError(f"layer_lr_factor must be in (0, 1], got {factor}")
    return [base * factor ** (num_layers - 1 - k) for k in range(num_layers)]


def build_optimizers(model: ANIModel, config: OptimizerConfig) -> Tuple[torch.optim.AdamW, torch.optim.SGD]:
    """AdamW over the trainable weights and SGD over the trainable biases, one group per layer."""
    layers = layers_of(model)
    decay = list(config.weight_decay) + [0.0] * max(0, len(layers) - len(config.weight_decay))
    weight_lrs = layer_learning_rates(config.lr, len(layers), config.layer_lr_factor)
    bias_lrs = layer_learning_rates(config.bias_lr, len(layers), config.layer_lr_factor)
    weight_groups: List[Dict[str, Any]] = []
    bias_groups: List[Dict[str, Any]] = []
    for k, layer_group in enumerate(layers):
        weights = [layer.weight for layer in layer_group if layer.weight.requires_grad]
        biases = [layer.bias for layer in layer_group if layer.bias.requires_grad]
        # Empty groups are kept so that group k is always layer k (checkpoint compatibility).
        weight_groups.append({"params": weights, "lr": weight_lrs[k], "weight_decay": decay[k], "layer": k})
        bias_groups.append({"params": biases, "lr": bias_lrs[k], "layer": k})
    if not any(g["params"] for g in weight_groups + bias_groups):
        raise ValueError("every layer is frozen: nothing to train")
    return torch.optim.AdamW(weight_groups, lr=config.lr), torch.optim.SGD(bias_groups, lr=config.bias_lr)


def freeze_layers(model: ANIModel, layers: Sequence[int]) -> None:
    """Fix layers (indices from the input, 0-based, for every element) so training cannot change them."""
    all_layers = layers_of(model)
    for k in layers:
        if not 0 <= k < len(all_layers):
            raise ValueError(f"cannot freeze layer {k}: the networks have layers 0..{len(all_layers) - 1}")
        for layer in all_layers[k]:
            layer.weight.requires_grad_(False)
            layer.bias.requires_grad_(False)


@dataclass
class Schedule:
    """Learning-rate reduction on validation plateaus, best-model tracking and early stopping."""

    optimizers: Sequence[torch.optim.Optimizer]
    config: OptimizerConfig
    best: float = float("inf")
    best_epoch: int = -1
    schedulers: List[torch.optim.lr_scheduler.ReduceLROnPlateau] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.schedulers = [
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=self.config.plateau_factor, patience=self.config.plateau_patience
            )
            for opt in self.optimizers
        ]

    def step(self, metric: float, epoch: int) -> bool:
        """Record the validation metric of ``epoch``; return True if it is the best so far."""
        for scheduler in self.schedulers:
            scheduler.step(metric)
        improved = metric < self.best
        if improved:
            self.best, self.best_epoch = metric, epoch
        return improved

    def learning_rate(self) -> float:
        """Current largest weight learning rate."""
        return max(group["lr"] for group in self.optimizers[0].param_groups)

    def should_stop(self, epoch: int) -> Optional[str]:
        """A reason to stop after ``epoch``, or None."""
        if self.learning_rate() < self.config.min_lr:
            return f"learning rate {self.learning_rate():.3g} fell below {self.config.min_lr:.3g}"
        if epoch - self.best_epoch >= self.config.early_stopping_patience:
            return f"no improvement for {epoch - self.best_epoch} epochs"
        return None

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch,
                "schedulers": [s.state_dict() for s in self.schedulers]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        for scheduler, s in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(s)

"""Protocol settings of the MM -> ML/MM free-energy correction."""

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np


@dataclass
class ProtocolSettings:
    """Settings of one leg (complex or solvent) of the correction.

    Attributes
    ----------
    n_states
        Number of ``lambda_interpolate`` windows (equally spaced from 0 to 1) for replica
        exchange; ignored when ``lambdas`` is given.
    lambdas
        Explicit window values (first 0, last 1), or ``None``.
    n_iterations
        Replica-exchange iterations (0 skips the equilibrium leg).
    steps_per_iteration
        Langevin steps between exchange attempts.
    timestep_fs
        Time step, fs.
    collision_rate_per_ps
        Langevin friction, 1/ps.
    temperature_k
        Temperature, K.
    pressure_atm
        Pressure for periodic systems (Monte Carlo barostat), atm; ``None`` for NVT.
    checkpoint_interval
        Iterations between checkpoints of the reporter file (reduced to its greatest common
        divisor with ``n_iterations`` so that the last iteration is a checkpoint; a resumed
        run restarts from the last checkpoint).
    n_switches
        Nonequilibrium switches per direction (0 skips the switching leg).
    switching_steps
        Steps of one switch (lambda changes by ``1/switching_steps`` per step).
    equilibration_steps
        Steps of end-state MD before the first switching start configuration is taken.
    steps_between_switches
        End-state MD steps between successive start configurations.
    n_bootstrap
        Bootstrap resamples for the BAR uncertainty.
    minimize
        Minimise the positions with the MM system (= lambda 0, no ANI cost) before sampling
        (done by :func:`openmm_ani.freeenergy.workflow.run_leg`).
    minimize_iterations
        Maximum minimiser iterations (0: until converged).
    model, precision
        ANI model name/path and ``"single"``/``"double"``.
    platform
        OpenMM platform name, or ``None`` for OpenMM's fastest.
    seed
        Seed for the bootstrap and the choice of start configurations.
    """

    n_states: int = 11
    lambdas: Optional[List[float]] = None
    n_iterations: int = 1000
    steps_per_iteration: int = 500
    timestep_fs: float = 1.0
    collision_rate_per_ps: float = 1.0
    temperature_k: float = 298.15
    pressure_atm: Optional[float] = None
    checkpoint_interval: int = 10
    n_switches: int = 100
    switching_steps: int = 5000
    equilibration_steps: int = 5000
    steps_between_switches: int = 1000
    n_bootstrap: int = 200
    minimize: bool = True
    minimize_iterations: int = 500
    model: str = "ani1ccx"
    precision: str = "single"
    platform: Optional[str] = None
    seed: int = 2024

    def lambda_values(self) -> List[float]:
        """The window values, validated.

        Raises
        ------
        ValueError
            Fewer than two windows, values outside [0, 1], not starting at 0 or ending at 1.
        """
        values = list(self.lambdas) if self.lambdas is not None else list(np.linspace(0.0, 1.0, int(self.n_states)))
        if len(values) < 2:
            raise ValueError(f"at least two lambda windows are needed, got {values}")
        if values[0] != 0.0 or values[-1] != 1.0 or any(not 0.0 <= v <= 1.0 for v in values):
            raise ValueError(f"lambda windows must run from 0 to 1 within [0, 1], got {values}")
        return [float(v) for v in values]

    def validate(self) -> None:
        """Check all values.

        Raises
        ------
        ValueError
            Naming the first bad setting.
        """
        self.lambda_values()
        positive = ["steps_per_iteration", "timestep_fs", "collision_rate_per_ps", "temperature_k", "checkpoint_interval", "switching_steps"]
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"setting {name} must be positive, got {getattr(self, name)}")
        for name in ["n_iterations", "n_switches", "minimize_iterations", "equilibration_steps", "steps_between_switches", "n_bootstrap"]:
            if getattr(self, name) < 0:
                raise ValueError(f"setting {name} must not be negative, got {getattr(self, name)}")
        if self.n_iterations == 0 and self.n_switches == 0:
            raise ValueError("nothing to do: n_iterations and n_switches are both 0")
        if self.pressure_atm is not None and not self.pressure_atm > 0:
            raise ValueError(f"setting pressure_atm must be positive, got {self.pressure_atm}")

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

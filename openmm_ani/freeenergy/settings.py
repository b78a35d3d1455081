"""Protocol settings of the MM -> ML/MM free-energy correction."""

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from openmm import unit

#: Settings given in physical units: name -> (OpenMM unit of the stored float, description).
#: Each accepts a plain number in that unit or an ``openmm.unit.Quantity``.
QUANTITY_FIELDS: Dict[str, Tuple[Any, str]] = {
    "timestep_fs": (unit.femtosecond, "time step"),
    "collision_rate_per_ps": (unit.picosecond**-1, "collision rate"),
    "temperature_k": (unit.kelvin, "temperature"),
    "pressure_atm": (unit.atmosphere, "pressure"),
    "target_error_kcal_per_mol": (unit.kilocalorie_per_mole, "target error"),
    "max_time_s": (unit.second, "time budget"),
}

#: Settings that only say how far a run goes: changing them extends (or stops) a stored run
#: instead of invalidating it.
EXTENDING_FIELDS = ("n_iterations", "n_switches", "target_error_kcal_per_mol", "max_time_s", "equilibrium_time_fraction",
                    "check_interval", "n_bootstrap")


@dataclass
class ProtocolSettings:
    """Settings of the two legs (complex and solvent) of the correction.

    Unit-bearing settings take a plain number in the unit their name states, or an
    ``openmm.unit.Quantity`` (``timestep_fs=2 * unit.femtosecond``, ``max_time_s=3 * unit.hour``),
    which is converted; the ``timestep``, ``temperature``... properties return Quantities.

    Attributes
    ----------
    lambdas
        Explicit window values (first 0, last 1), or ``None`` to choose them: from a pilot run
        (``schedule="auto"``, the default) or ``n_states`` equally spaced (``schedule="equal"``).
    schedule
        ``"auto"``: windows equally spaced in thermodynamic length, measured by short pilot
        sampling (see :mod:`openmm_ani.freeenergy.schedule`); ``"equal"``: ``n_states`` equally
        spaced windows. Ignored when ``lambdas`` is given.
    n_states
        Number of equally spaced windows for ``schedule="equal"``.
    length_per_window
        Thermodynamic length (in kT, the standard deviation of ``dU/dlambda`` integrated over
        lambda) between neighbouring windows of the auto schedule; 1 gives neighbour overlaps of
        about 0.3 for Gaussian energy differences.
    max_states
        Upper bound on the number of auto-scheduled windows.
    pilot_lambdas
        Lambda values sampled by the pilot.
    pilot_samples, pilot_steps_per_sample, pilot_equilibration_steps
        Pilot: samples of ``dU/dlambda`` per pilot lambda, MD steps between them, and MD steps
        discarded first at each pilot lambda.
    n_iterations
        Most replica-exchange iterations (0 skips the equilibrium part).
    steps_per_iteration
        Langevin steps between exchange attempts.
    check_interval
        Iterations (and switches per direction) between convergence checks; also the
        checkpoint interval of the replica-exchange file (a run stops on a checkpoint).
    target_error_kcal_per_mol
        Target uncertainty of the correction ddG, kcal/mol: each leg's estimators stop when
        their error reaches ``target / sqrt(2)``; ``None`` runs to the iteration/switch limits.
    max_time_s
        Wall-clock budget of one leg in one call, s; ``None``: no limit. A rerun continues
        with a new budget.
    equilibrium_time_fraction
        Share of ``max_time_s`` for replica exchange when both parts run, strictly between 0 and
        1 (default 0.5; ``fe-correct --equilibrium-fraction``); switching gets the rest. Like the
        budget itself it may change on a rerun (:data:`EXTENDING_FIELDS`).
    timestep_fs, collision_rate_per_ps, temperature_k, pressure_atm
        Langevin time step (fs) and friction (1/ps), temperature (K), pressure of periodic
        systems (atm, Monte Carlo barostat; ``None``: NVT).
    n_switches
        Most nonequilibrium switches per direction (0 skips the switching part).
    switching_steps
        Steps of one switch (lambda changes by ``1/switching_steps`` per step).
    equilibration_steps
        Steps of end-state MD before the first switching start configuration is taken.
    steps_between_switches
        End-state MD steps between successive start configurations.
    n_bootstrap
        Bootstrap resamples for the BAR uncertainty.
    remove_constraints
        Remove the MM System's constraints between ligand atoms in the ML/MM System. ``False``
        (default): they stay at every lambda, so lambda 0 is exactly the MM System (whose bonds
        to hydrogen are usually constrained, as in the MM binding free energy being corrected)
        and ANI sees those bonds at their MM lengths. ``True`` needs an MM System that keeps bond
        terms for its constrained bonds (``flexibleConstraints=True``): without them the
        hydrogens of the lambda 0 state would be held by nothing.
    minimize, minimize_iterations
        Minimise the positions with the MM system (lambda 0) first; iteration limit (0: until
        converged).
    model, precision
        ANI model name/path and ``"single"``/``"double"``.
    platform
        OpenMM platform name, or ``None`` for OpenMM's fastest.
    seed
        Seed of every random number generator of the protocol.
    """

    lambdas: Optional[List[float]] = None
    schedule: str = "auto"
    n_states: int = 11
    length_per_window: float = 1.0
    max_states: int = 40
    pilot_lambdas: List[float] = dataclasses.field(default_factory=lambda: [0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.55, 0.75, 1.0])
    pilot_samples: int = 40
    pilot_steps_per_sample: int = 50
    pilot_equilibration_steps: int = 500
    n_iterations: int = 1000
    steps_per_iteration: int = 500
    check_interval: int = 10
    target_error_kcal_per_mol: Optional[float] = None
    max_time_s: Optional[float] = None
    equilibrium_time_fraction: float = 0.5
    timestep_fs: float = 1.0
    collision_rate_per_ps: float = 1.0
    temperature_k: float = 298.15
    pressure_atm: Optional[float] = None
    n_switches: int = 100
    switching_steps: int = 5000
    equilibration_steps: int = 5000
    steps_between_switches: int = 1000
    n_bootstrap: int = 200
    remove_constraints: bool = False
    minimize: bool = True
    minimize_iterations: int = 500
    model: str = "ani1ccx"
    precision: str = "single"
    platform: Optional[str] = None
    seed: int = 2024

    def __post_init__(self) -> None:
        for name, (target, description) in QUANTITY_FIELDS.items():
            value = getattr(self, name)
            if isinstance(value, unit.Quantity):
                if not value.unit.is_compatible(target):
                    raise ValueError(f"setting {name}: {description} {value} is not in units compatible with {target}")
                setattr(self, name, float(value.value_in_unit(target)))
            elif value is not None:
                setattr(self, name, float(value))

    # Quantity views of the unit-bearing settings.
    @property
    def timestep(self) -> unit.Quantity:
        return self.timestep_fs * unit.femtosecond

    @property
    def collision_rate(self) -> unit.Quantity:
        return self.collision_rate_per_ps / unit.picosecond

    @property
    def temperature(self) -> unit.Quantity:
        return self.temperature_k * unit.kelvin

    @property
    def pressure(self) -> Optional[unit.Quantity]:
        return None if self.pressure_atm is None else self.pressure_atm * unit.atmosphere

    def lambda_values(self) -> Optional[List[float]]:
        """The window values when they are fixed by the settings, validated; ``None`` for ``schedule="auto"``.

        Raises
        ------
        ValueError
            Fewer than two windows, values outside [0, 1], not increasing, not starting at 0
            or ending at 1.
        """
        if self.lambdas is None and self.schedule == "auto":
            return None
        values = list(self.lambdas) if self.lambdas is not None else list(np.linspace(0.0, 1.0, int(self.n_states)))
        check_lambdas(values)
        return [float(v) for v in values]

    def validate(self) -> None:
        """Check all values.

        Raises
        ------
        ValueError
            Naming the first bad setting.
        """
        if self.schedule not in ("auto", "equal"):
            raise ValueError(f"setting schedule must be 'auto' or 'equal', got {self.schedule!r}")
        self.lambda_values()
        positive = ["steps_per_iteration", "timestep_fs", "collision_rate_per_ps", "temperature_k", "check_interval",
                    "switching_steps", "length_per_window", "pilot_samples", "pilot_steps_per_sample"]
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"setting {name} must be positive, got {getattr(self, name)}")
        for name in ["n_iterations", "n_switches", "minimize_iterations", "equilibration_steps", "steps_between_switches",
                     "n_bootstrap", "pilot_equilibration_steps"]:
            if getattr(self, name) < 0:
                raise ValueError(f"setting {name} must not be negative, got {getattr(self, name)}")
        if self.n_iterations == 0 and self.n_switches == 0:
            raise ValueError("nothing to do: n_iterations and n_switches are both 0")
        for name in ("pressure_atm", "target_error_kcal_per_mol", "max_time_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"setting {name} must be positive, got {value}")
        if not 0.0 < self.equilibrium_time_fraction < 1.0:  # 1 would leave switching no time
            raise ValueError(f"setting equilibrium_time_fraction must be between 0 and 1 (exclusive), got {self.equilibrium_time_fraction}")
        if self.max_states < 2:
            raise ValueError(f"setting max_states must be at least 2, got {self.max_states}")
        if self.lambdas is None and self.schedule == "auto":
            check_lambdas(self.pilot_lambdas, "pilot_lambdas")
        if self.platform is not None:
            from ..openmm.platforms import get_platform

            get_platform(self.platform)  # an unavailable platform fails here, before a run writes any file

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (numbers in the units the names state)."""
        return dataclasses.asdict(self)

    def determining(self) -> Dict[str, Any]:
        """The settings a stored run depends on: all but :data:`EXTENDING_FIELDS` and ``platform``,
        with the windows as the values they give (``--n-states 3`` and ``--lambdas 0,0.5,1`` agree)."""
        data = {k: v for k, v in self.to_dict().items() if k not in EXTENDING_FIELDS and k != "platform"}
        for key in SCHEDULE_FIELDS:
            data.pop(key)
        fixed = self.lambda_values()
        if fixed is not None:
            data["windows"] = fixed
        else:
            data["windows"] = "pilot"
            data.update({k: getattr(self, k) for k in SCHEDULE_FIELDS[3:]})
        return data


#: How the windows are chosen (see :meth:`ProtocolSettings.determining`).
SCHEDULE_FIELDS = ("lambdas", "schedule", "n_states", "length_per_window", "max_states", "pilot_lambdas", "pilot_samples",
                   "pilot_steps_per_sample", "pilot_equilibration_steps")


def check_lambdas(values: List[float], name: str = "lambda windows") -> None:
    """Raise ``ValueError`` unless ``values`` increase strictly from 0 to 1 (at least two)."""
    values = [float(v) for v in values]
    if len(values) < 2:
        raise ValueError(f"at least two {name} are needed, got {values}")
    if values[0] != 0.0 or values[-1] != 1.0 or any(not 0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"{name} must run from 0 to 1 within [0, 1], got {values}")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"{name} must increase strictly, got {values}")

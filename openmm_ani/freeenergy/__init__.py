"""MM -> ML/MM free-energy corrections (see docs/free_energy.md)."""

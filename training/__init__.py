"""openmm-ani training: DFT pretraining, CCSD(T) transfer learning, export to OpenMM.

Installed as ``openmm_ani.training``; ``import openmm_ani`` never imports it. Import the
modules you need (``openmm_ani.training.trainer``, ``.transfer``, ``.ensemble``,
``.export``, ``.select``, ``.data`` ...); this package file imports nothing heavy
(no h5py, PySCF or matplotlib). See ``docs/training.md``.
"""

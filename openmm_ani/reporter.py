"""The ensemble-disagreement reporter: ``openmm_ani.reporter.EnsembleDisagreementReporter``.

Public name of :mod:`openmm_ani.openmm.reporter`.
"""

from .openmm.reporter import Disagreement, DisagreementEvaluator, EnsembleDisagreementReporter, EnsembleDisagreementWarning

__all__ = ["Disagreement", "DisagreementEvaluator", "EnsembleDisagreementReporter", "EnsembleDisagreementWarning"]

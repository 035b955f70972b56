"""Neural network building blocks: the S4D layer, the ECG and tabular encoders, projectors and heads.

Import from the submodules (`ecgkt.models.encoders`, ...) or from here; nothing in this package knows
about MIMIC or the dataset store.
"""

from ecgkt.models.config import EcgEncoderConfig, HeadConfig, ProjectorConfig, TabularEncoderConfig
from ecgkt.models.encoders import EcgEncoder, ResidualS4Block, TabularEncoder
from ecgkt.models.heads import LateFusionClassifier, MLPHead, Projector
from ecgkt.models.s4 import S4Layer, s4d_recurrence_reference
from ecgkt.models.s4d import S4DKernel, ssm_parameters

__all__ = [
    "EcgEncoder",
    "EcgEncoderConfig",
    "HeadConfig",
    "LateFusionClassifier",
    "MLPHead",
    "Projector",
    "ProjectorConfig",
    "ResidualS4Block",
    "S4DKernel",
    "S4Layer",
    "TabularEncoder",
    "TabularEncoderConfig",
    "s4d_recurrence_reference",
    "ssm_parameters",
]

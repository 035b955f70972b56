"""Joint-embedding objectives for stage 1: each is a module `loss(z_x, z_m) -> scalar`.

`build_objective(name, **kwargs)` is what configs use: the name picks the class and the keyword
arguments are its hyper-parameters (e.g. `lambda_offdiag` for Barlow Twins, `temperature` for
InfoNCE). Unknown names or arguments are a ValueError that lists what is accepted.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal, get_args

from torch import nn

from ecgkt.objectives.barlow_twins import BarlowTwinsLoss, cross_correlation
from ecgkt.objectives.infonce import InfoNCELoss
from ecgkt.objectives.vicreg import VICRegLoss, VICRegTerms

ObjectiveName = Literal["barlow_twins", "vicreg", "infonce"]

OBJECTIVES: dict[str, type[nn.Module]] = {
    "barlow_twins": BarlowTwinsLoss,
    "vicreg": VICRegLoss,
    "infonce": InfoNCELoss,
}
assert set(OBJECTIVES) == set(get_args(ObjectiveName))


def build_objective(name: ObjectiveName, **kwargs: Any) -> nn.Module:
    """Instantiate the objective `name` with hyper-parameters `kwargs`."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"objective {name!r} does not accept {unknown}; it accepts {accepted}")
    return cls(**kwargs)


__all__ = [
    "OBJECTIVES",
    "BarlowTwinsLoss",
    "InfoNCELoss",
    "ObjectiveName",
    "VICRegLoss",
    "VICRegTerms",
    "build_objective",
    "cross_correlation",
]

"""Training-data simulator (paper Sect. 2): clean sky scenes and contaminant injectors.

Importing this package registers every injector (see :mod:`maximask.simulate.base`):
CR, HCL, DCL, HP, DP, OV, SAT, P (this package's core modules) and TRL, FR,
NEB, SP (trails, fringes, nebulosity, spikes). Tracking errors (MaxiTrack) are
in :mod:`maximask.simulate.tracking`.
"""

from maximask.simulate import (  # noqa: F401  (imported to register the injectors)
    cosmic_rays,
    detector_defects,
    fringes,
    nebulosity,
    persistence,
    saturation,
    spikes,
    trails,
)
from maximask.simulate.base import Scene, get_injector, list_contaminants, register_contaminant

__all__ = ["Scene", "get_injector", "list_contaminants", "register_contaminant"]

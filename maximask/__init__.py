"""maximask: contaminant identification in astronomical images (MaxiMask and MaxiTrack).

Importing the package does nothing but define names; models load only when asked.
"""

from maximask.classes import CLASS_NAMES, CLASSES, N_CLASSES

__version__ = "0.1.0"

__all__ = ["CLASSES", "CLASS_NAMES", "N_CLASSES", "__version__"]

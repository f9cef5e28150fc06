"""The contract shared by the clean-sky generator and every contaminant injector.

A :class:`Scene` is one simulated exposure being built: the image in ADU,
the 14 truth planes (paper Table 4 order, see :mod:`maximask.classes`) and the
nuisance parameters that injectors need (background sigma, sky level, PSF...).

An injector is a function registered under a class name::

    @register_contaminant("CR")
    def inject_cosmic_rays(scene: Scene, *, rng: np.random.Generator, **options) -> None:
        ...  # modifies scene.image and scene.truth in place

Injectors never touch the ``BG`` plane: :meth:`Scene.finalize_truth` sets it
to "no other class" once every injector has run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from maximask.classes import N_CLASSES, class_index

__all__ = ["Scene", "Injector", "register_contaminant", "get_injector", "list_contaminants"]


@dataclass
class Scene:
    """One exposure under construction.

    Attributes
    ----------
    image : ndarray, shape (ny, nx), float64, ADU
        Current pixel values, sky included.
    truth : ndarray, shape (14, ny, nx), bool
        Per-class truth planes, class order of :data:`maximask.classes.CLASSES`.
    sky_level : float, ADU
        Median sky background m_U of the uncontaminated image.
    sigma : float, ADU
        Standard deviation sigma_U of the uncontaminated background noise.
    gain : float, e-/ADU
    read_noise : float, e-
    fwhm : float, pixels
        PSF full width at half maximum.
    psf : ndarray, shape (k, k), float64
        Normalised (sum 1) PSF image at pixel sampling, odd size, centred.
    saturation : float, ADU
        Full-well level of the detector in this exposure (image units).
    sources : ndarray, structured, fields ``x``, ``y``, ``flux`` (ADU), ``is_star``
        The astronomical sources drawn in the clean sky (pixel coordinates,
        0-based, x along columns).
    clean : ndarray, shape (ny, nx), float64, ADU, optional
        Copy of the image before contamination (kept for truth making).
    meta : dict
        Free-form record of what was drawn (for provenance and tests).
    source_image : ndarray, shape (ny, nx), float64, ADU, optional
        Noise-free image of the astronomical sources alone (no sky), as drawn
        by :func:`maximask.simulate.sky.make_clean_scene`.
    background : ndarray, shape (ny, nx), float64, ADU, optional
        Noise-free sky background (level + gradient) of the clean scene.
    """

    image: np.ndarray
    truth: np.ndarray
    sky_level: float
    sigma: float
    gain: float = 1.0
    read_noise: float = 5.0
    fwhm: float = 3.0
    psf: np.ndarray | None = None
    saturation: float = 60000.0
    sources: np.ndarray | None = None
    clean: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    source_image: np.ndarray | None = None
    background: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape  # type: ignore[return-value]

    def plane(self, name: str) -> np.ndarray:
        """Return the writable truth plane of class ``name``, shape (ny, nx), bool."""
        return self.truth[class_index(name)]

    def finalize_truth(self) -> None:
        """Set ``BG`` to the pixels that carry no other class (BG is exclusive)."""
        bg = class_index("BG")
        others = np.delete(np.arange(N_CLASSES), bg)
        self.truth[bg] = ~self.truth[others].any(axis=0)

    @classmethod
    def empty(cls, shape: tuple[int, int], *, sky_level: float, sigma: float, **kwargs) -> "Scene":
        """A scene of constant sky ``sky_level`` (no noise) and empty truth."""
        image = np.full(shape, float(sky_level), dtype=np.float64)
        truth = np.zeros((N_CLASSES, *shape), dtype=bool)
        return cls(image=image, truth=truth, sky_level=float(sky_level), sigma=float(sigma), **kwargs)


class Injector(Protocol):
    def __call__(self, scene: Scene, *, rng: np.random.Generator, **options) -> None: ...


_INJECTORS: dict[str, Injector] = {}


def register_contaminant(name: str) -> Callable[[Injector], Injector]:
    """Decorator registering an injector under class or effect ``name``."""

    def decorator(func: Injector) -> Injector:
        if name in _INJECTORS and _INJECTORS[name] is not func:
            msg = f"contaminant {name!r} is already registered"
            raise ValueError(msg)
        _INJECTORS[name] = func
        return func

    return decorator


def get_injector(name: str) -> Injector:
    """Return the injector registered under ``name``."""
    try:
        return _INJECTORS[name]
    except KeyError:
        msg = f"no contaminant injector named {name!r}; known: {', '.join(sorted(_INJECTORS))}"
        raise KeyError(msg) from None


def list_contaminants() -> list[str]:
    """Names of all registered injectors (import :mod:`maximask.simulate` first)."""
    return sorted(_INJECTORS)

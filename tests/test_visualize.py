"""The paper's colour code: one colour per class, black for several, HP/DP dilated."""

import numpy as np

from maximask.classes import CLASS_NAMES, N_CLASSES, class_index
from maximask.visualize import CLASS_COLOURS, class_map_rgb, display_image, save_panels


def test_every_class_has_a_distinct_colour():
    assert list(CLASS_COLOURS) == list(CLASS_NAMES)
    assert len(set(CLASS_COLOURS.values())) == N_CLASSES


def test_class_map_colours_multi_class_and_dilation(tmp_path):
    planes = np.zeros((N_CLASSES, 9, 9), bool)
    planes[class_index("BG")] = True
    planes[class_index("CR"), 1, 1] = True
    planes[class_index("SAT"), 1, 1] = True  # CR and SAT: black
    planes[class_index("TRL"), 7, :] = True
    planes[class_index("HP"), 4, 4] = True
    rgb = class_map_rgb(planes)
    assert rgb.shape == (9, 9, 3)
    assert np.allclose(rgb[1, 1], 0)
    assert np.allclose(rgb[7, 3], CLASS_COLOURS["TRL"])
    assert np.allclose(rgb[3:6, 3:6], CLASS_COLOURS["HP"])  # dilated to 3x3
    assert np.allclose(rgb[0, 8], CLASS_COLOURS["BG"])
    img = display_image(np.where(np.eye(9, dtype=bool), np.nan, np.arange(81.0).reshape(9, 9)))
    assert img.min() == 0 and img.max() == 1 and np.isfinite(img).all()
    out = save_panels(tmp_path / "p.png", [("image", img), ("classes", rgb)])
    assert out.read_bytes()[:4] == b"\x89PNG"

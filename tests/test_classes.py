"""The class table: names, order, bit codes and published default priors."""

import pytest

from maximask.classes import BIT_CODES, CLASS_NAMES, CLASSES, DEFAULT_PRIORS, N_CLASSES, class_index


def test_order_and_bit_codes_match_published_tool():
    assert CLASS_NAMES == ("CR", "HCL", "DCL", "HP", "DP", "P", "TRL", "FR", "NEB", "SAT", "SP", "OV", "BBG", "BG")
    assert N_CLASSES == 14
    for c in CLASSES:
        assert c.bit == (0 if c.name == "BG" else 1 << c.index)
    assert BIT_CODES["SAT"] == 512 and BIT_CODES["BBG"] == 4096
    # distinct single bits: any OR of codes decodes uniquely
    bits = [b for b in BIT_CODES.values() if b]
    assert sum(bits) == (1 << 13) - 1


def test_published_default_priors():
    assert DEFAULT_PRIORS["CR"] == 0.0005 and DEFAULT_PRIORS["HP"] == 1e-6 and DEFAULT_PRIORS["BG"] == 0.9
    assert all(0 < p < 1 for p in DEFAULT_PRIORS.values())


def test_class_index_lookup():
    assert class_index("cr") == 0 and class_index(" BG ") == 13
    with pytest.raises(KeyError, match="unknown class"):
        class_index("XX")

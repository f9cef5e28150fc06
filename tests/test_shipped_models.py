"""The default models shipped in the package load, are documented, and give their documented output."""

import numpy as np
import pytest
import torch

from maximask.classes import CLASS_NAMES
from maximask.modelfile import default_model_path, load_model
from maximask.reference_output import reference_output


@pytest.mark.parametrize("kind", ["maximask", "maxitrack"])
def test_shipped_model_loads_with_a_complete_card(kind):
    path = default_model_path(kind)
    assert path.with_suffix(".safetensors").stat().st_size < 25e6
    model, card = load_model(path, kind=kind)
    names = list(CLASS_NAMES) if kind == "maximask" else ["TR"]
    assert card["classes"] == names
    assert set(card["training_priors"]) == set(card["thresholds"]) == set(names)
    assert all(0 < card["training_priors"][n] < 1 for n in names)
    training = card["training"]
    assert training["steps"] > 0 and training["wall_s"] > 0 and training["n_train_images"] > 0
    assert training["calibration_set"] == "heldout" and training["heldout_metrics"]
    assert "reference_output" in card


@pytest.mark.parametrize("kind", ["maximask", "maxitrack"])
def test_shipped_model_reproduces_its_reference_output(kind):
    torch.set_num_threads(1)
    model, card = load_model(default_model_path(kind), kind=kind)
    ref = card["reference_output"]
    got = reference_output(model, kind=kind, n=ref["n"], size=ref["size"], seed=ref["seed"])
    for name, value in ref["mean_probability"].items():
        assert got["mean_probability"][name] == pytest.approx(value, abs=2e-3), name
    for name, value in ref["auc"].items():
        if value is not None:
            assert got["auc"][name] == pytest.approx(value, abs=5e-3), name


def test_shipped_maximask_separates_contaminants_on_fresh_simulated_images():
    """Quality floor on images the model never saw (seed differs from every training set)."""
    torch.set_num_threads(1)
    model, _ = load_model(default_model_path("maximask"), kind="maximask")
    got = reference_output(model, kind="maximask", n=4, seed=777)
    aucs = {k: v for k, v in got["auc"].items() if v is not None}
    assert len(aucs) >= 8
    assert np.mean(list(aucs.values())) > 0.85

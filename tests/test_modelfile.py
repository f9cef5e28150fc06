"""Model files: round trip, and one-line refusals of mismatched or corrupt files."""

import json

import pytest
import torch

from maximask.modelfile import ModelFileError, load_model, read_card, save_model
from maximask.nets import create_model


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(1)
    model = create_model("maximask", width=0.125)
    card_path = save_model(tmp_path / "maximask", model, {"tile": 256, "training_priors": {"CR": 0.01}})
    return model, card_path


def test_round_trip_gives_identical_outputs(saved, tmp_path):
    model, card_path = saved
    loaded, card = load_model(tmp_path, kind="maximask")
    assert card["arch"] == "maximask" and card["arch_args"]["width"] == 0.125
    assert card["tile"] == 256 and "software_version" in card
    x = torch.randn(1, 1, 24, 24)
    with torch.inference_mode():
        assert torch.equal(model.eval()(x), loaded(x))
    # the weights file and the card name resolve to the same model
    for p in (card_path, card_path.with_suffix(".safetensors")):
        assert load_model(p)[1]["weights_sha256"] == card["weights_sha256"]


def test_wrong_kind_refused(saved, tmp_path):
    with pytest.raises(ModelFileError, match="maxitrack model is needed"):
        load_model(saved[1], kind="maxitrack")


def test_corrupt_weights_refused(saved):
    weights = saved[1].with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(saved[1])


def test_mismatched_architecture_refused(saved):
    card = json.loads(saved[1].read_text())
    card["arch_args"]["width"] = 0.25
    saved[1].write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(saved[1])


def test_bad_cards_refused(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="unreadable model card"):
        read_card(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"arch": "maximask"}))
    with pytest.raises(ModelFileError, match="lacks"):
        read_card(tmp_path / "y.json")
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFileError, match="no maximask.json"):
        load_model(empty)


def test_model_files_are_world_readable(saved):
    _, card_path = saved
    for path in (card_path, card_path.with_suffix(".safetensors")):
        assert path.stat().st_mode & 0o044 == 0o044, path

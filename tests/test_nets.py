"""Every registered network: forward and backward on CPU, shapes, NaN, gradients, odd sizes."""

import pytest
import torch

from maximask.classes import N_CLASSES
from maximask.nets import MaxiMaskNet, MaxiTrackNet, create_model, list_models


def _small_input(name, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    if name == "maxitrack":
        return torch.randn(batch, 1, 400, 400, generator=g)
    return torch.randn(batch, 1, 37, 45, generator=g)


def test_registry_lists_both_networks():
    assert {"maximask", "maxitrack"} <= set(list_models())
    with pytest.raises(KeyError, match="unknown architecture"):
        create_model("nope")


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("width", [0.125, 1.0])
def test_forward_backward_every_parameter_gets_gradient(name, width):
    torch.manual_seed(0)
    model = create_model(name, width=width)
    x = _small_input(name, batch=2 if name == "maximask" else 3)
    if name == "maximask":
        logits, pre = model(x, return_pre=True)
        assert logits.shape == (2, N_CLASSES, 37, 45)
        assert len(pre) == 5 and all(p.shape == logits.shape for p in pre)
        loss = logits.sum() + sum(p.sum() for p in pre)
    else:
        logits = model(x)
        assert logits.shape == (3, 2)
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 1]))
    assert torch.isfinite(logits).all()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (13, 13), (33, 100), (65, 31)])
def test_maximask_any_input_size(shape):
    model = create_model("maximask", width=0.125).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 1, *shape))
    assert out.shape == (1, N_CLASSES, *shape)
    assert torch.isfinite(out).all()


def test_maximask_paper_channel_counts_at_width_one():
    model = MaxiMaskNet(width=1.0)
    assert model.channels == (32, 64, 128, 256, 256, 256)
    # 5 pre-predictions of 14 maps concatenated into 70, then a 3x3 conv to 14 (Table 5)
    assert model.head.in_channels == 70 and model.head.out_channels == 14
    assert all(m.kernel_size == (3, 3) for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_maximask_400_input_reaches_13x13_level():
    model = create_model("maximask", width=0.125).eval()
    sizes = []
    hook = model.encoder[5].register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:])))
    with torch.inference_mode():
        model(torch.zeros(1, 1, 400, 400))
    hook.remove()
    assert sizes == [(13, 13)]


def test_maxitrack_table6_shapes():
    model = MaxiTrackNet()
    assert model.n_features == 21632  # 13 x 13 x 128 (Table 6)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128, 128]
    assert all(c.kernel_size == (9, 9) for c in convs)
    fcs = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [f.out_features for f in fcs] == [64, 64, 2]
    with pytest.raises(ValueError, match="expected input"):
        model(torch.zeros(1, 1, 200, 200))


def test_invalid_width_rejected():
    with pytest.raises(ValueError, match="width"):
        MaxiMaskNet(width=0)


def test_maximask_inference_head_equals_concatenated_head():
    import torch

    from maximask.nets import create_model

    torch.manual_seed(1)
    model = create_model("maximask", width=0.125).eval()
    x = torch.randn(2, 1, 37, 50)
    with torch.no_grad():
        with_pre, _ = model(x, return_pre=True)
        fast = model(x)
    assert fast.shape == (2, 14, 37, 50)
    assert torch.allclose(with_pre, fast, atol=1e-5)


def test_maxitrack_initial_logits_depend_on_the_image():
    """Regression: with PyTorch's default initialisation the logits started identical (training stalled)."""
    import torch

    from maximask.nets import create_model

    torch.manual_seed(0)
    model = create_model("maxitrack", width=0.5, input_size=64)
    x = torch.randn(8, 1, 64, 64) * 2
    with torch.no_grad():
        feats = model.classifier[:-1](model.features(x))
    assert feats.std(dim=0).mean() > 0.05


def test_maxitrack_batch_norm_variant_trains_and_round_trips(tmp_path):
    from maximask.modelfile import load_model, save_model

    torch.manual_seed(0)
    model = create_model("maxitrack", width=0.25, input_size=64, batch_norm=True)
    assert model.arch_args["batch_norm"] is True
    x = torch.randn(4, 1, 64, 64)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    save_model(tmp_path / "mt", model, {"kind": "maxitrack"})
    loaded, card = load_model(tmp_path / "mt.json", kind="maxitrack")
    model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))
    assert card["arch_args"]["batch_norm"] is True
    # the paper's variant keeps its arch_args (and so its model files) unchanged
    assert "batch_norm" not in create_model("maxitrack", width=0.25, input_size=64).arch_args


def test_maxitrack_global_pool_variant_averages_the_last_maps():
    torch.manual_seed(0)
    model = create_model("maxitrack", width=0.25, input_size=64, batch_norm=True, global_pool=True)
    assert model.arch_args["global_pool"] is True and model.n_features == 32  # 128 maps x 0.25, 1x1
    x = torch.randn(3, 1, 64, 64)
    logits = model(x)
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 1])).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_maximask_batch_norm_variant_trains_and_folds_exactly():
    from maximask.nets.maximask_net import fold_batch_norm

    torch.manual_seed(0)
    model = MaxiMaskNet(width=0.125, batch_norm=True)
    assert model.arch_args["batch_norm"] is True
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert n_bn == n_conv - 6  # every convolution but the 5 logit layers and the head
    x = torch.randn(2, 1, 37, 45)
    logits, pre = model(x, return_pre=True)
    (logits.sum() + sum(p.sum() for p in pre)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    _randomize_batch_norm(model)  # non-trivial running statistics and affine parameters
    model.eval()
    plain = fold_batch_norm(model)
    assert plain.arch_args == {"n_classes": N_CLASSES, "width": 0.125}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    with torch.no_grad():
        expected = model(x, return_pre=True)[0]
        torch.testing.assert_close(plain(x), expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(plain.forward_inference(x), expected, rtol=1e-4, atol=1e-4)


def test_fold_batch_norm_of_a_plain_model_is_a_copy():
    from maximask.nets.maximask_net import fold_batch_norm

    torch.manual_seed(1)
    model = MaxiMaskNet(width=0.125).eval()
    copy = fold_batch_norm(model)
    for a, b in zip(model.state_dict().values(), copy.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("n_classes", [14, 16, 3])
def test_padded_logit_channels_change_nothing(monkeypatch, n_classes):
    """forward_inference computes its full-resolution logit maps with channel counts rounded up to
    LOGIT_CHANNEL_MULTIPLE (zero weights): the logits equal the unpadded computation and forward()."""
    import maximask.nets.maximask_net as mm

    torch.manual_seed(3)
    net = MaxiMaskNet(n_classes=n_classes, width=0.125).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)  # non-zero biases, so a padded channel leaking into the sum would show
    x = torch.randn(2, 1, 45, 70)
    with torch.no_grad():
        reference = net(x, return_pre=True)[0]
        padded = net.forward_inference(x)
        padded_cl = net.to(memory_format=torch.channels_last).forward_inference(
            x.contiguous(memory_format=torch.channels_last))
        monkeypatch.setattr(mm, "LOGIT_CHANNEL_MULTIPLE", 1)
        unpadded = net.forward_inference(x.contiguous(memory_format=torch.channels_last))
    assert padded.shape == reference.shape == (2, n_classes, 45, 70)
    assert reference.abs().max() > 0.1
    torch.testing.assert_close(padded, reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(padded_cl, unpadded, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(padded_cl, reference, rtol=1e-4, atol=1e-5)


def test_maxitrack_batch_norm_folding_keeps_the_logits():
    """fold_batch_norm_for_inference merges each eval-mode batch normalisation into its convolution:
    same logits, no BatchNorm2d left, the original model untouched."""
    from maximask.nets.maxitrack_net import fold_batch_norm_for_inference

    torch.manual_seed(4)
    model = MaxiTrackNet(width=0.25, input_size=64, hidden=8, batch_norm=True, global_pool=True)
    _randomize_batch_norm(model)
    model.eval()
    x = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batch_norm_for_inference(model)
        got = folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    plain = MaxiTrackNet(width=0.25, input_size=64, hidden=8).eval()
    with torch.no_grad():
        torch.testing.assert_close(fold_batch_norm_for_inference(plain)(x), plain(x))


def _randomize_batch_norm(model: torch.nn.Module) -> None:
    """Non-trivial running statistics and affine parameters for every BatchNorm2d of ``model`` (torch's RNG)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()

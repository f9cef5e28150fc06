"""Tests of the histogram confusion counts against brute force and the paper's Eqs. 18-22."""

import numpy as np
import pytest

from maximask.evaluate.metrics import (
    ConfusionAccumulator,
    accuracy,
    bin_edges,
    exact_auc,
    false_positive_rate,
    matthews_corrcoef,
    purity,
    roc_curve_exact,
    true_positive_rate,
)


def _pairwise_auc(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def test_paper_example_purity_and_mcc():
    # Sect. 4.1.1: 1000 positives, 159000 negatives, TPR 99 %, FPR 1 % -> purity 38 %, MCC 61 %
    tp, fn, tn, fp = 990, 10, 157410, 1590
    assert true_positive_rate(tp, fn) == pytest.approx(0.99)
    assert false_positive_rate(fp, tn) == pytest.approx(0.01)
    assert accuracy(tp, fp, tn, fn) == pytest.approx(0.99, abs=1e-3)
    assert purity(tp, fp) == pytest.approx(0.38, abs=0.005)
    assert matthews_corrcoef(tp, fp, tn, fn) == pytest.approx(0.61, abs=0.005)


def test_exact_auc_matches_pairwise_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, 300) / 20.0
    labels = rng.random(300) < 0.3
    scores[labels] += 0.1
    assert exact_auc(scores, labels) == pytest.approx(_pairwise_auc(scores, labels), abs=1e-12)
    assert np.isnan(exact_auc(scores, np.zeros(300, bool)))


def test_histogram_auc_equals_exact_auc_on_bin_centres():
    rng = np.random.default_rng(1)
    n_bins = 1000
    probs = (rng.integers(0, n_bins, (2, 5000)) + 0.5) / n_bins
    truth = rng.random((2, 5000)) < np.stack([probs[0], 1 - probs[1]])  # informative, then anti-informative
    acc = ConfusionAccumulator(2, n_bins)
    acc.update(probs, truth, class_axis=0)
    auc = acc.result().auc()
    for c in range(2):
        assert auc[c] == pytest.approx(exact_auc(probs[c], truth[c]), abs=1e-12)
    assert auc[0] > 0.6 and auc[1] < 0.4


def test_histogram_auc_close_to_exact_on_continuous_probabilities():
    rng = np.random.default_rng(2)
    truth = rng.random((3, 14, 20, 20)) < 0.1
    probs = np.clip(rng.normal(0.4 + 0.2 * truth, 0.15), 0, 1)
    acc = ConfusionAccumulator(14, 10_000)
    acc.update(probs[:2], truth[:2])
    acc.update(probs[2:], truth[2:])  # several batches accumulate
    auc = acc.result().auc()
    for c in (0, 7, 13):
        assert auc[c] == pytest.approx(exact_auc(probs[:, c], truth[:, c]), abs=1e-3)


def test_counts_and_rates_at_a_threshold_match_brute_force():
    rng = np.random.default_rng(3)
    truth = rng.random((4, 3, 16, 16)) < 0.2
    probs = np.clip(0.5 * truth + rng.random(truth.shape) * 0.6, 0, 1)
    acc = ConfusionAccumulator(3, 100)
    acc.update(probs, truth)
    curves = acc.result()
    k = 37  # threshold 0.37: decision p >= 0.37
    t = curves.thresholds[k]
    assert t == pytest.approx(0.37)
    for c in range(3):
        pred = probs[:, c] >= t
        y = truth[:, c]
        tp, fp = np.sum(pred & y), np.sum(pred & ~y)
        tn, fn = np.sum(~pred & ~y), np.sum(~pred & y)
        assert (curves.tp[c, k], curves.fp[c, k], curves.tn[c, k], curves.fn[c, k]) == (tp, fp, tn, fn)
        mcc = (tp * tn - fp * fn) / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
        assert curves.mcc()[c, k] == pytest.approx(mcc)
        assert curves.purity()[c, k] == pytest.approx(tp / (tp + fp))
        assert curves.accuracy()[c, k] == pytest.approx((tp + tn) / y.size)


def test_best_mcc_threshold_and_tpr_at_fpr():
    # separable classes: positives at 0.8, negatives at 0.2 -> MCC 1 for thresholds in (0.2, 0.8]
    probs = np.r_[np.full(10, 0.8), np.full(90, 0.2)]
    truth = np.r_[np.ones(10, bool), np.zeros(90, bool)]
    acc = ConfusionAccumulator(1, 100)
    acc.update(probs, truth)
    curves = acc.result()
    mcc, thr = curves.best_mcc()
    assert mcc[0] == pytest.approx(1.0)
    assert 0.2 < thr[0] <= 0.8
    assert curves.tpr_at_fpr(1e-3)[0] == pytest.approx(1.0)
    assert curves.auc()[0] == pytest.approx(1.0)


def test_log_bins_resolve_tiny_probabilities():
    probs = np.r_[np.full(50, 3e-6), np.full(50, 3e-5)]
    truth = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    linear = ConfusionAccumulator(1, 10_000)
    linear.update(probs, truth)
    assert linear.result().auc()[0] == pytest.approx(0.5)  # both in the first linear bin
    for scale in ("log", "logit"):
        acc = ConfusionAccumulator(1, 2000, scale=scale, min_prob=1e-8)
        acc.update(probs, truth)
        assert acc.result().auc()[0] == pytest.approx(1.0)


def test_bin_edges_are_increasing_from_zero():
    for scale in ("linear", "log", "logit"):
        e = bin_edges(500, scale=scale, min_prob=1e-6)
        assert e[0] == 0 and np.all(np.diff(e) > 0) and e[-1] < 1
    with pytest.raises(ValueError, match="scale"):
        bin_edges(10, scale="sqrt")


def test_exact_roc_curve_area_equals_rank_auc():
    rng = np.random.default_rng(4)
    labels = rng.random(200) < 0.4
    scores = rng.random(200) + 0.3 * labels
    fpr, tpr, thr = roc_curve_exact(scores, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz
    assert trapezoid(tpr, fpr) == pytest.approx(exact_auc(scores, labels), abs=1e-12)


def test_shape_mismatch_is_refused():
    acc = ConfusionAccumulator(2, 10)
    with pytest.raises(ValueError, match="differ in shape"):
        acc.update(np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 3, 4)))
    with pytest.raises(ValueError, match="expected 2 classes"):
        acc.update(np.zeros((1, 3, 3, 3)), np.zeros((1, 3, 3, 3)))

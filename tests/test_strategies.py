"""Mathematical properties and reference values of the registered strategies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import goal_plugin as gp
from goal_plugin.strategies.magnitude import AdaptiveLeveraging
from tests import _reference as ref

ALL = gp.list_strategies()
WITH_DIRECTION = [n for n in ALL if gp.create_strategy(n).direction is not None]
WITHOUT_DIRECTION = [n for n in ALL if gp.create_strategy(n).direction is None]


def make_inputs(num_modalities=2, batch=6, dim=5, classes=4, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    grads = [torch.randn(batch, dim, generator=generator, dtype=dtype) for _ in range(num_modalities)]
    logits = [
        2 * torch.randn(batch, classes, generator=generator, dtype=dtype) for _ in range(num_modalities)
    ]
    labels = torch.randint(0, classes, (batch,), generator=generator)
    return grads, logits, labels


def as_lists(tensors):
    return [t.tolist() for t in tensors]


def assert_close_lists(actual, expected, tol=1e-6):
    for a, e in zip(actual, expected):
        assert torch.allclose(a, torch.tensor(e, dtype=a.dtype), atol=tol, rtol=0), (a, e)


# ----------------------------------------------------------- reference values
@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("temperature", [0.2, 0.6, 1.0, 3.0])
@pytest.mark.parametrize("space", ["sample", "batch"])
@pytest.mark.parametrize("seed", [0, 1])
def test_goal_equals_literal_algorithm(num_modalities, temperature, space, seed):
    grads, logits, labels = make_inputs(num_modalities, seed=seed)
    strategy = gp.create_strategy("goal", temperature=temperature, space=space)
    actual = strategy.modify(grads, logits, labels)
    expected = ref.goal(as_lists(grads), as_lists(logits), temperature, space)
    assert_close_lists(actual, expected)
    weights = ref.adaptive_leveraging(as_lists(logits), temperature)
    assert strategy.last_stats["weights"] == pytest.approx(weights, abs=1e-12)


@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("temperature", [0.2, 1.0])
def test_al_is_the_magnitude_half(num_modalities, temperature):
    grads, logits, _ = make_inputs(num_modalities, seed=3)
    actual = gp.create_strategy("al", temperature=temperature).modify(grads, logits)
    weights = ref.adaptive_leveraging(as_lists(logits), temperature)
    assert_close_lists(actual, ref.scale(as_lists(grads), weights))
    assert sum(weights) == pytest.approx(1.0)


@pytest.mark.parametrize("num_modalities", [2, 3, 4])
@pytest.mark.parametrize("space", ["sample", "batch"])
def test_go_is_the_direction_half(num_modalities, space):
    grads, logits, _ = make_inputs(num_modalities, seed=4)
    actual = gp.create_strategy("go", space=space).modify(grads, logits)
    assert_close_lists(actual, ref.apply_direction(as_lists(grads), space))


def test_none_is_identity():
    grads, logits, labels = make_inputs(3)
    out = gp.create_strategy("none").modify(grads, logits, labels)
    for o, g in zip(out, grads):
        assert torch.equal(o, g)


@pytest.mark.parametrize("alpha", [0.1, 0.8, 3.0])
@pytest.mark.parametrize("seed", range(4))
def test_ogm_two_modalities_matches_official_code(alpha, seed):
    grads, logits, labels = make_inputs(2, seed=seed)
    strategy = gp.create_strategy("ogm", alpha=alpha)
    out = strategy.modify(grads, logits, labels)
    coeffs = ref.ogm_two_modalities(*as_lists(logits), labels.tolist(), alpha)
    assert strategy.last_stats["weights"] == pytest.approx(coeffs, abs=1e-12)
    assert_close_lists(out, ref.scale(as_lists(grads), coeffs))
    assert min(coeffs) < 1 and max(coeffs) == 1  # exactly one modality is damped


def test_ogm_tie_damps_modality_zero_like_the_official_else_branch():
    grads, logits, labels = make_inputs(2)
    strategy = gp.create_strategy("ogm", alpha=0.5)
    strategy.modify(grads, [logits[0], logits[0].clone()], labels)
    assert strategy.last_stats["weights"] == pytest.approx([1 - math.tanh(0.5), 1.0])


@pytest.mark.parametrize("num_modalities", [3, 4])
def test_ogm_many_modalities_matches_balancemm_rule(num_modalities):
    grads, logits, labels = make_inputs(num_modalities, seed=7)
    strategy = gp.create_strategy("ogm", alpha=0.8)
    strategy.modify(grads, logits, labels)
    expected = ref.ogm_many_modalities(as_lists(logits), labels.tolist(), 0.8)
    assert strategy.last_stats["weights"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 4.0, 8.0])
@pytest.mark.parametrize("seed", range(3))
def test_arl_two_modalities_matches_released_code(temperature, seed):
    grads, logits, _ = make_inputs(2, seed=seed)
    strategy = gp.create_strategy("arl", arl_temperature=temperature)
    out = strategy.modify(grads, logits)
    expected = ref.arl_two_modalities(*as_lists(logits), temperature)
    assert strategy.last_stats["weights"] == pytest.approx(expected, abs=1e-9)
    assert_close_lists(out, ref.scale(as_lists(grads), expected))


def test_arl_many_modalities_generalisation():
    grads, logits, _ = make_inputs(3, seed=5)
    strategy = gp.create_strategy("arl", arl_temperature=4.0)
    strategy.modify(grads, logits)
    expected = ref.arl_many_modalities(as_lists(logits), 4.0)
    assert strategy.last_stats["weights"] == pytest.approx(expected, abs=1e-12)
    assert sum(expected) == pytest.approx(4.0)  # M + sum of softmax weights


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_arl_regression_version_reads_the_gaussian_heads_variance_and_mean(temperature):
    """ARL's two-modality rule (as ref.arl_two_modalities) with the entropy replaced by the
    batch-mean predicted variance and d by the batch mean of |mu|, computed by hand."""
    grads, _, _ = make_inputs(2, seed=3)
    torch.manual_seed(3)
    heads = [torch.randn(len(grads[0]), 2, dtype=torch.float64) for _ in range(2)]
    strategy = gp.create_strategy("arl", arl_temperature=temperature, uncertainty="variance")
    assert strategy.reads == "gaussian"
    strategy.modify(grads, heads)
    variance = [float(h[:, 1].exp().mean()) for h in heads]
    magnitude = [float(h[:, 0].abs().mean()) for h in heads]
    shares = [max(v / sum(variance), 0.3) for v in variance]
    certainty = [(1 / s) / sum(1 / t for t in shares) for s in shares]
    d = [m / sum(magnitude) for m in magnitude]
    scores = np.array([d[1] * certainty[0], d[0] * certainty[1]]) * temperature
    expected = 1 + np.exp(scores) / np.exp(scores).sum()
    assert strategy.last_stats["weights"] == pytest.approx(list(expected), abs=1e-9)
    with pytest.raises(ValueError, match="uncertainty"):
        gp.create_strategy("arl", uncertainty="spread")


@pytest.mark.parametrize(
    "name, magnitude_reference",
    [
        ("ogm_go", lambda logits, labels: ref.ogm_two_modalities(*logits, labels, 0.1)),
        ("arl_go", lambda logits, labels: ref.arl_two_modalities(*logits, 8.0)),
    ],
)
@pytest.mark.parametrize("space", ["sample", "batch"])
def test_go_after_ogm_and_arl(name, magnitude_reference, space):
    grads, logits, labels = make_inputs(2, seed=9)
    out = gp.create_strategy(name, space=space).modify(grads, logits, labels)
    weights = magnitude_reference(as_lists(logits), labels.tolist())
    expected = ref.apply_direction(ref.scale(as_lists(grads), weights), space)
    assert_close_lists(out, expected)


# ------------------------------------------------------------- GO properties
@pytest.mark.parametrize("name", WITH_DIRECTION)
def test_two_modalities_conflicting_pairs_become_orthogonal(name):
    grads, logits, labels = make_inputs(2, batch=64, dim=3, seed=11)
    strategy = gp.create_strategy(name)
    out = strategy.modify(grads, logits, labels)
    weights = torch.tensor(strategy.last_stats["weights"], dtype=torch.float64)
    scaled = [w * g for w, g in zip(weights, grads)]
    dots = (scaled[0] * scaled[1]).sum(-1)
    conflicting, agreeing = dots < 0, dots >= 0
    assert conflicting.any() and agreeing.any()
    # Appendix A.9: <final_1, g'_2> = 0 and <final_2, g'_1> = 0 for conflicting pairs.
    assert torch.allclose((out[0] * scaled[1]).sum(-1)[conflicting], torch.zeros(1, dtype=torch.float64), atol=1e-7)
    assert torch.allclose((out[1] * scaled[0]).sum(-1)[conflicting], torch.zeros(1, dtype=torch.float64), atol=1e-7)
    for o, s in zip(out, scaled):
        assert torch.equal(o[agreeing], s[agreeing])
    assert strategy.last_stats["conflict_fraction"] == pytest.approx(conflicting.double().mean().item())


def test_batch_space_orthogonalises_the_flattened_batch():
    grads, logits, _ = make_inputs(2, batch=8, dim=3, seed=2)
    grads[1] = -grads[0] + 0.1 * grads[1]  # force a conflict over the whole batch
    out = gp.create_strategy("go", space="batch").modify(grads, logits)
    assert (out[0] * grads[1]).sum().abs() < 1e-7
    assert (out[1] * grads[0]).sum().abs() < 1e-7


def test_go_leaves_agreeing_gradients_untouched():
    grads, logits, _ = make_inputs(3, seed=1)
    grads = [g.abs() for g in grads]  # all inner products positive
    strategy = gp.create_strategy("go")
    out = strategy.modify(grads, logits)
    for o, g in zip(out, grads):
        assert torch.equal(o, g)
    assert strategy.last_stats["conflict_fraction"] == 0.0
    assert strategy.last_stats["cosine_before"] == pytest.approx(strategy.last_stats["cosine_after"])


@settings(max_examples=60, deadline=None)
@given(
    num_modalities=st.integers(2, 4),
    batch=st.integers(1, 5),
    dim=st.integers(1, 4),
    temperature=st.floats(0.05, 20.0),
    seed=st.integers(0, 10_000),
)
def test_goal_property_matches_reference(num_modalities, batch, dim, temperature, seed):
    grads, logits, _ = make_inputs(num_modalities, batch=batch, dim=dim, seed=seed)
    out = gp.create_strategy("goal", temperature=temperature).modify(grads, logits)
    assert_close_lists(out, ref.goal(as_lists(grads), as_lists(logits), temperature, "sample"))


@settings(max_examples=40, deadline=None)
@given(num_modalities=st.integers(2, 5), temperature=st.floats(0.01, 100.0), seed=st.integers(0, 10_000))
def test_al_weights_are_a_distribution(num_modalities, temperature, seed):
    _, logits, _ = make_inputs(num_modalities, seed=seed)
    weights = gp.create_strategy("al", temperature=temperature).magnitude.weights(logits, None)
    assert torch.all(weights > 0)
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_al_prefers_the_more_confident_modality():
    confident = torch.tensor([[8.0, 0.0, 0.0]]).repeat(4, 1)
    uncertain = torch.zeros(4, 3)
    weights = gp.create_strategy("al").magnitude.weights([confident, uncertain], None)
    assert weights[0] > weights[1]
    low_t = gp.create_strategy("al", temperature=0.2).magnitude.weights([confident, uncertain], None)
    assert low_t[0] > weights[0]  # a lower temperature sharpens the preference


# -------------------------------------------------- contract over the registry
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_contract_shapes_dtypes_and_no_mutation(name, num_modalities, dtype):
    grads, logits, labels = make_inputs(num_modalities, dtype=dtype)
    originals = [t.clone() for t in (*grads, *logits, labels)]
    out = gp.create_strategy(name).modify(grads, logits, labels)
    assert isinstance(out, list) and len(out) == num_modalities
    for o, g in zip(out, grads):
        assert o.shape == g.shape and o.dtype == g.dtype and o.device == g.device
        assert torch.isfinite(o).all()
        assert o.data_ptr() != g.data_ptr()
    for before, after in zip(originals, (*grads, *logits, labels)):
        assert torch.equal(before, after)


@pytest.mark.parametrize("name", ALL)
def test_contract_higher_rank_features(name):
    grads, logits, labels = make_inputs(2)
    grads = [g.reshape(6, 5, 1) for g in grads]
    out = gp.create_strategy(name).modify(grads, logits, labels)
    assert all(o.shape == (6, 5, 1) for o in out)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("zeroed", ["all", "one"])
def test_zero_gradients_stay_finite(name, zeroed):
    grads, logits, labels = make_inputs(2)
    grads = [torch.zeros_like(g) for g in grads] if zeroed == "all" else [torch.zeros_like(grads[0]), grads[1]]
    strategy = gp.create_strategy(name)
    out = strategy.modify(grads, logits, labels)
    assert all(torch.isfinite(o).all() for o in out)
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    stats = strategy.last_stats
    assert all(math.isfinite(v) for v in [*stats["weights"], stats["cosine_before"], stats["cosine_after"]])


@pytest.mark.parametrize("name", ALL)
def test_extreme_logits_stay_finite(name):
    grads, _, labels = make_inputs(2)
    logits = [torch.full((6, 4), -1e4, dtype=torch.float64), torch.zeros(6, 4, dtype=torch.float64)]
    logits[0][:, 0] = 1e4
    out = gp.create_strategy(name).modify(grads, logits, labels)
    assert all(torch.isfinite(o).all() for o in out)


@pytest.mark.parametrize("name", ALL)
def test_bad_inputs_raise_clear_errors(name):
    strategy = gp.create_strategy(name)
    grads, logits, labels = make_inputs(2)
    with pytest.raises(ValueError, match="at least 2 modalities"):
        strategy.modify(grads[:1], logits[:1], labels)
    with pytest.raises(ValueError, match="batch size"):
        strategy.modify(grads, [logits[0], logits[1][:3]], labels)
    with pytest.raises(ValueError, match="batch size"):
        strategy.modify([grads[0], grads[1][:4]], logits, labels)
    with pytest.raises(ValueError, match="logits tensors"):
        strategy.modify(grads, logits[:1], labels)
    if strategy.requires_labels:
        with pytest.raises(ValueError, match="labels"):
            strategy.modify(grads, logits, labels[:2])
    else:  # targets it does not read (regression, multi-label) are not checked against classes
        strategy.modify(grads, logits, torch.randn(6, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="classes"):
        strategy.modify(grads, [logits[0], logits[1][:, :3]], labels)


@pytest.mark.parametrize("name", WITH_DIRECTION)
def test_direction_step_refuses_mismatched_feature_sizes(name):
    grads, logits, labels = make_inputs(2)
    with pytest.raises(ValueError, match="projection layer"):
        gp.create_strategy(name).modify([grads[0], grads[1][:, :3]], logits, labels)


@pytest.mark.parametrize("name", WITHOUT_DIRECTION)
def test_magnitude_only_strategies_accept_mismatched_sizes(name):
    grads, logits, labels = make_inputs(2)
    strategy = gp.create_strategy(name)
    out = strategy.modify([grads[0], grads[1][:, :3]], logits, labels)
    assert out[1].shape == (6, 3)
    assert strategy.last_stats["cosine_before"] is None


@pytest.mark.parametrize("name", [n for n in ALL if gp.create_strategy(n).requires_labels])
def test_missing_labels_are_reported(name):
    grads, logits, _ = make_inputs(2)
    with pytest.raises(ValueError, match="needs the labels"):
        gp.create_strategy(name).modify(grads, logits)


@pytest.mark.parametrize("name", [n for n in ALL if gp.create_strategy(n).requires_logits])
def test_missing_logits_are_reported(name):
    grads, _, labels = make_inputs(2)
    with pytest.raises(ValueError, match="logits"):
        gp.create_strategy(name).modify(grads, None, labels)


def test_float_labels_are_refused():
    grads, logits, labels = make_inputs(2)
    with pytest.raises(ValueError, match="integer class indices"):
        gp.create_strategy("ogm").modify(grads, logits, labels.double())


def test_last_stats_empty_before_first_call():
    assert gp.create_strategy("goal").last_stats == {}


def gaussian_heads(num_modalities=3, batch=5, seed=0):
    """Unimodal regression heads' outputs (mean, log-variance) per modality."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 2, generator=generator, dtype=torch.float64) for _ in range(num_modalities)]


def test_al_for_regression_at_temperature_one_is_inverse_variance_weighting():
    heads = gaussian_heads()
    precision = torch.stack([torch.exp(-z[:, 1]) for z in heads])  # 1 / sigma^2, (M, B)
    expected = (precision / precision.sum(dim=0)).mean(dim=1)
    weights = AdaptiveLeveraging(1.0, "variance").weights(heads, None)
    assert torch.allclose(weights, expected, atol=1e-12) and torch.isclose(weights.sum(), torch.tensor(1.0, dtype=torch.float64))


@settings(max_examples=40, deadline=None)
@given(
    temperature=st.floats(0.05, 20.0),
    gap=st.floats(0.01, 5.0),
    seed=st.integers(0, 2**16),
)
def test_al_for_regression_gives_the_lower_variance_modality_the_larger_weight(temperature, gap, seed):
    heads = gaussian_heads(num_modalities=2, seed=seed)
    heads[1] = heads[1].clone()
    heads[1][:, 1] = heads[0][:, 1] + gap  # modality 1 is less certain on every sample
    weights = AdaptiveLeveraging(temperature, "variance").weights(heads, None)
    assert weights[0] > weights[1]


def test_goal_for_regression_runs_on_float_targets_and_refuses_classification_logits():
    grads, _, _ = make_inputs(3)
    heads = gaussian_heads(num_modalities=3, batch=6)
    targets = torch.randn(6, dtype=torch.float64)
    strategy = gp.create_strategy("goal", uncertainty="variance")
    out = strategy.modify(grads, heads, targets)
    assert len(out) == 3 and all(torch.isfinite(g).all() for g in out)
    _, class_logits, _ = make_inputs(3, classes=4)
    with pytest.raises(ValueError, match="uncertainty='variance' reads Gaussian heads"):
        strategy.modify(grads, class_logits, targets)
    with pytest.raises(ValueError, match="uncertainty"):
        gp.create_strategy("al", uncertainty="variances")

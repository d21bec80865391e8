"""Core rules of Gradient-Blending, MLA and D&R against literal transcriptions of
the official code, hand-computed values, mathematical properties and state
round trips, for two and three modalities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from goal_plugin.methods import dnr, grad_blending, mla
from tests import _method_references as ref

NAMES = {2: ["audio", "visual"], 3: ["audio", "visual", "text"]}


# =========================================================== Gradient-Blending
def random_losses(num_heads, seed):
    generator = np.random.default_rng(seed)
    t0 = generator.uniform(1.0, 2.0, num_heads)
    v0 = t0 + generator.uniform(0.0, 0.5, num_heads)
    t1 = t0 - generator.uniform(0.2, 1.0, num_heads)
    v1 = v0 - generator.uniform(-0.2, 0.6, num_heads)
    return t0.tolist(), v0.tolist(), t1.tolist(), v1.tolist()


@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_gb_weights_equal_balancebenchmark(num_modalities, seed):
    heads = NAMES[num_modalities] + ["output"]
    t0, v0, t1, v1 = random_losses(len(heads), seed)
    expected = ref.gb_super_epoch_weights(*(dict(zip(heads, x)) for x in (t0, v0, t1, v1)))
    actual = grad_blending.blending_weights(t0, v0, t1, v1)
    assert actual.tolist() == pytest.approx([expected[h] for h in heads], rel=1e-12)


def test_gb_hand_computed_weights():
    # audio: G = 1.8 - 2.2 = -0.4, O = (1.8 - 1.0) - (2.2 - 2.0) = 0.6 -> 0.4 / 0.36 = 10/9
    # visual: G = -0.4, O = (1.7 - 1.5) - (2.1 - 2.0) = 0.1 -> 0.4 / 0.01 = 40
    # fused: G = -0.5, O = (1.5 - 0.8) - (2.0 - 1.8) = 0.5 -> 0.5 / 0.25 = 2
    # normalised (times 9): 10, 360, 18 over 388
    weights = grad_blending.blending_weights(
        [2.0, 2.0, 1.8], [2.2, 2.1, 2.0], [1.0, 1.5, 0.8], [1.8, 1.7, 1.5]
    )
    assert weights.tolist() == pytest.approx([10 / 388, 360 / 388, 18 / 388], rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(num_heads=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_gb_weights_are_a_distribution(num_heads, seed):
    weights = grad_blending.blending_weights(*random_losses(num_heads, seed))
    assert weights.dtype == torch.float64
    assert bool((weights >= 0).all())
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    gain=st.floats(0.01, 1.0),
    extra_gain=st.floats(0.01, 1.0),
    overfit=st.floats(0.01, 1.0),
    extra_overfit=st.floats(0.01, 1.0),
)
def test_gb_favours_the_head_that_generalises(gain, extra_gain, overfit, extra_overfit):
    # held-out loss falls by G and the gap grows by O: w proportional to G / O^2
    def losses(g, o):
        return 1.0, 1.0, 1.0 - g - o, 1.0 - g

    def weights(first, second):
        columns = list(zip(first, second))
        return grad_blending.blending_weights(*columns)

    more_gain = weights(losses(gain + extra_gain, overfit), losses(gain, overfit))
    assert more_gain[0] > more_gain[1]
    more_overfitting = weights(losses(gain, overfit), losses(gain, overfit + extra_overfit))
    assert more_overfitting[0] > more_overfitting[1]


def test_gb_zero_overfitting_and_zero_gain():
    # head 0's gap does not change: O = 0, floored at eps, so it takes (almost) all weight
    weights = grad_blending.blending_weights([1.0, 1.0], [1.5, 1.5], [0.5, 0.5], [1.0, 0.8])
    assert weights[0].item() == pytest.approx(1.0, abs=1e-9)
    # no held-out loss changes at all: uniform instead of 0 / 0
    flat = grad_blending.blending_weights([1.0] * 3, [1.2] * 3, [0.5] * 3, [1.2] * 3)
    assert flat.tolist() == pytest.approx([1 / 3] * 3)


def test_gb_rejects_bad_input():
    with pytest.raises(ValueError, match="one loss per head"):
        grad_blending.blending_weights([1.0, 1.0], [1.0, 1.0], [1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"heldout_end\[1\] must be finite"):
        grad_blending.blending_weights([1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, math.nan])
    with pytest.raises(ValueError, match="eps must be > 0"):
        grad_blending.blending_weights([1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], eps=0)
    with pytest.raises(ValueError, match="super_epoch must be >= 2"):
        grad_blending.GradientBlending(2, super_epoch=1)
    state = grad_blending.GradientBlending(2)
    with pytest.raises(ValueError, match="head must be < 3"):
        state.record(3, 0, 1.0, 1.0)
    with pytest.raises(ValueError, match="probe_epoch must be one of"):
        state.record(0, 4, 1.0, 1.0)
    with pytest.raises(RuntimeError, match="call finish"):
        _ = state.weights
    state.record(0, 0, 1.0, 1.0)
    with pytest.raises(RuntimeError, match="missing losses: head 1 at probe epoch 0"):
        state.finish()


def run_estimation(state, t0, v0, t1, v1):
    first, last = state.probe_epochs
    for head in range(state.num_heads):
        state.record(head, first, t0[head], v0[head])
        state.record(head, last, t1[head], v1[head])
    return state.finish()


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_gb_state_schedule_loss_and_round_trip(num_modalities):
    state = grad_blending.GradientBlending(num_modalities, super_epoch=3)
    assert [e for e in range(8) if state.estimates_at(e)] == [0, 3, 6]
    assert state.probe_epochs == (0, 2)
    losses = random_losses(num_modalities + 1, seed=num_modalities)
    weights = run_estimation(state, *losses)
    assert torch.equal(weights, grad_blending.blending_weights(*losses))
    head_losses = [torch.tensor(float(h + 1), requires_grad=True) for h in range(num_modalities + 1)]
    blended = state.loss(head_losses)
    blended.backward()
    assert [x.grad.item() for x in head_losses] == pytest.approx(weights.tolist())
    # killed half-way through the next estimation: the restored state ends identically
    state.record(0, 0, 1.0, 1.3)
    saved = torch.load(_roundtrip(state.state_dict()), weights_only=True)
    restored = grad_blending.GradientBlending(num_modalities, super_epoch=3)
    restored.load_state_dict(saved)
    assert torch.equal(restored.weights, state.weights)
    for target in (state, restored):
        for head in range(1, target.num_heads):
            target.record(head, 0, 1.0 + head, 1.2 + head)
        for head in range(target.num_heads):
            target.record(head, 2, 0.5, 1.0 + 0.1 * head)
    assert torch.equal(state.finish(), restored.finish())
    with pytest.raises(ValueError, match="super_epoch=3, this run has 10"):
        grad_blending.GradientBlending(num_modalities).load_state_dict(saved)


def _roundtrip(state):
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


# ========================================================================= MLA
def mla_batches(num_modalities, steps, dim, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(6, dim, generator=generator, dtype=dtype) + 0.5,  # features
            torch.randn(4, dim, generator=generator, dtype=dtype),  # head weight gradient
        )
        for _ in range(steps * num_modalities)
    ]


@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize(
    "projector_update, reference",
    [("released", ref.mla_before_update), ("owm", ref.mla_owm_before_update)],
)
def test_mla_projection_equals_official_before_update(num_modalities, projector_update, reference):
    dim, num_batches = 5, 3
    projection = mla.MLAProjection(dim, projector_update=projector_update, dtype=torch.float64)
    Pl, exp_count = torch.eye(dim, dtype=torch.float64), 0
    batches = mla_batches(num_modalities, steps=2 * num_batches, dim=dim, seed=num_modalities)
    for step, (features, grad) in enumerate(batches):
        batch_step = (step // num_modalities) % num_batches  # M alternating steps per batch
        Pl, expected = reference(Pl, features, grad, batch_step, num_batches, exp_count)
        exp_count += 1
        actual = projection.project(grad, features, batch_step, num_batches)
        torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(projection.projector, Pl, rtol=1e-10, atol=1e-12)
    assert projection.updates == exp_count


def test_mla_update_rules_agree_only_in_one_dimension():
    # the released code divides by the matrix alpha + k r, OWM by the scalar alpha + r k
    projector = torch.eye(1, dtype=torch.float64)
    features = torch.tensor([[2.0], [4.0]], dtype=torch.float64)
    owm = mla.update_projector(projector, features, 0.1, projector_update="owm")
    released = mla.update_projector(projector, features, 0.1, projector_update="released")
    torch.testing.assert_close(owm, released)
    features = torch.tensor([[2.0, 1.0, 0.0], [4.0, 0.0, 1.0]], dtype=torch.float64)
    owm = mla.update_projector(torch.eye(3, dtype=torch.float64), features, 1e-9)
    released = mla.update_projector(
        torch.eye(3, dtype=torch.float64), features, 1e-9, projector_update="released"
    )
    mean = features.mean(dim=0)
    assert (owm @ mean).norm() < 1e-8 * mean.norm()  # OWM removes the mean's direction
    assert (released @ mean).norm() > 0.1 * mean.norm()  # the released rule does not


def test_mla_hand_computed_projection():
    # P = I, r = (1, 0), alpha = 0.1 ** (1 + 0/2) = 0.1: k = (1, 0)^T, r k = 1,
    # P = I - diag(1, 0) / 1.1 = diag(1/11, 1); ||P||_F = sqrt(122)/11 -> diag(1, 11)/sqrt(122)
    projection = mla.MLAProjection(2, dtype=torch.float64)
    features = torch.tensor([[2.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    grad = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    assert torch.equal(projection.project(grad, features, 0, 2), grad)  # first update: untouched
    projected = projection.project(grad, features, 0, 2)
    expected = torch.tensor([[1.0, 22.0]], dtype=torch.float64) / math.sqrt(122)
    torch.testing.assert_close(projected, expected, rtol=1e-12, atol=1e-12)
    assert mla.owm_alpha(1, 2) == pytest.approx(0.1**1.5)


@settings(max_examples=40, deadline=None)
@given(dim=st.integers(2, 6), seed=st.integers(0, 10_000), data=st.data())
def test_mla_projected_gradient_is_orthogonal_to_the_stored_means(dim, seed, data):
    # with a vanishing regulariser the OWM projector removes every stored mean exactly
    stored = data.draw(st.integers(1, dim - 1))
    projection = mla.MLAProjection(dim, alpha_base=1e-12, dtype=torch.float64)
    batches = mla_batches(1, stored + 1, dim, seed)
    projection.project(batches[0][1], batches[0][0], 0, 4)  # the first step stores nothing
    means = []
    for features, grad in batches[1:]:
        projected = projection.project(grad, features, 0, 4)
        means.append(features.mean(dim=0))
    for mean in means:
        cosine = (projected @ mean).abs() / (projected.norm(dim=1) * mean.norm()).clamp_min(1e-300)
        assert cosine.max().item() < 1e-6


@settings(max_examples=40, deadline=None)
@given(dim=st.integers(1, 6), alpha=st.floats(1e-3, 10.0), seed=st.integers(0, 10_000))
def test_mla_owm_update_shrinks_the_mean_direction_by_alpha(dim, alpha, seed):
    # (P - P r^T r P / (alpha + r P r^T)) r^T = alpha / (alpha + r P r^T) * P r^T
    generator = torch.Generator().manual_seed(seed)
    basis = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    projector = basis @ basis.T + torch.eye(dim, dtype=torch.float64)  # symmetric positive definite
    features = torch.randn(3, dim, generator=generator, dtype=torch.float64)
    r = features.mean(dim=0, keepdim=True)
    unnormalised = projector - projector @ r.T @ r @ projector / (alpha + r @ projector @ r.T)
    updated = mla.update_projector(projector, features, alpha)
    torch.testing.assert_close(updated, unnormalised / unnormalised.norm())
    shrink = alpha / (alpha + (r @ projector @ r.T).item())
    torch.testing.assert_close(
        updated @ r.T, shrink * projector @ r.T / unnormalised.norm(), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_mla_batch_fusion_equals_official_gating(num_modalities, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = [2 * torch.randn(5, 4, generator=generator, dtype=torch.float64) for _ in range(num_modalities)]
    official = ref.mla_calculate_gating_weights if num_modalities == 2 else ref.mla_calculate_gating_weights3
    expected = official(*[z.clone() for z in logits])
    weights = mla.entropy_fusion_weights(logits, entropy_scope="batch")
    assert weights.tolist() == pytest.approx([w.item() for w in expected], rel=1e-12)
    fused = sum(w * z for w, z in zip(expected, logits))
    torch.testing.assert_close(mla.fuse_logits(logits), fused, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_mla_sample_fusion_equals_balancebenchmark_gating(num_modalities):
    generator = torch.Generator().manual_seed(num_modalities)
    names = NAMES[num_modalities]
    logits = [2 * torch.randn(7, 3, generator=generator, dtype=torch.float64) for _ in names]
    expected = ref.mla_balancebenchmark_gating_weights(dict(zip(names, logits)), names)
    weights = mla.entropy_fusion_weights(logits, entropy_scope="sample")
    torch.testing.assert_close(weights, torch.stack([expected[n][:, 0] for n in names]))
    fused = sum(expected[n] * z for n, z in zip(names, logits))
    torch.testing.assert_close(mla.fuse_logits(logits, entropy_scope="sample"), fused)


def test_mla_hand_computed_fusion():
    # H(uniform over 2) = log 2; H(3/4, 1/4) = 0.5623351446188083;
    # lambda_a = e^{-log 2} / (e^{-log 2} + e^{-0.56233...}) = 0.467343545268778
    z_a = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    z_v = torch.tensor([[math.log(3), 0.0]], dtype=torch.float64)
    weights = mla.entropy_fusion_weights([z_a, z_v], entropy_scope="sample")
    assert weights[:, 0].tolist() == pytest.approx([0.467343545268778, 0.532656454731222], abs=1e-12)
    # batch scope over two samples: column-wise softmax, H_a = 2 log 2, H_v = 0.56233... + log 2,
    # so the same difference H_a - H_v and the same weights
    pair_a = torch.zeros(2, 2, dtype=torch.float64)
    pair_v = torch.tensor([[math.log(3), 0.0], [0.0, 0.0]], dtype=torch.float64)
    batch = mla.entropy_fusion_weights([pair_a, pair_v], entropy_scope="batch")
    assert batch.tolist() == pytest.approx([0.467343545268778, 0.532656454731222], abs=1e-12)
    fused = mla.fuse_logits([z_a, z_v], entropy_scope="sample")
    assert fused[0].tolist() == pytest.approx([0.532656454731222 * math.log(3), 0.0], abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(num_modalities=st.integers(2, 4), seed=st.integers(0, 10_000), scope=st.sampled_from(["batch", "sample"]))
def test_mla_fusion_weights_are_a_distribution_favouring_confidence(num_modalities, seed, scope):
    generator = torch.Generator().manual_seed(seed)
    logits = [3 * torch.randn(4, 5, generator=generator, dtype=torch.float64) for _ in range(num_modalities)]
    weights = mla.entropy_fusion_weights(logits, entropy_scope=scope)
    torch.testing.assert_close(weights.sum(dim=0), torch.ones_like(weights[0]))
    sharper = [logits[0] * 4] + logits[1:]  # the same ranking, lower entropy
    assert bool((mla.entropy_fusion_weights(sharper, entropy_scope=scope)[0] >= weights[0] - 1e-12).all())


def test_mla_sample_scope_is_batch_independent_unlike_the_official_scope():
    generator = torch.Generator().manual_seed(0)
    logits = [2 * torch.randn(6, 3, generator=generator, dtype=torch.float64) for _ in range(2)]
    first_half = [z[:3] for z in logits]
    sample_full = mla.fuse_logits(logits, entropy_scope="sample")[:3]
    torch.testing.assert_close(mla.fuse_logits(first_half, entropy_scope="sample"), sample_full)
    batch_full = mla.fuse_logits(logits, entropy_scope="batch")[:3]
    assert not torch.allclose(mla.fuse_logits(first_half, entropy_scope="batch"), batch_full)


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_mla_state_round_trip(num_modalities):
    batches = mla_batches(num_modalities, steps=4, dim=4, seed=5, dtype=torch.float32)
    projection = mla.MLAProjection(4)
    for step, (features, grad) in enumerate(batches[:5]):
        projection.project(grad, features, step // num_modalities, 4)
    restored = mla.MLAProjection(4)
    restored.load_state_dict(torch.load(_roundtrip(projection.state_dict()), weights_only=True))
    for step, (features, grad) in enumerate(batches[5:], start=5):
        index = (step // num_modalities) % 4
        assert torch.equal(
            projection.project(grad, features, index, 4), restored.project(grad, features, index, 4)
        )
    assert torch.equal(projection.projector, restored.projector)
    assert restored.updates == projection.updates == len(batches)
    with pytest.raises(ValueError, match=r"projector must be \(3, 3\)"):
        mla.MLAProjection(3).load_state_dict(projection.state_dict())


def test_mla_rejects_bad_input():
    with pytest.raises(ValueError, match="alpha_base must be > 0"):
        mla.MLAProjection(4, alpha_base=0)
    with pytest.raises(ValueError, match="value for projector_update"):
        mla.MLAProjection(4, projector_update="elementwise")
    with pytest.raises(ValueError, match="value for entropy_scope"):
        mla.fuse_logits([torch.zeros(2, 3)] * 2, entropy_scope="batches")
    with pytest.raises(ValueError, match="batch_index must be < num_batches=3"):
        mla.owm_alpha(3, 3)
    with pytest.raises(ValueError, match=r"features must have shape \(batch, 4\)"):
        mla.update_projector(torch.eye(4), torch.zeros(2, 3), 0.1)
    with pytest.raises(ValueError, match=r"gradient must have shape \(classes, 4\)"):
        mla.project_gradient(torch.zeros(2, 3), torch.eye(4))
    with pytest.raises(ValueError, match="at least 2 modalities"):
        mla.entropy_fusion_weights([torch.zeros(2, 3)])


# ========================================================================= D&R
def blobs(num_classes, per_class, dim, spread, seed):
    generator = np.random.default_rng(seed)
    centres = generator.normal(0, 3, (num_classes, dim))
    labels = np.repeat(np.arange(num_classes), per_class)
    features = centres[labels] + generator.normal(0, spread, (labels.size, dim))
    return features.astype(np.float32), labels


@pytest.mark.parametrize("seed", range(4))
def test_dnr_purity_equals_official_purity_score(seed):
    generator = np.random.default_rng(seed)
    labels = generator.choice([0, 2, 5], size=40)  # missing classes, as the official code handles
    clusters = generator.integers(0, 4, size=40)
    assert dnr.purity(labels, clusters) == pytest.approx(ref.dnr_purity_score(labels.copy(), clusters))


def test_dnr_hand_computed_values():
    # cluster 0 holds labels 0, 0, 1 (majority 2), cluster 1 holds 1, 1, 2 (majority 2): 4/6
    assert dnr.purity([0, 0, 1, 1, 1, 2], [0, 0, 0, 1, 1, 1]) == pytest.approx(4 / 6)
    assert dnr.reinit_strength(0.9, 0.7) == pytest.approx(math.tanh(0.6))  # tanh(3 * 0.2)
    assert dnr.reinit_strength(0.7, 0.9) == pytest.approx(0.5370495669980353)
    current, initial = torch.tensor([1.0, -2.0]), torch.tensor([0.0, 2.0])
    assert dnr.partial_reinit(current, initial, 0.25).tolist() == [0.75, -1.0]


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_dnr_diagnosis_equals_official_reinit_score(num_modalities):
    names = NAMES[num_modalities]
    train, val = {}, {}
    train_sets = [blobs(3, 12, 4, spread, seed=m) for m, spread in enumerate([0.3, 3.0, 1.5][:num_modalities])]
    val_sets = [blobs(3, 8, 4, spread, seed=10 + m) for m, spread in enumerate([2.5, 3.0, 0.5][:num_modalities])]
    for name, (features, labels) in zip(names, train_sets):
        train[name], train["label"] = features, labels
    for name, (features, labels) in zip(names, val_sets):
        val[name], val["label"] = features, labels
    expected = ref.dnr_reinit_score(names, 3, 3.0, train, val)
    state = dnr.DiagnoseAndRelearn(num_modalities)
    strengths = state.diagnose(
        [train[n] for n in names], train["label"], [val[n] for n in names], val["label"], 3
    )
    assert strengths == pytest.approx([expected[n].item() for n in names], abs=1e-12)
    assert len(set(strengths)) > 1  # the data give the encoders different diagnoses


class TinyModel(torch.nn.Module):
    def __init__(self, names):
        super().__init__()
        self.nets = torch.nn.ModuleDict({f"{n}_net": torch.nn.Linear(3, 2) for n in names})
        self.head = torch.nn.Linear(2 * len(names), 2)


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_dnr_relearning_equals_official_reinit(num_modalities):
    names = NAMES[num_modalities]
    torch.manual_seed(0)
    model = TinyModel(names)
    init_params = {name: p.detach().clone() for name, p in model.named_parameters()}
    state = dnr.DiagnoseAndRelearn(num_modalities)
    encoders = lambda m: [list(m.nets[f"{n}_net"].named_parameters()) for n in names]
    state.remember_initial(encoders(model))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    reference = TinyModel(names)
    reference.load_state_dict(model.state_dict())
    strengths = [0.0, 0.3, 0.8][:num_modalities]
    weight = {n: torch.tensor(s, dtype=torch.float64) for n, s in zip(names, strengths)}
    ref.dnr_reinit(reference, init_params, weight, names)
    state.relearn_(encoders(model), strengths)
    for (name, actual), expected in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-7, msg=name)
    assert state.reinits_done == 1


@settings(max_examples=50, deadline=None)
@given(
    gap=st.floats(0.0, 1.0), extra=st.floats(1e-3, 1.0), move_lambda=st.floats(0.1, 10.0)
)
def test_dnr_strength_grows_with_the_gap(gap, extra, move_lambda):
    small = dnr.reinit_strength(0.5, 0.5 + gap / 2, move_lambda=move_lambda)
    large = dnr.reinit_strength(0.5, 0.5 + (gap + extra) / 2, move_lambda=move_lambda)
    assert 0.0 <= small <= large <= 1.0
    assert large > small or small == pytest.approx(1.0)  # strictly, until tanh saturates


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_dnr_strength_zero_keeps_and_one_restores(seed):
    generator = torch.Generator().manual_seed(seed)
    current, initial = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    assert torch.equal(dnr.partial_reinit(current, initial, 0.0), current)
    assert torch.equal(dnr.partial_reinit(current, initial, 1.0), initial)
    assert dnr.reinit_strength(0.8, 0.8) == 0.0


def test_dnr_separable_features_have_purity_one():
    features, labels = blobs(4, 10, 3, 0.01, seed=1)
    assert dnr.clustering_purity(features, labels, 4) == 1.0
    assert dnr.clustering_purity(torch.from_numpy(features), torch.from_numpy(labels), 4) == 1.0


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_dnr_schedule_and_state_round_trip(num_modalities):
    state = dnr.DiagnoseAndRelearn(num_modalities, reinit_epoch=20, reinit_num=3)
    names = NAMES[num_modalities]
    model = TinyModel(names)
    encoders = [list(model.nets[f"{n}_net"].named_parameters()) for n in names]
    state.remember_initial(encoders)
    saved_initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    due = []
    for epoch in range(100):
        if state.due(epoch):
            due.append(epoch)
            state.relearn_(encoders, [1.0] * num_modalities)
    assert due == [20, 40, 60]
    for name, param in model.named_parameters():  # strength 1 restored the encoders only
        expected = saved_initial[name] if "_net" in name else 3 * saved_initial[name]
        torch.testing.assert_close(param, expected)
    restored = dnr.DiagnoseAndRelearn(num_modalities, reinit_epoch=20, reinit_num=3)
    restored.load_state_dict(torch.load(_roundtrip(state.state_dict()), weights_only=True))
    assert restored.reinits_done == 3 and not restored.due(80)
    for kept, loaded in zip(state.initial, restored.initial):
        assert kept.keys() == loaded.keys() and all(torch.equal(kept[k], loaded[k]) for k in kept)


def test_dnr_rejects_bad_input():
    with pytest.raises(ValueError, match="move_lambda must be >= 0"):
        dnr.DiagnoseAndRelearn(2, move_lambda=-1)
    with pytest.raises(ValueError, match="reinit_epoch must be >= 1"):
        dnr.DiagnoseAndRelearn(2, reinit_epoch=0)
    with pytest.raises(ValueError, match=r"strength must lie in \[0, 1\]"):
        dnr.partial_reinit(torch.zeros(2), torch.zeros(2), 1.5)
    with pytest.raises(ValueError, match="features have 4 rows but labels has 3"):
        dnr.clustering_purity(np.zeros((4, 2)), [0, 1, 0], 2)
    state = dnr.DiagnoseAndRelearn(2)
    with pytest.raises(RuntimeError, match="call remember_initial"):
        state.relearn_([[], []], [0.1, 0.1])
    with pytest.raises(ValueError, match=r"train_features needs one entry per modality \(2\), got 1"):
        state.diagnose([np.zeros((4, 2))], [0, 1, 0, 1], [np.zeros((4, 2))] * 2, [0, 1, 0, 1], 2)
    model = TinyModel(["audio", "visual"])
    state.remember_initial([list(model.nets["audio_net"].named_parameters())] * 2)
    with pytest.raises(ValueError, match="encoder 1's parameters differ"):
        state.relearn_(
            [list(model.nets["audio_net"].named_parameters()), list(model.head.named_parameters())[:1]],
            [0.1, 0.1],
        )

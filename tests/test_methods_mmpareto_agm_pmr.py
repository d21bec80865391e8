"""Core rules of MMPareto, AGM and PMR against literal transcriptions of the
authors' code, hand-computed values and mathematical properties."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from goal_plugin.methods.agm import (
    AGMController,
    modulated_output,
    present_subsets,
    shapley_from_passes,
    shapley_outputs,
)
from goal_plugin.methods.mmpareto import MMPareto, min_norm_weight
from goal_plugin.methods.pmr import PMR, loss_weights, prototype_logits
from tests import _method_references as ref

SHAPES = [(4, 3), (4,), (2, 2, 3)]


def _pairs(seed, conflict):
    generator = torch.Generator().manual_seed(seed)
    fused = [torch.randn(shape, generator=generator) for shape in SHAPES]
    noise = [0.3 * torch.randn(shape, generator=generator) for shape in SHAPES]
    if conflict:
        unimodal = [-1.7 * f + n for f, n in zip(fused, noise)]
    else:
        unimodal = [0.8 * f + n for f, n in zip(fused, noise)]
    return fused, unimodal


def _official(fused, unimodal, gamma=1.5):
    names = [f"p{i}" for i in range(len(fused))]
    out, weights = ref.mmpareto_official_encoder(
        names, dict(zip(names, fused)), dict(zip(names, unimodal)), gamma
    )
    return [out[n] for n in names], weights


# ------------------------------------------------------------------ MMPareto
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("conflict", [True, False])
@pytest.mark.parametrize("gamma", [1.0, 1.5])
def test_mmpareto_equals_official_loop(seed, conflict, gamma):
    fused, unimodal = _pairs(seed, conflict)
    rule = MMPareto(gamma=gamma)
    expected, expected_weights = _official(fused, unimodal, gamma)
    flat_fused = torch.cat([f.flatten() for f in fused])
    flat_uni = torch.cat([u.flatten() for u in unimodal])
    assert rule.weights(flat_fused, flat_uni) == pytest.approx(expected_weights, abs=1e-6)
    assert (expected_weights == (0.5, 0.5)) != conflict
    actual = rule.encoder_gradients(list(zip(fused, unimodal)))
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)


def test_mmpareto_hand_computed_conflict_and_agreement():
    rule = MMPareto()
    # <G,G>=1, <G,g>=-1, <g,g>=2: c = (2 + 1) / 5 = 0.6; new = [0.4, 0.8] with norm
    # sqrt(0.8) < ||G + g|| = 1, so it is rescaled to norm 1 and times 1.5.
    fused, unimodal = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    assert rule.weights(fused, unimodal) == pytest.approx((0.6, 0.4))
    expected = 1.5 * torch.tensor([1.0, 2.0]) / math.sqrt(5)
    torch.testing.assert_close(rule.flat_gradient(fused, unimodal), expected)
    # cos > 0: equal weights, new = G + g, diff = 1, result 1.5 (G + g)
    agree = rule.flat_gradient(torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0]))
    torch.testing.assert_close(agree, torch.tensor([6.0, 1.5]))


def test_mmpareto_weights_per_encoder_rescale_per_parameter():
    # encoder G = [1, 0 | 1], g = [-1, 1 | -1]: <G,G> = 2, <G,g> = -2, <g,g> = 3, c = 5/9.
    # p1: new = [2/9, 8/9], ||G1 + g1|| = 1 > ||new||: rescaled to norm 1, times 1.5.
    # p2: new = 2/9, ||G2 + g2|| = 0 < |new| (diff < 1): not rescaled, only times 1.5.
    pairs = [
        (torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])),
        (torch.tensor([1.0]), torch.tensor([-1.0])),
    ]
    out = MMPareto().encoder_gradients(pairs)
    torch.testing.assert_close(out[0], 1.5 * torch.tensor([2.0, 8.0]) / math.sqrt(68))
    torch.testing.assert_close(out[1], torch.tensor([1 / 3]))
    expected, weights = _official([f for f, _ in pairs], [g for _, g in pairs])
    assert weights == pytest.approx((5 / 9, 4 / 9))
    for a, e in zip(out, expected):
        torch.testing.assert_close(a, e)


def test_mmpareto_boundary_weights_follow_the_official_solver():
    assert min_norm_weight(1.0, 1.0, 4.0) == 0.999  # <G,g> >= <G,G>
    assert min_norm_weight(4.0, 1.0, 1.0) == 0.001  # <G,g> >= <g,g>
    assert min_norm_weight(0.0, 0.0, 0.0) == 0.999  # both zero: the first branch
    for args in [(1.0, 1.0, 4.0), (4.0, 1.0, 1.0), (2.0, -1.0, 3.0)]:
        assert min_norm_weight(*args) == ref.mmpareto_min_norm_element_from2(*args)[0]


def test_mmpareto_exactly_opposed_gradients_give_zeros_not_nan():
    fused = torch.tensor([1.0, -2.0, 0.5])
    out = MMPareto().flat_gradient(fused, -fused)  # min-norm point is 0 (Pareto-stationary)
    assert torch.equal(out, torch.zeros(3))


vectors = st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=6, max_size=6)


@settings(max_examples=60, deadline=None)
@given(vectors, vectors, st.floats(0.5, 3.0))
def test_mmpareto_properties(fused_values, unimodal_values, gamma):
    fused = torch.tensor(fused_values, dtype=torch.float64)
    unimodal = torch.tensor(unimodal_values, dtype=torch.float64)
    if fused.norm() < 1e-3 or unimodal.norm() < 1e-3 or (fused + unimodal).norm() < 1e-3:
        return
    rule = MMPareto(gamma=gamma)
    w_fused, w_uni = rule.weights(fused, unimodal)
    out = rule.flat_gradient(fused, unimodal)
    uniform = fused + unimodal
    if fused.dot(unimodal) > 0:
        torch.testing.assert_close(out, gamma * uniform)
        return
    # min-norm weight minimises ||c G + (1 - c) g|| over c in [0, 1] (checked on a grid)
    grid = torch.linspace(0, 1, 1001, dtype=torch.float64)
    norms = (grid[:, None] * fused + (1 - grid[:, None]) * unimodal).norm(dim=1)
    chosen = (w_fused * fused + w_uni * unimodal).norm()
    assert chosen <= norms.min() + 1e-6 * (1 + fused.norm() + unimodal.norm())
    # never smaller than gamma times the uniform sum's magnitude
    assert out.norm() >= gamma * uniform.norm() * (1 - 1e-9)
    # interior solution: a common descent direction for both losses
    if 0.001 < w_fused < 0.999:
        scale = out.norm() * (fused.norm() + unimodal.norm())
        assert out.dot(fused) >= -1e-9 * scale and out.dot(unimodal) >= -1e-9 * scale


class _LateFusion(torch.nn.Module):
    """M encoders, a concatenation head and one unimodal head per modality."""

    def __init__(self, num_modalities, outputs, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.encoders = torch.nn.ModuleList(torch.nn.Linear(3, 4) for _ in range(num_modalities))
        self.heads = torch.nn.ModuleList(torch.nn.Linear(4, outputs) for _ in range(num_modalities))
        self.fusion = torch.nn.Linear(4 * num_modalities, outputs)

    def forward(self, inputs):
        features = [torch.tanh(enc(x)) for enc, x in zip(self.encoders, inputs)]
        return self.fusion(torch.cat(features, dim=1)), [h(f) for h, f in zip(self.heads, features)]


def _encoder_grads(model, loss, encoder):
    return torch.autograd.grad(
        loss, list(encoder.parameters()), retain_graph=True, allow_unused=True
    )


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_mmpareto_three_modalities_is_a_two_task_problem_per_encoder(task):
    model = _LateFusion(3, outputs=4 if task == "classification" else 1)
    generator = torch.Generator().manual_seed(1)
    inputs = [torch.randn(8, 3, generator=generator) for _ in range(3)]
    fused_out, unimodal_out = model(inputs)
    if task == "classification":
        target = torch.randint(0, 4, (8,), generator=generator)
        criterion = F.cross_entropy
    else:
        target = torch.randn(8, 1, generator=generator)
        criterion = F.mse_loss
    loss_mm = criterion(fused_out, target)
    unimodal_losses = [criterion(z, target) for z in unimodal_out]
    rule = MMPareto()
    for m, encoder in enumerate(model.encoders):
        for k, other_loss in enumerate(
            unimodal_losses
        ):  # other unimodal losses never reach encoder m
            if k != m:
                assert all(g is None for g in _encoder_grads(model, other_loss, encoder))
        fused = _encoder_grads(model, loss_mm, encoder)
        own = _encoder_grads(model, unimodal_losses[m], encoder)
        actual = rule.encoder_gradients(list(zip(fused, own)))
        expected, _ = _official(list(fused), list(own))
        for a, e in zip(actual, expected):
            torch.testing.assert_close(a, e, atol=1e-6, rtol=1e-5)


def test_mmpareto_validates_its_hyperparameter_and_inputs():
    with pytest.raises(ValueError, match="gamma"):
        MMPareto(gamma=0)
    with pytest.raises(ValueError, match="same size"):
        MMPareto().weights(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="at least one"):
        MMPareto().encoder_gradients([])
    rule = MMPareto()
    rule.load_state_dict(rule.state_dict())
    with pytest.raises(ValueError, match="no state"):
        rule.load_state_dict({"c": 1})


# ----------------------------------------------------------------------- AGM
def _subset_outputs(num_modalities, seed, batch=6, classes=4):
    generator = torch.Generator().manual_seed(seed)
    return {
        s: 2 * torch.randn(batch, classes, generator=generator)
        for s in present_subsets(num_modalities)
    }


def test_agm_subsets_are_every_nonempty_subset():
    assert present_subsets(2) == [(0, 1), (0,), (1,)]
    assert len(present_subsets(3)) == 7 and present_subsets(3)[0] == (0, 1, 2)


@pytest.mark.parametrize("seed", range(3))
def test_agm_shapley_outputs_equal_official_formulas(seed):
    two = _subset_outputs(2, seed)  # modality 0 = audio, 1 = visual
    (official_a, official_v), _, _ = ref.agm_two_modalities(
        two[(0, 1)], two[(0,)], two[(1,)], torch.zeros(6, dtype=torch.long), 0.0, 0.0, 1, 1.0
    )
    phis = shapley_outputs(two, 2)
    torch.testing.assert_close(phis[0], official_a)
    torch.testing.assert_close(phis[1], official_v)

    three = _subset_outputs(3, seed)  # 0 = audio, 1 = visual, 2 = text
    (official_a, official_v, official_t), _, _ = ref.agm_three_modalities(
        three[(0, 1, 2)],
        three[(0, 2)],
        three[(1, 2)],
        three[(0, 1)],
        three[(2,)],
        three[(0,)],
        three[(1,)],
        torch.zeros(6, dtype=torch.long),
        0.0,
        0.0,
        0.0,
        1,
        1.0,
    )
    phis = shapley_outputs(three, 3)
    for actual, expected in zip(phis, (official_a, official_v, official_t)):
        torch.testing.assert_close(actual, expected)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 4), st.integers(0, 10_000))
def test_agm_shapley_is_efficient_and_exact_for_additive_models(num_modalities, seed):
    outputs = _subset_outputs(num_modalities, seed, batch=3, classes=2)
    phis = shapley_outputs(outputs, num_modalities)
    full = outputs[tuple(range(num_modalities))]
    torch.testing.assert_close(sum(phis), full, atol=1e-5, rtol=1e-5)  # f(empty) := 0
    generator = torch.Generator().manual_seed(seed)
    parts = [torch.randn(3, 2, generator=generator) for _ in range(num_modalities)]
    additive = {s: sum(parts[m] for m in s) for s in present_subsets(num_modalities)}
    for phi, part in zip(shapley_outputs(additive, num_modalities), parts):
        torch.testing.assert_close(phi, part, atol=1e-5, rtol=1e-5)


def test_agm_shapley_from_a_padded_model_equals_official_two_modality_formula():
    model = _LateFusion(2, outputs=4)
    generator = torch.Generator().manual_seed(5)
    inputs = [torch.randn(6, 3, generator=generator) for _ in range(2)]

    def fused(present):
        return model([x if m in present else torch.zeros_like(x) for m, x in enumerate(inputs)])[0]

    phis = shapley_from_passes(fused, 2)
    (official_a, official_v), _, _ = ref.agm_two_modalities(
        fused((0, 1)), fused((0,)), fused((1,)), torch.zeros(6, dtype=torch.long), 0.0, 0.0, 1, 1.0
    )
    torch.testing.assert_close(phis[0], official_a)
    torch.testing.assert_close(phis[1], official_v)


def test_agm_shapley_needs_every_subset():
    outputs = _subset_outputs(3, 0)
    del outputs[(0, 2)]
    with pytest.raises(ValueError, match=r"missing \[\(0, 2\)\]"):
        shapley_outputs(outputs, 3)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.5])
def test_agm_two_modality_controller_equals_official_loop(alpha):
    controller = AGMController(2, alpha=alpha)
    train_a = train_v = 0.0
    for step in range(4):
        outputs = _subset_outputs(2, 10 + step)
        labels = torch.randint(0, 4, (6,), generator=torch.Generator().manual_seed(step))
        phis = shapley_outputs(outputs, 2)
        coefficients = controller.update(phis, labels)
        _, expected, (train_a, train_v) = ref.agm_two_modalities(
            outputs[(0, 1)], outputs[(0,)], outputs[(1,)], labels, train_a, train_v, step + 1, alpha
        )
        assert coefficients == pytest.approx(expected, rel=1e-5)
        assert controller.running_scores == pytest.approx([train_a, train_v], rel=1e-6)


def test_agm_three_modality_controller_equals_official_loop():
    controller = AGMController(3, alpha=1.0)
    scores = [0.0, 0.0, 0.0]
    for step in range(3):
        o = _subset_outputs(3, 20 + step)
        labels = torch.randint(0, 4, (6,), generator=torch.Generator().manual_seed(step))
        coefficients = controller.update(shapley_outputs(o, 3), labels)
        _, expected, scores = ref.agm_three_modalities(
            o[(0, 1, 2)],
            o[(0, 2)],
            o[(1, 2)],
            o[(0, 1)],
            o[(2,)],
            o[(0,)],
            o[(1,)],
            labels,
            *scores,
            step + 1,
            1.0,
        )
        assert coefficients == pytest.approx(expected, rel=1e-5)
        assert controller.running_scores == pytest.approx(scores, rel=1e-6)
    assert controller.max_gap == 7.0 and AGMController(2).max_gap == 10.0


def test_agm_hand_computed_first_step():
    # phi_a gives the true class p = 0.5, phi_v p = 0.75: s_a = ln 2, s_v = ln(4/3);
    # ratio_a = exp(s_v - s_a) = 2/3, ratio_v = 3/2, optimal ratios exp(0) = 1.
    phi_a = torch.log(torch.tensor([[0.5, 0.5]]))
    phi_v = torch.log(torch.tensor([[0.25, 0.75]]))
    controller = AGMController(2, alpha=1.0)
    coefficients = controller.update([phi_a, phi_v], torch.tensor([1]))
    assert coefficients == pytest.approx([math.exp(1 / 3), math.exp(-1 / 2)], rel=1e-6)
    assert controller.running_scores == pytest.approx([math.log(2), math.log(4 / 3)], rel=1e-6)
    assert controller.num_updates == 1


def test_agm_score_floor_matches_the_official_1e_minus_8():
    phi = torch.tensor([[0.0, -60.0]])  # p(true) ~ 1e-26 < 1e-8
    scores = AGMController(2).scores([phi, phi], torch.tensor([1]))
    assert scores == pytest.approx([-math.log(1e-8)] * 2, rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.0, 5.0), min_size=3, max_size=3),
    st.lists(st.floats(0.0, 5.0), min_size=3, max_size=3),
    st.floats(0.1, 3.0),
)
def test_agm_coefficient_properties(scores, running, alpha):
    controller = AGMController(3, alpha=alpha)
    controller.running_scores = list(running)
    # at the optimal ratio (batch scores equal the running ones) every coefficient is 1
    controller_at_optimum = AGMController(3, alpha=alpha)
    controller_at_optimum.running_scores = list(scores)
    assert controller_at_optimum.coefficients_from_scores(scores) == pytest.approx([1.0] * 3)
    # a worse batch score for modality 0 (higher loss) lowers its ratio, so its coefficient rises
    base = controller.coefficients_from_scores(scores)
    worse = controller.coefficients_from_scores([scores[0] + 0.5, scores[1], scores[2]])
    assert worse[0] >= base[0] * (1 - 1e-12)
    assert all(c <= math.exp(alpha * controller.max_gap) * (1 + 1e-12) for c in base + worse)


def test_agm_modulated_output_backward_equals_official_hooks():
    outputs = {s: t.requires_grad_() for s, t in _subset_outputs(2, 3).items()}
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    scales = [1.7, 0.4]
    ours = modulated_output(shapley_outputs(outputs, 2), scales)
    torch.testing.assert_close(ours, outputs[(0, 1)])  # value: the fused output
    ours_grads = torch.autograd.grad(F.cross_entropy(ours, labels), list(outputs.values()))
    official = ref.agm_hooked_output(shapley_outputs(outputs, 2), scales)
    official_grads = torch.autograd.grad(F.cross_entropy(official, labels), list(outputs.values()))
    for a, e in zip(ours_grads, official_grads):
        torch.testing.assert_close(a, e)
    # equal coefficients: the padded passes' gradients cancel, only the full pass learns
    equal = torch.autograd.grad(
        F.cross_entropy(modulated_output(shapley_outputs(outputs, 2), [1.0, 1.0]), labels),
        list(outputs.values()),
    )
    assert float(equal[1].abs().max()) < 1e-7 and float(equal[2].abs().max()) < 1e-7


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_agm_state_round_trip_continues_bit_exactly(num_modalities):
    def step(controller, seed):
        outputs = _subset_outputs(num_modalities, seed)
        labels = torch.randint(0, 4, (6,), generator=torch.Generator().manual_seed(seed))
        return controller.update(shapley_outputs(outputs, num_modalities), labels)

    original = AGMController(num_modalities, alpha=1.3)
    for seed in range(3):
        step(original, seed)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    resumed = AGMController(num_modalities, alpha=1.3)
    resumed.load_state_dict(torch.load(buffer))
    for seed in range(3, 6):
        assert step(resumed, seed) == step(original, seed)
    assert resumed.state_dict() == original.state_dict()


def test_agm_validation_names_the_parameter():
    with pytest.raises(ValueError, match="alpha"):
        AGMController(2, alpha=-1)
    with pytest.raises(ValueError, match="max_gap"):
        AGMController(2, max_gap=0)
    with pytest.raises(ValueError, match="num_modalities"):
        AGMController(1)
    with pytest.raises(ValueError, match="keys"):
        AGMController(2).load_state_dict({"running_scores": [0.0, 0.0]})
    with pytest.raises(ValueError, match="3 running scores for 2"):
        AGMController(2).load_state_dict({"running_scores": [0.0] * 3, "num_updates": 1})
    with pytest.raises(ValueError, match="2 unimodal outputs for 3"):
        AGMController(3).update([torch.zeros(2, 3)] * 2, torch.zeros(2, dtype=torch.long))


# ----------------------------------------------------------------------- PMR
def _batches(num_modalities, num_batches, seed, batch=6, classes=3, dims=(4, 5, 3)):
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(num_batches):
        labels = torch.arange(batch) % classes  # every class in every batch
        labels = labels[torch.randperm(batch, generator=generator)]
        features = [torch.randn(batch, dims[m], generator=generator) for m in range(num_modalities)]
        out.append((features, labels))
    return out


def _recompute(pmr, batches, finished_epoch):
    pmr.start_prototypes()
    for features, labels in batches[: pmr.subset_batches(len(batches))]:
        pmr.accumulate(features, labels)
    pmr.finish_prototypes(finished_epoch)


@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("momentum", [0.0, 0.2, 0.5])
def test_pmr_prototypes_equal_official_calculate_prototype(num_modalities, momentum):
    dims = (4, 5, 3)[:num_modalities]
    pmr = PMR(num_classes=3, momentum=momentum)
    official = None
    for epoch, seed in [(None, 0), (0, 1), (1, 2), (2, 3)]:  # before training, then after epochs
        batches = _batches(num_modalities, 25, seed)  # 25 // 10 = 2 batches are read
        _recompute(pmr, batches, epoch)
        official = ref.pmr_calculate_prototype(
            batches, 3, dims, 0 if epoch is None else epoch, momentum, official
        )
        for ours, theirs in zip(pmr.prototypes, official):
            torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)


def test_pmr_hand_computed_prototypes_smoothing_and_logits():
    pmr = PMR(num_classes=2, momentum=0.25, subset_divisor=1)
    features = [torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])] * 2
    pmr.start_prototypes()
    pmr.accumulate(features, torch.tensor([0, 0, 1]))
    pmr.finish_prototypes(None)
    torch.testing.assert_close(pmr.prototypes[0], torch.tensor([[2.0, 3.0], [5.0, 6.0]]))
    pmr.start_prototypes()
    pmr.accumulate([torch.tensor([[6.0, 7.0], [1.0, 2.0]])] * 2, torch.tensor([0, 1]))
    pmr.finish_prototypes(0)  # after epoch 0 the official code takes the mean as is
    torch.testing.assert_close(pmr.prototypes[0], torch.tensor([[6.0, 7.0], [1.0, 2.0]]))
    pmr.start_prototypes()
    pmr.accumulate([torch.tensor([[2.0, 3.0], [5.0, 6.0]])] * 2, torch.tensor([0, 1]))
    pmr.finish_prototypes(1)  # 0.75 * mean + 0.25 * old
    torch.testing.assert_close(pmr.prototypes[0], torch.tensor([[3.0, 4.0], [4.0, 5.0]]))
    logits = prototype_logits(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    torch.testing.assert_close(logits, torch.tensor([[-5.0, -1.0]]))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_pmr_momentum_zero_gives_class_means_of_the_data_read(seed, num_batches):
    batches = _batches(2, num_batches, seed)
    pmr = PMR(num_classes=3, momentum=0.0, subset_divisor=1)
    _recompute(pmr, _batches(2, 2, seed + 1), None)
    _recompute(pmr, batches, 5)
    labels = torch.cat([b[1] for b in batches])
    for m in range(2):
        features = torch.cat([b[0][m] for b in batches])
        for c in range(3):
            torch.testing.assert_close(pmr.prototypes[m][c], features[labels == c].mean(dim=0))


def test_pmr_class_absent_from_the_subset_keeps_its_prototype():
    pmr = PMR(num_classes=3, subset_divisor=1)
    _recompute(pmr, [([torch.ones(2, 2), torch.ones(2, 2)], torch.tensor([0, 1]))], None)
    torch.testing.assert_close(pmr.prototypes[0][2], torch.zeros(2))  # never seen: zeros, not NaN
    previous = [p.clone() for p in pmr.prototypes]
    _recompute(pmr, [([torch.full((1, 2), 3.0)] * 2, torch.tensor([0]))], 1)
    for m in range(2):
        torch.testing.assert_close(pmr.prototypes[m][1:], previous[m][1:])
        assert torch.isfinite(pmr.prototypes[m]).all()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_pmr_loss_and_weights_equal_official_train_step(seed, alpha):
    pmr = PMR(num_classes=3, alpha=alpha)
    _recompute(pmr, _batches(2, 10, 100 + seed), None)
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(6, 4, generator=generator, requires_grad=True)
    v = torch.randn(6, 5, generator=generator, requires_grad=True)
    out = torch.randn(6, 3, generator=generator, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    _, weights = pmr.prototype_terms([a, v], labels)
    ours = pmr.loss(F.cross_entropy(out, labels), [a, v], labels)
    theirs, coefficients = ref.pmr_two_modalities(a, v, out, labels, *pmr.prototypes, alpha)
    assert weights == [float(c) for c in coefficients]
    assert sorted(weights) == [0.0, alpha]  # exactly the weaker modality gets alpha
    torch.testing.assert_close(ours, theirs)
    for g_ours, g_theirs in zip(
        torch.autograd.grad(ours, [a, v, out]), torch.autograd.grad(theirs, [a, v, out])
    ):
        torch.testing.assert_close(g_ours, g_theirs)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 10.0), min_size=2, max_size=4), st.floats(0.0, 3.0))
def test_pmr_loss_weights_extend_the_two_modality_rule(scores, alpha):
    weights = loss_weights(scores, alpha)
    best = max(scores)
    assert weights == [0.0 if s == best else alpha for s in scores]
    if len(scores) == 2 and scores[1] > 0:
        ratio = scores[0] / scores[1]
        official = [0.0, alpha] if ratio > 1 else [alpha, 0.0] if ratio < 1 else [0.0, 0.0]
        assert weights == official


def test_pmr_three_modalities_train_the_weaker_two():
    pmr = PMR(num_classes=2, alpha=2.0, subset_divisor=1)
    prototypes = torch.tensor([[0.0, 0.0], [4.0, 0.0]])
    pmr.load_state_dict(
        {"prototypes": [prototypes.clone() for _ in range(3)], "sums": None, "counts": None}
    )
    labels = torch.tensor([0, 1])
    near = torch.tensor([[0.1, 0.0], [3.9, 0.0]])  # close to the right prototypes: best score
    mid = torch.tensor([[1.5, 0.0], [2.5, 0.0]])
    far = torch.tensor([[3.0, 0.0], [1.0, 0.0]])  # closer to the wrong prototypes
    losses, weights = pmr.prototype_terms([mid, near, far], labels)
    assert weights == [2.0, 0.0, 2.0]
    assert losses[2] > losses[0] > losses[1]


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_pmr_state_round_trip_gives_the_same_losses_and_updates(num_modalities):
    original = PMR(num_classes=3, alpha=1.5, momentum=0.3)
    _recompute(original, _batches(num_modalities, 20, 7), None)
    original.start_prototypes()
    original.accumulate(*_batches(num_modalities, 1, 8)[0])  # killed halfway through a recompute
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    resumed = PMR(num_classes=3, alpha=1.5, momentum=0.3)
    resumed.load_state_dict(torch.load(buffer))
    for pmr in (original, resumed):
        pmr.accumulate(*_batches(num_modalities, 1, 9)[0])
        pmr.finish_prototypes(3)
    for ours, theirs in zip(resumed.prototypes, original.prototypes):
        assert torch.equal(ours, theirs)
    features, labels = _batches(num_modalities, 1, 10)[0]
    fused = torch.tensor(0.7)
    assert torch.equal(
        resumed.loss(fused, features, labels), original.loss(fused, features, labels)
    )


def test_pmr_validation_names_the_parameter():
    with pytest.raises(ValueError, match="momentum"):
        PMR(num_classes=3, momentum=1.0)
    with pytest.raises(ValueError, match="alpha"):
        PMR(num_classes=3, alpha=-0.1)
    with pytest.raises(ValueError, match="num_classes"):
        PMR(num_classes=1)
    with pytest.raises(ValueError, match="subset_divisor"):
        PMR(num_classes=3, subset_divisor=0)
    pmr = PMR(num_classes=3)
    with pytest.raises(RuntimeError, match="no prototypes yet"):
        pmr.prototype_terms([torch.zeros(2, 2)] * 2, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        pmr.accumulate([torch.zeros(2, 2)] * 2, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="keys"):
        pmr.load_state_dict({"prototypes": None})
    assert pmr.subset_batches(25) == 2 and pmr.subset_batches(5) == 1

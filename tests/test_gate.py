"""The gate equals "modify dL_mm/df_m by hand, then back-propagate it"."""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

import goal_plugin as gp
from tests._tiny import TinyMultimodal, loss_terms, make_batch

ALL = gp.list_strategies()


def gate_grads(model, inputs, labels, strategy, unimodal_weight):
    model.zero_grad(set_to_none=True)
    loss_terms(model, inputs, labels, strategy, unimodal_weight).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def reference_grads(model, inputs, labels, strategy, unimodal_weight, requires_grad=None):
    """Autograd for dL_mm/df_m, ``modify``, back-propagate, add the unimodal part."""
    model.zero_grad(set_to_none=True)
    feats = model.features(inputs)
    if requires_grad is not None:  # a frozen encoder: its feature is a leaf
        feats = [f if need else f.detach().requires_grad_() for f, need in zip(feats, requires_grad)]
    logits = [head(f) for head, f in zip(model.heads, feats)]
    fused_loss = F.cross_entropy(model.fusion(torch.cat(feats, dim=1)), labels)
    unimodal_loss = unimodal_weight * sum(F.cross_entropy(z, labels) for z in logits)
    feature_grads = torch.autograd.grad(fused_loss, feats, retain_graph=True)
    modified = strategy.modify(feature_grads, [z.detach() for z in logits], labels)
    fusion_params = list(model.fusion.parameters())
    for param, grad in zip(fusion_params, torch.autograd.grad(fused_loss, fusion_params, retain_graph=True)):
        param.grad = grad
    if unimodal_weight:
        unimodal_loss.backward(retain_graph=True)
    torch.autograd.backward(feats, modified)
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("unimodal_weight", [0.0, 1.0])
def test_gate_equals_manual_modification(name, num_modalities, unimodal_weight):
    torch.manual_seed(0)
    model = TinyMultimodal(num_modalities).double()
    inputs, labels = make_batch(num_modalities)
    inputs = [x.double() for x in inputs]
    strategy = gp.create_strategy(name)
    via_gate = gate_grads(model, inputs, labels, strategy, unimodal_weight)
    by_hand = reference_grads(model, inputs, labels, strategy, unimodal_weight)
    for key, grad in by_hand.items():
        assert torch.allclose(via_gate[key], grad, atol=1e-12), key


@pytest.mark.parametrize("name", ALL)
def test_unimodal_heads_and_fusion_gradients_unchanged(name):
    torch.manual_seed(1)
    model = TinyMultimodal(2).double()
    inputs, labels = make_batch(2)
    inputs = [x.double() for x in inputs]
    plain = gate_grads(model, inputs, labels, gp.create_strategy("none"), 1.0)
    modified = gate_grads(model, inputs, labels, gp.create_strategy(name), 1.0)
    for key in plain:
        if key.startswith(("heads.", "fusion.")):
            assert torch.equal(plain[key], modified[key]), key


def test_gate_is_identity_in_forward_and_costs_one_backward():
    torch.manual_seed(2)
    model = TinyMultimodal(2)
    inputs, labels = make_batch(2)
    calls = {"encoder_backward": 0, "modify": 0}
    model.encoders[0][0].weight.register_hook(
        lambda grad: calls.__setitem__("encoder_backward", calls["encoder_backward"] + 1)
    )
    strategy = gp.create_strategy("goal")
    original_modify = strategy.modify

    def counting_modify(*args, **kwargs):
        calls["modify"] += 1
        return original_modify(*args, **kwargs)

    strategy.modify = counting_modify
    feats = model.features(inputs)
    gated = strategy.gate(*feats, logits=[h(f) for h, f in zip(model.heads, feats)], labels=labels)
    for f, g in zip(feats, gated):
        assert torch.equal(f, g)
    loss_terms(model, inputs, labels, strategy).backward()
    assert calls == {"encoder_backward": 1, "modify": 1}


def test_gate_passes_through_without_grad():
    strategy = gp.create_strategy("goal")
    feats = [torch.randn(4, 3), torch.randn(4, 3)]
    logits = [torch.randn(4, 2), torch.randn(4, 2)]
    with torch.no_grad():
        out = strategy.gate(*feats, logits=logits)
    assert out[0] is feats[0] and out[1] is feats[1]


READERS = [n for n in ALL if gp.create_strategy(n).requires_logits or gp.create_strategy(n).requires_labels]


@pytest.mark.parametrize("name", READERS)
def test_gate_checks_logits_and_labels_only_when_it_acts(name):
    strategy = gp.create_strategy(name)
    feats = [torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)]
    with torch.no_grad():  # evaluation (OGM-GE's valid()): identity, nothing read, nothing checked
        out = strategy.gate(*feats)
    assert out[0] is feats[0] and out[1] is feats[1]
    frozen = [f.detach() for f in feats]  # nothing requires grad: nothing to modify either
    assert strategy.gate(*frozen)[0] is frozen[0]
    with pytest.raises(ValueError, match="logits" if strategy.requires_logits else "needs the labels"):
        sum(g.sum() for g in strategy.gate(*feats)).backward()  # training: backward reads them
    if strategy.requires_labels:
        gated = strategy.gate(*feats, logits=[torch.randn(4, 2), torch.randn(4, 2)])
        with pytest.raises(ValueError, match="needs the labels"):
            sum(g.sum() for g in gated).backward()
    with pytest.raises(ValueError, match="batch size"):  # shapes are still checked when it acts
        strategy.gate(feats[0], torch.randn(5, 3, requires_grad=True))


@pytest.mark.parametrize("name", ["goal", "go", "ogm_go"])
def test_frozen_encoder_gradient_still_informs_the_others(name):
    torch.manual_seed(3)
    model = TinyMultimodal(2).double()
    inputs, labels = make_batch(2)
    inputs = [x.double() for x in inputs]
    strategy = gp.create_strategy(name)
    model.zero_grad(set_to_none=True)
    feats = model.features(inputs)
    feats[0] = feats[0].detach()  # encoder 0 frozen: its feature does not require grad
    logits = [head(f) for head, f in zip(model.heads, feats)]
    gated = strategy.gate(*feats, logits=logits, labels=labels)
    F.cross_entropy(model.fusion(torch.cat(gated, 1)), labels).backward()
    via_gate = model.encoders[1][0].weight.grad.clone()
    by_hand = reference_grads(model, inputs, labels, strategy, 0.0, requires_grad=[False, True])
    assert torch.allclose(via_gate, by_hand["encoders.1.0.weight"], atol=1e-12)
    assert model.encoders[0][0].weight.grad is None or name == "never"


def test_gate_under_cpu_autocast_returns_incoming_dtype_with_float32_math():
    torch.manual_seed(4)
    model = TinyMultimodal(2)
    inputs, labels = make_batch(2)
    strategy = gp.create_strategy("goal")
    seen = {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = model.features(inputs)
        logits = [head(f) for head, f in zip(model.heads, feats)]
        gated = strategy.gate(*feats, logits=logits, labels=labels)
        gated[0].register_hook(lambda g: seen.__setitem__("incoming", g.detach().clone()))
        feats[0].register_hook(lambda g: seen.__setitem__("outgoing", g.detach().clone()))
        fused = model.fusion(torch.cat(gated, dim=1))
        loss = F.cross_entropy(fused, labels)
    loss.backward()
    assert seen["incoming"].dtype == torch.bfloat16
    assert seen["outgoing"].dtype == torch.bfloat16
    assert all(torch.isfinite(p.grad).all() for p in model.encoders.parameters())
    weights = strategy.last_weights
    assert weights.dtype == torch.float32


def test_dataparallel_wrapper_on_cpu():
    torch.manual_seed(5)
    model = TinyMultimodal(2).double()
    inputs, labels = make_batch(2)
    inputs = [x.double() for x in inputs]
    strategy = gp.create_strategy("goal")
    bare = gate_grads(model, inputs, labels, strategy, 1.0)
    wrapped = torch.nn.DataParallel(model)
    wrapped.zero_grad(set_to_none=True)
    fused, logits = wrapped(inputs, labels, strategy)
    (F.cross_entropy(fused, labels) + sum(F.cross_entropy(z, labels) for z in logits)).backward()
    for name, param in wrapped.named_parameters():
        assert torch.allclose(param.grad, bare[name.removeprefix("module.")], atol=1e-12)


def _ddp_worker(rank, world_size, init_file, out_dir):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.manual_seed(0)
    model = TinyMultimodal(2).double()
    reference_model = copy.deepcopy(model)
    inputs, labels = make_batch(2, batch=8)
    shard = slice(rank * 4, rank * 4 + 4)
    inputs, labels = [x[shard].double() for x in inputs], labels[shard]
    strategy = gp.create_strategy("goal")
    ddp = DistributedDataParallel(model)
    fused, logits = ddp(inputs, labels, strategy)
    (F.cross_entropy(fused, labels) + sum(F.cross_entropy(z, labels) for z in logits)).backward()
    expected = reference_grads(reference_model, inputs, labels, gp.create_strategy("goal"), 1.0)
    for grad in expected.values():  # DDP averages the shards' gradients
        dist.all_reduce(grad)
        grad /= world_size
    ok = all(torch.allclose(p.grad, expected[n], atol=1e-12) for n, p in model.named_parameters())
    with open(os.path.join(out_dir, f"rank{rank}"), "w") as handle:
        handle.write(str(ok))
    dist.barrier()  # a rank tearing gloo down while its peer still sends aborts (torch 2.14)
    dist.destroy_process_group()


def test_gate_inside_ddp_replicas(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    assert [(tmp_path / f"rank{r}").read_text() for r in range(2)] == ["True", "True"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ALL)
def test_gate_on_cuda_with_autocast(name):
    torch.manual_seed(6)
    model = TinyMultimodal(2).cuda()
    inputs, labels = make_batch(2)
    inputs, labels = [x.cuda() for x in inputs], labels.cuda()
    reference = gate_grads(copy.deepcopy(model).double().cpu(), [x.double().cpu() for x in inputs], labels.cpu(), gp.create_strategy(name), 1.0)
    strategy = gp.create_strategy(name)
    with torch.autocast("cuda", dtype=torch.float16):
        loss = loss_terms(model, inputs, labels, strategy)
    loss.backward()
    for key, param in model.named_parameters():
        assert torch.isfinite(param.grad).all()
        assert torch.allclose(param.grad.double().cpu(), reference[key], atol=5e-2, rtol=5e-2), key


# ------------------------------------------------------------ post-backward
def _ogm_ge_step(model, inputs, labels, prefixes, seed=123):
    strategy = gp.create_strategy("ogm_ge", alpha=0.5)
    model.zero_grad(set_to_none=True)
    fused, logits = model(inputs, labels, strategy)
    F.cross_entropy(fused, labels).backward()
    with_grad = lambda: {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}  # noqa: E731
    before = with_grad()
    torch.manual_seed(seed)
    strategy.post_backward(model.named_parameters(), prefixes)
    return strategy, before, with_grad()


def test_ogm_ge_noise_follows_the_official_formula():
    torch.manual_seed(7)
    model = TinyMultimodal(2, conv=True).double()
    inputs, labels = make_batch(2)
    inputs = [x.double() for x in inputs]
    strategy, before, after = _ogm_ge_step(model, inputs, labels, ["convs.0", "convs.1"])
    coefficients = strategy.last_weights
    torch.manual_seed(123)
    for m in range(2):
        name = f"convs.{m}.weight"
        original = before[name] / coefficients[m]  # fused-loss-only: grad = k_m * g_m
        expected = before[name] + torch.randn_like(before[name]) * (original.std() + 1e-8)
        assert torch.allclose(after[name], expected, atol=1e-12)
        assert torch.equal(after[f"convs.{m}.bias"], before[f"convs.{m}.bias"])  # not 4-D


def test_post_backward_same_with_and_without_module_prefix():
    torch.manual_seed(8)
    model = TinyMultimodal(2, conv=True).double()
    inputs, labels = make_batch(2)
    inputs = [x.double() for x in inputs]
    _, _, bare = _ogm_ge_step(model, inputs, labels, ["convs.0", "convs.1"])
    wrapped = torch.nn.DataParallel(model)
    _, _, prefixed = _ogm_ge_step(wrapped, inputs, labels, ["convs.0", "convs.1"])
    assert set(prefixed) == {f"module.{n}" for n in bare}
    for name, grad in bare.items():
        assert torch.equal(prefixed[f"module.{name}"], grad)


def test_post_backward_refuses_prefixes_that_match_nothing():
    torch.manual_seed(9)
    model = TinyMultimodal(2, conv=True)
    inputs, labels = make_batch(2)
    with pytest.raises(ValueError, match="audio_net"):
        _ogm_ge_step(model, inputs, labels, ["audio_net", "visual_net"])


def test_post_backward_before_backward_is_an_error():
    with pytest.raises(RuntimeError, match="after loss.backward"):
        gp.create_strategy("ogm_ge").post_backward([], ["a", "b"])


@pytest.mark.parametrize("name", [n for n in ALL if gp.create_strategy(n).parameter_hook is None])
def test_post_backward_is_a_no_op_without_a_parameter_hook(name):
    torch.manual_seed(10)
    model = TinyMultimodal(2, conv=True)
    inputs, labels = make_batch(2)
    strategy = gp.create_strategy(name)
    loss_terms(model, inputs, labels, strategy).backward()
    before = [p.grad.clone() for p in model.parameters()]
    strategy.post_backward(model.named_parameters(), ["convs.0", "convs.1"])
    assert all(torch.equal(b, p.grad) for b, p in zip(before, model.parameters()))

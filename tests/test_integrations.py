"""Integrations: attach, the post-backward modes, the BalanceMM trainer, the docs' loop.

Every path is compared with the gate inserted by hand on the same model, in float64:
bit for bit where the path is the gate (attach, the BalanceMM trainer), to 1e-12
where it adds a correction to the plain gradient (the post-backward modes).
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import goal_plugin as gp
from goal_plugin.integrations import (
    attached,
    detach,
    feature_space_backward,
    parameter_space_backward,
)
from goal_plugin.integrations import balancemm as bmm
from tests import _balancemm_like as like
from tests import _ogm_ge_like as ogm_like
from tests._reference import gradient_orthogonalisation
from tests._tiny import TinyMultimodal, loss_terms, make_batch

ROOT = Path(__file__).resolve().parents[1]
ALL = gp.list_strategies()
# The recipes that are their gate alone (attach and BalanceMM apply only the gate).
GATE_ONLY = [name for name in ALL if gp.create_strategy(name).training_method is None and gp.create_strategy(name).only_modality is None]
WITHOUT_DIRECTION = [n for n in ALL if gp.create_strategy(n).direction is None]
WITH_DIRECTION = [n for n in ALL if gp.create_strategy(n).direction is not None]


def grads_of(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same_grads(actual, expected, atol=0.0):
    assert actual.keys() == expected.keys()
    for name, grad in expected.items():
        assert torch.allclose(actual[name], grad, rtol=0, atol=atol), name


def tiny(num_modalities=2, seed=0):
    torch.manual_seed(seed)
    model = TinyMultimodal(num_modalities).double()
    inputs, labels = make_batch(num_modalities)
    return model, [x.double() for x in inputs], labels


def gate_path_grads(model, inputs, labels, strategy, unimodal_weight=1.0):
    model.zero_grad(set_to_none=True)
    loss_terms(model, inputs, labels, strategy, unimodal_weight).backward()
    return grads_of(model)


# ------------------------------------------------------------------ attach
class PositionalFusion(nn.Module):
    def __init__(self, linear):
        super().__init__()
        self.linear = linear

    def forward(self, *features):
        return self.linear(torch.cat(features, dim=1))


class SequenceFusion(PositionalFusion):
    def forward(self, features):
        return self.linear(torch.cat(list(features), dim=1))


class DictFusion(PositionalFusion):
    def forward(self, features):
        return self.linear(torch.cat(list(features.values()), dim=1))


LAYOUTS = {"positional": PositionalFusion, "sequence": SequenceFusion, "mapping": DictFusion}
KEYS = ("audio", "visual", "text")


def call_fusion(fusion, layout, feats):
    if layout == "positional":
        return fusion(*feats)
    if layout == "sequence":
        return fusion(list(feats))
    return fusion(dict(zip(KEYS, feats)))


def logits_fn_for(layout, heads):
    if layout == "positional":
        return lambda *feats: [head(f) for head, f in zip(heads, feats)]
    if layout == "sequence":
        return lambda feats: [head(f) for head, f in zip(heads, feats)]
    return lambda feats: {key: head(feats[key]) for key, head in zip(KEYS, heads)}


def fusion_step_grads(model, fusion, layout, inputs, labels, handle=None):
    model.zero_grad(set_to_none=True)
    feats = model.features(inputs)
    if handle is not None and handle.strategy.requires_labels:
        handle.set_labels(labels)
    fused = call_fusion(fusion, layout, feats)
    unimodal = sum(F.cross_entropy(head(f), labels) for head, f in zip(model.heads, feats))
    (F.cross_entropy(fused, labels) + unimodal).backward()
    return fused.detach(), grads_of(model)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", GATE_ONLY)
def test_attach_equals_the_gate_inserted_by_hand(name, layout):
    model, inputs, labels = tiny()
    fusion = LAYOUTS[layout](model.fusion)
    strategy = gp.create_strategy(name)
    logits_fn = logits_fn_for(layout, model.heads) if strategy.requires_logits else None
    handle = gp.attach(fusion, strategy, logits_fn)
    _, via_attach = fusion_step_grads(model, fusion, layout, inputs, labels, handle)
    handle.remove()
    assert_same_grads(via_attach, gate_path_grads(model, inputs, labels, gp.create_strategy(name)))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_attach_with_three_modalities(layout):
    model, inputs, labels = tiny(num_modalities=3)
    fusion = LAYOUTS[layout](model.fusion)
    handle = gp.attach(fusion, gp.create_strategy("goal"), logits_fn_for(layout, model.heads))
    _, via_attach = fusion_step_grads(model, fusion, layout, inputs, labels, handle)
    handle.remove()
    assert_same_grads(via_attach, gate_path_grads(model, inputs, labels, gp.create_strategy("goal")))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_remove_restores_the_original_behaviour_exactly(layout):
    model, inputs, labels = tiny(seed=1)
    fusion = LAYOUTS[layout](model.fusion)
    out_before, grads_before = fusion_step_grads(model, fusion, layout, inputs, labels)
    handle = gp.attach(fusion, gp.create_strategy("goal"), logits_fn_for(layout, model.heads))
    _, grads_attached = fusion_step_grads(model, fusion, layout, inputs, labels, handle)
    handle.remove()
    out_after, grads_after = fusion_step_grads(model, fusion, layout, inputs, labels)
    assert not fusion._forward_pre_hooks
    assert torch.equal(out_before, out_after)
    assert all(torch.equal(grads_before[k], grads_after[k]) for k in grads_before)
    # ... and the strategy really was active in between.
    assert not torch.allclose(grads_attached["encoders.0.0.weight"], grads_before["encoders.0.0.weight"])
    handle.remove()  # idempotent
    gp.attach(fusion, gp.create_strategy("go")).remove()  # attachable again


def test_attach_labels_are_required_by_ogm_and_used_once():
    model, inputs, labels = tiny()
    fusion = PositionalFusion(model.fusion)
    handle = gp.attach(fusion, gp.create_strategy("ogm"), logits_fn_for("positional", model.heads))
    with pytest.raises(ValueError, match="set_labels"):  # the backward, where OGM reads them, says so
        fusion(*model.features(inputs)).sum().backward()
    handle.set_labels(labels)
    fusion(*model.features(inputs)).sum().backward()
    with pytest.raises(ValueError, match="set_labels"):  # a stale batch's labels are never reused
        fusion(*model.features(inputs)).sum().backward()
    with torch.no_grad():
        fusion(*model.features(inputs))  # evaluation: the gate does nothing, so it needs no labels
    handle.remove()


def test_attach_skips_the_gate_and_the_logits_without_grad():
    model, inputs, _ = tiny()
    fusion = PositionalFusion(model.fusion)
    calls = []

    def logits_fn(*feats):
        calls.append(1)
        return [head(f) for head, f in zip(model.heads, feats)]

    handle = gp.attach(fusion, gp.create_strategy("goal"), logits_fn)
    with torch.no_grad():
        feats = model.features(inputs)
        gated_out = fusion(*feats)
    handle.remove()
    assert calls == [] and torch.equal(gated_out, fusion(*feats))


def test_attach_refuses_bad_arguments():
    model, inputs, _ = tiny()
    fusion = PositionalFusion(model.fusion)
    with pytest.raises(ValueError, match="logits_fn"):
        gp.attach(fusion, gp.create_strategy("goal"))
    with pytest.raises(ValueError, match="Strategy"):
        gp.attach(fusion, "go")
    handle = gp.attach(fusion, gp.create_strategy("go"))
    with pytest.raises(ValueError, match="already has go attached"):
        gp.attach(fusion, gp.create_strategy("go"))
    with pytest.raises(ValueError, match="not a tensor"):
        fusion(model.features(inputs)[0], "concat")
    handle.remove()
    dict_fusion = DictFusion(model.fusion)
    handle = gp.attach(dict_fusion, gp.create_strategy("al"), lambda feats: [z for z in feats.values()])
    with pytest.raises(ValueError, match="dict with the features' keys"):
        dict_fusion(dict(zip(KEYS, model.features(inputs))))
    handle.remove()


def test_attached_and_detach_find_and_remove_the_handle():
    model, inputs, labels = tiny()
    fusion = PositionalFusion(model.fusion)
    out_before, grads_before = fusion_step_grads(model, fusion, "positional", inputs, labels)
    assert attached(fusion) is None and detach(fusion) is None
    handle = gp.attach(fusion, gp.create_strategy("goal"), logits_fn_for("positional", model.heads))
    assert attached(fusion) is handle and handle.module is fusion
    assert detach(fusion) is handle
    assert attached(fusion) is None and detach(fusion) is None
    out_after, grads_after = fusion_step_grads(model, fusion, "positional", inputs, labels)
    assert not fusion._forward_pre_hooks and not fusion._forward_hooks
    assert torch.equal(out_before, out_after)
    assert all(torch.equal(grads_before[k], grads_after[k]) for k in grads_before)
    again = gp.attach(fusion, gp.create_strategy("go"))  # attachable again
    assert attached(fusion) is again
    again.remove()
    assert attached(fusion) is None


# ------------------------------------------- attach on OGM-GE's fusion modules
def ogm_ge_model(fusion, seed=0):
    torch.manual_seed(seed)
    model = ogm_like.AVClassifier(fusion).double()
    heads = nn.ModuleList([nn.Linear(6, 4), nn.Linear(6, 4)]).double()
    return model, heads


def grads_of_all(*modules):
    return {f"{i}.{k}": g for i, m in enumerate(modules) for k, g in grads_of(m).items()}


def ogm_ge_reference(model, heads, batch, strategy, heads_read="features"):
    """The gate by hand between the encoders and the fusion module; the heads read the
    encoders' features (the correct gradients) or the gated ones (what must not happen)."""
    audio, visual, labels = batch
    model.zero_grad(set_to_none=True)
    heads.zero_grad(set_to_none=True)
    a, v = model.features(audio, visual)
    gated = strategy.gate(a, v, logits=(heads[0](a), heads[1](v)), labels=labels)
    head_inputs = (a, v) if heads_read == "features" else gated
    out = model.fusion_module(*gated)[-1]
    unimodal = F.cross_entropy(heads[0](head_inputs[0]), labels) + F.cross_entropy(heads[1](head_inputs[1]), labels)
    (F.cross_entropy(out, labels) + unimodal).backward()
    return grads_of_all(model, heads)


@pytest.mark.parametrize("fusion", ["concat", "sum", "film"])
@pytest.mark.parametrize("name", GATE_ONLY)
def test_attach_hands_back_ungated_features_from_an_ogm_ge_fusion(fusion, name):
    # x, y, out = fusion(x, y): unimodal heads on the returned x, y must train the
    # encoders without the strategy, as heads on the encoders' features do.
    model, heads = ogm_ge_model(fusion)
    audio, visual, labels = batch = ogm_like.make_batch()
    handle = gp.attach(model.fusion_module, gp.create_strategy(name), lambda a, v: (heads[0](a), heads[1](v)))
    handle.set_labels(labels)
    a, v, out = model(audio, visual)
    (F.cross_entropy(out, labels) + F.cross_entropy(heads[0](a), labels) + F.cross_entropy(heads[1](v), labels)).backward()
    handle.remove()
    actual = grads_of_all(model, heads)
    assert_same_grads(actual, ogm_ge_reference(model, heads, batch, gp.create_strategy(name)), atol=1e-12)
    if name == "goal":  # the wrong reading (heads on the gated features) differs: the test can tell
        wrong = ogm_ge_reference(model, heads, batch, gp.create_strategy(name), heads_read="gated")
        assert not torch.allclose(actual["0.audio_net.0.weight"], wrong["0.audio_net.0.weight"], atol=1e-6)


class FusionReturningADict(PositionalFusion):
    def forward(self, features):
        return {"features": features, "output": self.linear(torch.cat(list(features.values()), dim=1))}


def test_attach_hands_back_ungated_features_inside_returned_containers():
    model, inputs, labels = tiny()
    fusion = FusionReturningADict(model.fusion)
    handle = gp.attach(fusion, gp.create_strategy("goal"), logits_fn_for("mapping", model.heads))
    returned = fusion(dict(zip(KEYS, model.features(inputs))))
    unimodal = sum(F.cross_entropy(head(returned["features"][k]), labels) for head, k in zip(model.heads, KEYS))
    (F.cross_entropy(returned["output"], labels) + unimodal).backward()
    handle.remove()
    assert_same_grads(grads_of(model), gate_path_grads(model, inputs, labels, gp.create_strategy("goal")), atol=1e-12)


def test_attach_on_a_gated_fusion_refuses_a_loss_on_a_second_output():
    # GatedFusion returns projections computed from the gated inputs: the fused output
    # alone is the gate's result; a loss on a projection as well cannot be told apart.
    model, heads = ogm_ge_model("gated")
    audio, visual, labels = ogm_like.make_batch()
    handle = gp.attach(model.fusion_module, gp.create_strategy("goal"), lambda a, v: (heads[0](a), heads[1](v)))
    out_x, _, out = model(audio, visual)
    with pytest.raises(RuntimeError, match=r"output\[[02]\] and output\[[02]\] of GatedFusion"):
        (F.cross_entropy(out, labels) + F.cross_entropy(heads[0](out_x), labels)).backward()
    with torch.no_grad():
        model(audio, visual)  # evaluation is untouched
    model.zero_grad(set_to_none=True)
    _, _, out = model(audio, visual)
    F.cross_entropy(out, labels).backward()
    actual = grads_of_all(model)
    handle.remove()
    model.zero_grad(set_to_none=True)
    a, v = model.features(audio, visual)
    gated = gp.create_strategy("goal").gate(a, v, logits=(heads[0](a), heads[1](v)))
    F.cross_entropy(model.fusion_module(*gated)[2], labels).backward()
    assert_same_grads(actual, grads_of_all(model), atol=1e-12)


# ------------------------------------------------------------ post-backward
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("unimodal_weight", [0.0, 1.0])
def test_feature_space_backward_equals_the_gate(name, num_modalities, unimodal_weight):
    model, inputs, labels = tiny(num_modalities)
    strategy = gp.create_strategy(name)
    model.zero_grad(set_to_none=True)
    feats = model.features(inputs)
    logits = [head(f) for head, f in zip(model.heads, feats)]
    fused_loss = F.cross_entropy(model.fusion(torch.cat(feats, dim=1)), labels)
    unimodal_loss = unimodal_weight * sum(F.cross_entropy(z, labels) for z in logits)
    feature_space_backward(
        strategy, feats, fused_loss, unimodal_loss=unimodal_loss, logits=logits, labels=labels
    )
    expected = gate_path_grads(model, inputs, labels, gp.create_strategy(name), unimodal_weight)
    assert_same_grads(grads_of(model), expected, atol=1e-12)  # d + (d' - d) rounds like d'


def test_feature_space_backward_refuses_gathered_copies():
    model = like.BalanceLikeModel().double()
    wrapped = like.GatheringParallel(model)
    batch = like.make_batch()
    wrapped(batch)
    feats = [model.encoder_result[m] for m in model.modalitys]
    loss = F.cross_entropy(model.unimodal_result["output"], batch["label"])
    with pytest.raises(ValueError, match="not on the graph of fused_loss"):
        feature_space_backward(gp.create_strategy("go"), feats, loss)


def parameter_space_grads(model, inputs, labels, strategy, unimodal_weight=1.0):
    model.zero_grad(set_to_none=True)
    feats = model.features(inputs)
    logits = [head(f) for head, f in zip(model.heads, feats)]
    fused_loss = F.cross_entropy(model.fusion(torch.cat(feats, dim=1)), labels)
    unimodal_loss = unimodal_weight * sum(F.cross_entropy(z, labels) for z in logits)
    stats = parameter_space_backward(
        strategy, list(model.encoders), fused_loss, unimodal_loss=unimodal_loss, logits=logits, labels=labels
    )
    return grads_of(model), stats


@pytest.mark.parametrize("name", WITHOUT_DIRECTION)
def test_parameter_space_equals_the_gate_for_magnitude_steps(name):
    # g_m is linear in dL_mm/df_m, so scaling either by w_m is the same.
    model, inputs, labels = tiny(3)
    actual, stats = parameter_space_grads(model, inputs, labels, gp.create_strategy(name))
    strategy = gp.create_strategy(name)
    assert_same_grads(actual, gate_path_grads(model, inputs, labels, strategy), atol=1e-12)
    assert stats["weights"] == pytest.approx(strategy.last_stats["weights"], abs=1e-12)


@pytest.mark.parametrize("name", WITH_DIRECTION)
def test_parameter_space_applies_go_to_flattened_parameter_gradients(name):
    model, inputs, labels = tiny(2, seed=4)
    strategy = gp.create_strategy(name)
    actual, _ = parameter_space_grads(model, inputs, labels, strategy)
    # Literal Algorithm 2 on the encoders' concatenated fused-loss gradients.
    model.zero_grad(set_to_none=True)
    feats = model.features(inputs)
    logits = [head(f).detach() for head, f in zip(model.heads, feats)]
    fused_loss = F.cross_entropy(model.fusion(torch.cat(feats, dim=1)), labels)
    params = [list(encoder.parameters()) for encoder in model.encoders]
    fused = [torch.cat([g.flatten() for g in torch.autograd.grad(fused_loss, p, retain_graph=True)]) for p in params]
    weights = strategy.magnitude.weights(logits, labels) if strategy.magnitude else torch.ones(2)
    expected_vectors = gradient_orthogonalisation([(w * g).tolist() for w, g in zip(weights, fused)])
    plain = gate_path_grads(model, inputs, labels, gp.create_strategy("none"), 1.0)
    for m, param_list in enumerate(params):
        unimodal = torch.cat([(plain[f"encoders.{m}.{k}"]) .flatten() for k in ("0.weight", "0.bias")]) - fused[m]
        expected = torch.tensor(expected_vectors[m], dtype=torch.float64) + unimodal
        got = torch.cat([actual[f"encoders.{m}.{k}"].flatten() for k in ("0.weight", "0.bias")])
        assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    for key in plain:
        if not key.startswith("encoders."):
            assert torch.allclose(actual[key], plain[key], rtol=0, atol=1e-12), key
    assert not torch.allclose(actual["encoders.0.0.weight"], plain["encoders.0.0.weight"])


def test_parameter_space_go_needs_equal_parameter_counts():
    model, inputs, labels = tiny()
    model.encoders[1] = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 6)).double()
    with pytest.raises(ValueError, match="equal parameter counts; got \\[36, 78\\]"):
        parameter_space_grads(model, inputs, labels, gp.create_strategy("go"))
    parameter_space_grads(model, inputs, labels, gp.create_strategy("al"))  # no direction step: fine


@pytest.mark.parametrize("mode, passes", [("gate", 1), ("feature", 1), ("parameter", 2)])
def test_backward_passes_through_the_encoders(mode, passes):
    model, inputs, labels = tiny()
    calls = []
    model.encoders[0][0].weight.register_hook(lambda grad: calls.append(1))
    strategy = gp.create_strategy("goal")
    if mode == "gate":
        loss_terms(model, inputs, labels, strategy).backward()
    elif mode == "parameter":
        parameter_space_grads(model, inputs, labels, strategy)
    else:
        feats = model.features(inputs)
        logits = [head(f) for head, f in zip(model.heads, feats)]
        fused_loss = F.cross_entropy(model.fusion(torch.cat(feats, dim=1)), labels)
        feature_space_backward(strategy, feats, fused_loss, logits=logits)
    assert len(calls) == passes


# --------------------------------------------------------------- BalanceMM
Trainer = bmm.build_trainer_class(like.BaseTrainerStandIn)
PARA = {"max_epochs": 3, "grad_accum_steps": 1, "logger": None}
BOOKKEEPING = {"base_para": {"max_epochs": 3}, "name": "GOAL"}


def gate_reference(model, batch, strategy, harness, epoch, modalities):
    """The gate by hand on a bare copy: features, fusion-slice logits, gate, fusion."""
    model.zero_grad(set_to_none=True)
    labels = batch["label"]
    feats = [model.modality_encoder[m](batch[m]) for m in modalities]
    weight, bias = model.fusion_module.fc_out.weight, model.fusion_module.fc_out.bias
    width = feats[0].shape[1]
    slices = [f @ weight[:, i * width : (i + 1) * width].T + bias / len(feats) for i, f in enumerate(feats)]
    if harness.modulates(epoch):
        feats = strategy.gate(*feats, logits=slices, labels=labels)
    loss = F.cross_entropy(model.fusion_module(dict(zip(modalities, feats))), labels)
    loss = loss + harness.unimodal_weight(epoch) * sum(F.cross_entropy(z, labels) for z in slices)
    loss.backward()
    if harness.modulates(epoch):
        torch.manual_seed(11)
        strategy.post_backward(model.named_parameters(), [f"modality_encoder.{m}" for m in modalities])
    return grads_of(model)


def run_trainer_step(method_dict, epoch, wrapped, modalities=("audio", "visual"), seed=0):
    torch.manual_seed(seed)
    model = like.BalanceLikeModel(modalities).double()
    torch.manual_seed(seed)
    reference = like.BalanceLikeModel(modalities).double()
    batch = like.make_batch(modalities)
    trainer = Trainer(None, {**method_dict, **BOOKKEEPING}, PARA)
    trainer.current_epoch = epoch
    runner = like.GatheringParallel(model) if wrapped else model
    optimizer = torch.optim.SGD(runner.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(11)  # OGM-GE noise; the gate path reseeds the same way
    returned = optimizer.step(functools.partial(trainer.training_step, model=runner, batch=batch, batch_idx=0))
    actual = {name.removeprefix("module."): p.grad for name, p in runner.named_parameters() if p.grad is not None}
    strategy = gp.create_strategy(trainer.strategy.name, **trainer.strategy.hparams)
    expected = gate_reference(reference, batch, strategy, trainer.harness, epoch, list(modalities))
    return trainer, runner, returned, actual, expected


@pytest.mark.parametrize("name", sorted(set(ALL) - set(GATE_ONLY)))
def test_recipes_that_are_more_than_a_gate_are_refused_where_only_the_gate_runs(name):
    with pytest.raises(ValueError, match=f"strategy '{name}' .* the BalanceMM trainer cannot do"):
        bmm.settings_from_method_dict({"method": name})
    with pytest.raises(ValueError, match=f"strategy '{name}' .* goal_plugin.attach cannot do"):
        gp.attach(torch.nn.Linear(2, 2), gp.create_strategy(name))


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "wrapped"])
@pytest.mark.parametrize("name", GATE_ONLY)
def test_balancemm_trainer_step_equals_the_gate(name, wrapped):
    epoch = gp.create_strategy(name).defaults.modulation_starts
    trainer, runner, returned, actual, expected = run_trainer_step({"method": name}, epoch, wrapped)
    assert_same_grads(actual, expected)
    if name != "none":  # the strategy was active: not the plain gradient
        plain = run_trainer_step({"method": "none"}, epoch, wrapped)[3]
        assert not torch.allclose(actual["modality_encoder.audio.0.weight"], plain["modality_encoder.audio.0.weight"])
    assert isinstance(returned, torch.Tensor) and returned.dim() == 0
    assert torch.equal(trainer._current_train_return, returned.detach())
    inner = getattr(runner, "module", runner)  # BalanceMM's loop reads the predictions after the step
    assert torch.equal(runner.prediction["output"], inner.unimodal_result["output"].argmax(1))


def test_balancemm_trainer_with_three_modalities_and_hyperparameters():
    modalities = ("audio", "visual", "text")
    trainer, _, _, actual, expected = run_trainer_step(
        {"method": "goal", "temperature": 0.4}, 0, True, modalities=modalities
    )
    assert trainer.strategy.hparams["temperature"] == 0.4
    assert_same_grads(actual, expected)


@pytest.mark.parametrize(
    "method_dict, epoch",
    [
        ({"method": "arl"}, 2),  # warm-up: unimodal weight 1, no modulation
        ({"method": "ogm", "modulation_starts": 0, "modulation_ends": 1}, 2),  # window overridden
        ({"method": "goal", "modulation_starts": 3}, 1),
    ],
)
def test_balancemm_trainer_outside_the_modulation_window_trains_plainly(method_dict, epoch):
    trainer, _, _, actual, expected = run_trainer_step(method_dict, epoch, wrapped=True)
    assert not trainer.harness.modulates(epoch)  # so the reference applied no gate
    assert_same_grads(actual, expected)


def test_balancemm_method_dict_keys():
    strategy, harness = bmm.settings_from_method_dict(dict(bmm.BALANCEMM_TRAINER_PARA))
    assert strategy.name == "goal" and strategy.hparams["temperature"] == 1.0
    assert harness == strategy.defaults
    strategy, harness = bmm.settings_from_method_dict({**BOOKKEEPING})
    assert strategy.name == "goal"  # every key may be left out
    added_by_balancemm = {"base_para": {"max_epochs": 3, "logger": None, "should_train": False},
                          "name": "GOAL", "checkpoint_dir": "/runs/x/checkpoints"}
    strategy, _ = bmm.settings_from_method_dict({"method": "al", "temperature": 0.5, **added_by_balancemm})
    assert (strategy.name, strategy.hparams["temperature"]) == ("al", 0.5)
    strategy, harness = bmm.settings_from_method_dict(
        {"method": "ogm_ge", "alpha": 0.8, "modulation_ends": 20, "unimodal_loss_weight": 0.5}
    )
    assert strategy.hparams["alpha"] == 0.8
    assert (harness.modulation_ends, harness.unimodal_loss_weight) == (20, 0.5)
    with pytest.raises(ValueError, match="'temprature'.*did you mean 'temperature'"):
        bmm.settings_from_method_dict({"method": "goal", "temprature": 1.0})
    with pytest.raises(ValueError, match="'alpha'"):  # a hyperparameter of another method
        bmm.settings_from_method_dict({"method": "goal", "alpha": 0.1})
    with pytest.raises(ValueError, match="unknown strategy 'OGM_GE'"):
        bmm.settings_from_method_dict({"method": "OGM_GE"})
    with pytest.raises(ValueError, match="modulation_ends"):
        bmm.settings_from_method_dict({"method": "ogm", "modulation_starts": 5, "modulation_ends": 2})


def test_balancemm_trainer_needs_fusion_slice_logits_when_reading_logits():
    model = like.BalanceLikeModel().double()
    batch = like.make_batch()

    class SumFusionModel(like.BalanceLikeModel):  # BalanceMM fills slices for concat only
        def forward(self, batch):
            super().forward(batch)
            self.unimodal_result = {"output": self.unimodal_result["output"]}

    model = SumFusionModel().double()
    trainer = Trainer(None, {"method": "goal"}, PARA)
    with pytest.raises(ValueError, match="only for concat fusion"):
        trainer.training_step(model, batch, 0)
    trainer = Trainer(None, {"method": "go", "unimodal_loss_weight": 0.0}, PARA)
    trainer.training_step(model, batch, 0)  # GO reads no logits
    assert model.modality_encoder["audio"][0].weight.grad is not None


def test_balancemm_trainer_refuses_a_model_whose_output_is_not_the_fusion():
    class ExtraHeadModel(like.BalanceLikeModel):  # e.g. AMCo's linear after the fusion
        def forward(self, batch):
            super().forward(batch)
            self.unimodal_result["output"] = 2 * self.unimodal_result["output"]

    trainer = Trainer(None, {"method": "go"}, PARA)
    with pytest.raises(RuntimeError, match="does not reproduce"):
        trainer.training_step(ExtraHeadModel().double(), like.make_batch(), 0)


def test_goaltrainer_without_balancemm_is_a_clear_import_error():
    with pytest.raises(ImportError, match="BalanceMM's BaseTrainer"):
        bmm.GOALTrainer  # noqa: B018


def test_register_refuses_a_balancemm_without_its_trainer_list(monkeypatch):
    for name in ("balancemm", "balancemm.trainer", "models"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    with pytest.raises(RuntimeError, match="_trainer_modules.*GOAL_trainer.py"):
        bmm.register_with_balancemm()


def run_fake_balancemm(checkout, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "goal_plugin.integrations.balancemm", *args],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize("mode", ["train_and_test", "test"])
def test_balancemm_entry_points_build_goaltrainer_by_name(tmp_path, mode):
    # The trainer gets what BalanceMM's __main__, train.py / test.py and create_trainer
    # put into its dict: the config block, --alpha, base_para, name, checkpoint_dir.
    like.write_fake_balancemm(tmp_path)
    result = run_fake_balancemm(tmp_path, "--trainer", "GOALTrainer", "--alpha", "0.7", "--mode", mode)
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout.splitlines()[-1])
    assert (run["trainer"], run["strategy"], run["hparams"]["alpha"]) == ("GOALTrainer", "ogm_go", 0.7)
    assert run["max_epochs"] == 3 and run["checkpoint_dir"] and run["should_train"] == (mode != "test")
    assert run["device"] == "0" and run["loss"] == 3.0  # GPU branch; the resnet alias worked


@pytest.mark.parametrize("mode", ["train_and_test", "test"])
def test_balancemm_cpu_option_takes_its_cpu_branch(tmp_path, mode):
    like.write_fake_balancemm(tmp_path)
    result = run_fake_balancemm(tmp_path, "--cpu", "--trainer", "GOALTrainer", "--mode", mode)
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout.splitlines()[-1])
    assert run["device"] == "" and run["fabric"] == {"accelerator": "cpu", "devices": 1, "strategy": "auto"}
    assert run["loss"] == 3.0  # the bare model's validation step, with the wrapper's convention
    assert run["trainer"] == "GOALTrainer" and run["should_train"] == (mode != "test")


def test_docs_publish_the_config_block_and_every_known_issue():
    page = (ROOT / "docs" / "balancemm.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", page, re.DOTALL)]
    config = next(b for b in blocks if isinstance(b, dict) and "trainer_para" in b)
    assert config["trainer_para"]["GOAL"] == dict(bmm.BALANCEMM_TRAINER_PARA)
    for issue in bmm.KNOWN_ISSUES:
        assert issue.symptom in page, issue.symptom


# ------------------------------------------------------ the docs' plain loop
def test_plain_loop_gets_go_in_at_most_five_changed_lines():
    examples = ROOT / "docs" / "examples"
    plain, with_go = (examples / "plain_loop.py", examples / "plain_loop_go.py")
    diff = list(difflib.unified_diff(plain.read_text().splitlines(), with_go.read_text().splitlines(), n=0))
    changed = [line for line in diff[2:] if line[:1] in "+-"]
    assert 0 < len(changed) <= 5, changed
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # the two share the cores
    runs = [subprocess.Popen([sys.executable, str(p)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env) for p in (plain, with_go)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    losses = [float(re.search(r"final loss (\S+)", out).group(1)) for out, _ in outputs]
    assert losses[0] != losses[1]  # GO changed the training
    page = (ROOT / "docs" / "plain_pytorch.md").read_text()
    for line in changed:
        assert line in page, line  # the page shows this very diff


# ------------------------------------------- the OGM-GE-shaped examples
def diff_lines(base: Path, variant: Path) -> list[str]:
    """The added and removed lines of code (blank lines not counted)."""
    diff = difflib.unified_diff(base.read_text().splitlines(), variant.read_text().splitlines(), n=0)
    return [line for line in list(diff)[2:] if line[:1] in "+-" and line[1:].strip()]


def test_ogm_ge_examples_train_evaluate_and_are_the_diffs_the_page_shows():
    examples = ROOT / "docs" / "examples"
    base = examples / "ogm_ge_like.py"
    runs = {  # script -> arguments; GOAL and GO replace OGM's own block
        base: ["--epochs", "2"],
        examples / "ogm_ge_like_goal.py": ["--epochs", "2", "--modulation", "Normal"],
        examples / "ogm_ge_like_ogm_go.py": ["--epochs", "2", "--modulation", "Normal"],
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(p), *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for p, a in runs.items()]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in outputs]
    losses = [float(re.search(r"final loss (\S+)", out).group(1)) for out, _ in outputs]
    assert len(set(losses)) == 3  # each changed the training
    page = (ROOT / "docs" / "ogm_ge_loop.md").read_text()
    goal = diff_lines(base, examples / "ogm_ge_like_goal.py")
    ogm_go = diff_lines(base, examples / "ogm_ge_like_ogm_go.py")
    assert (len(goal), len(ogm_go)) == (7, 13)  # the counts the page states
    assert "7 diff lines" in page and "13 diff lines" in page
    for line in goal + ogm_go:
        assert line in page, line  # the page shows these very diffs

"""The ``agm`` recipe through the engine's TrainingMethod hook.

Each of the first steps of an ``agm`` run gives every parameter the gradient of a
transcription of the official training step (``GradMod`` of model/CREMAD_net.py
and model/URFunny_net.py with its backward hooks, the score / ratio / coefficient
loop of run/CREMAD_main.py and run/URFunny_main.py), and the controller's running
scores follow the official ``train_score_*``; runs with two and three modalities
resume bit-exactly and differ from plain training; the running scores absorb only
steps inside the modulation window; regression, a unimodal loss weight and bad
hyperparameters are refused with one-line errors.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from goal_plugin.engine import ConfigError, fit
from goal_plugin.engine.config import resolve_config
from goal_plugin.engine.trainer import _loader, prepare, train_epoch
from tests import _method_references as ref
from tests._fit_runs import deterministic, killed_and_resumed

VIEWS = {2: ["fou", "kar"], 3: ["fou", "kar", "pix"]}


def small(**overrides):
    return {"strategy": "agm", "epochs": 2, "diagnostics": False, "batch_size": 256, **overrides}


class ModalityOut(nn.Module):
    def forward(self, x):
        return x


class OfficialGradMod(nn.Module):
    """``GradMod`` around our network, line by line: the full pass in train mode, the
    zero-padded passes after ``self.net.eval()``, then ``self.net.train()``; each
    modality's Shapley output passes an identity module whose full backward hook
    multiplies the gradient by ``scale_m`` (set by ``update_scale``); the output is
    their sum. Modalities in the order (audio, visual[, text])."""

    def __init__(self, net, modalities):
        super().__init__()
        self.net = net
        self.modalities = modalities
        self.outs = nn.ModuleList(ModalityOut() for _ in modalities)
        self.scales = [1.0] * len(modalities)
        for index, module in enumerate(self.outs):
            module.register_full_backward_hook(lambda m, ginp, gout, i=index: (ginp[0].clone() * self.scales[i],))

    def update_scale(self, *coefficients):
        self.scales = list(coefficients)

    def padded(self, batch, pad):
        return {k: (torch.zeros_like(v) if k in pad else v) for k, v in batch.items()}

    def forward(self, batch):
        full = self.net(batch, detach_heads=True)  # our heads learn as probes (not in GradMod)
        total_out = full.fused_logits
        self.net.eval()
        if len(self.modalities) == 2:
            audio, visual = self.modalities
            pad_visual_out = self.net(self.padded(batch, {visual})).fused_logits
            pad_audio_out = self.net(self.padded(batch, {audio})).fused_logits
            self.net.train()
            m_a = self.outs[0](0.5 * (total_out - pad_audio_out + pad_visual_out))
            m_v = self.outs[1](0.5 * (total_out - pad_visual_out + pad_audio_out))
            passes = (total_out, pad_visual_out, pad_audio_out)
            return full, passes, m_a + m_v
        audio, visual, text = self.modalities
        pad_audio_out = self.net(self.padded(batch, {audio})).fused_logits
        pad_visual_out = self.net(self.padded(batch, {visual})).fused_logits
        pad_text_out = self.net(self.padded(batch, {text})).fused_logits
        pad_visual_audio_out = self.net(self.padded(batch, {visual, audio})).fused_logits
        pad_visual_text_out = self.net(self.padded(batch, {visual, text})).fused_logits
        pad_audio_text_out = self.net(self.padded(batch, {audio, text})).fused_logits
        self.net.train()
        m_a_out = self.outs[0]((total_out - pad_audio_out + pad_visual_text_out) / 3 + (
            pad_visual_out - pad_audio_text_out + pad_text_out - pad_visual_audio_out) / 6)
        m_v_out = self.outs[1]((total_out - pad_visual_out + pad_audio_text_out) / 3 + (
            pad_audio_out - pad_visual_text_out + pad_text_out - pad_visual_audio_out) / 6)
        m_t_out = self.outs[2]((total_out - pad_text_out + pad_visual_audio_out) / 3 + (
            pad_visual_out - pad_audio_text_out + pad_audio_out - pad_visual_text_out) / 6)
        passes = (total_out, pad_visual_out, pad_audio_out, pad_text_out, pad_visual_audio_out,
                  pad_visual_text_out, pad_audio_text_out)
        return full, passes, m_a_out + m_v_out + m_t_out


def recorded_agm_steps(config, steps):
    """The first ``steps`` training steps of a real ``agm`` run: per step the parameters
    and RNG state before it, its batch, and at the optimiser step the gradients and the
    controller's running scores."""
    run = prepare(resolve_config(config))
    method = run.strategy.training_method
    names = dict(run.model.named_parameters())
    records = []

    class Enough(Exception):
        pass

    def before_main_pass(module, args, kwargs):
        if module.training:  # the engine's own pass (the padded ones run in eval mode)
            records.append({
                "params": {n: p.detach().clone() for n, p in names.items()},
                "rng": torch.get_rng_state(),
                "batch": {k: v.clone() for k, v in args[0].items()},
            })

    def at_optimizer_step(optimizer, args, kwargs):
        records[-1]["grads"] = {n: p.grad.clone() for n, p in names.items()}
        records[-1]["running"] = list(method.controller.running_scores)
        if len(records) == steps:
            raise Enough

    initial = copy.deepcopy(run.model)
    run.model.register_forward_pre_hook(before_main_pass, with_kwargs=True)
    run.optimizer.register_step_pre_hook(at_optimizer_step)
    with pytest.raises(Enough):
        train_epoch(run, 0)
    return initial, run.modalities, records


@pytest.mark.parametrize("modalities", [2, 3])
def test_agm_steps_give_the_official_gradients_and_running_scores(modalities):
    alpha = 2.5  # the README's example, so that the coefficients are far from 1
    config = small(batch_size=64, alpha=alpha, dataset_options={"views": VIEWS[modalities]},
                   backbone_options={"dropout": 0.5})  # dropout: train and eval passes differ
    net, modality_names, records = recorded_agm_steps(config, steps=4)
    official = OfficialGradMod(net, modality_names)
    params = dict(net.named_parameters())
    running = [0.0] * modalities  # train_score_a, train_score_v[, train_score_t] before epoch 1
    scaled = []
    for iteration, record in enumerate(records, start=1):
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(record["params"][n])
        net.zero_grad(set_to_none=True)
        torch.set_rng_state(record["rng"])  # the engine's dropout masks in the full pass
        batch, label = record["batch"], record["batch"]["label"]
        full, passes, out = official(batch)
        if modalities == 2:
            _, coefficients, running = ref.agm_two_modalities(*passes, label, *running, iteration, alpha)
        else:
            _, coefficients, running = ref.agm_three_modalities(*passes, label, *running, iteration, alpha)
        official.update_scale(*coefficients)
        loss = F.cross_entropy(out, label)  # criterion(out, label)
        probes = sum(F.cross_entropy(z, label) for z in full.unimodal_logits.values())
        (loss + probes).backward(retain_graph=True)
        for n, p in params.items():
            assert torch.allclose(record["grads"][n], p.grad, rtol=1e-5, atol=1e-7), (iteration, n)
        assert record["running"] == pytest.approx(running, rel=1e-6), iteration
        modulated = {n: p.grad.clone() for n, p in params.items()}
        net.zero_grad(set_to_none=True)
        official.update_scale(*[1.0] * modalities)
        (loss + probes).backward()  # the same step unmodulated
        scaled.append(not all(torch.allclose(modulated[n], p.grad, rtol=1e-4) for n, p in params.items()))
    assert all(scaled)  # the coefficients changed every step's gradients



@pytest.mark.parametrize("modalities", [2, 3])
def test_an_agm_run_resumes_bit_exactly_and_differs_from_plain_training(tmp_path, modalities):
    config = small(dataset_options={"views": VIEWS[modalities]})
    uninterrupted = fit(config)
    resumed = killed_and_resumed(config, tmp_path / "run")
    assert deterministic(resumed) == deterministic(uninterrupted)
    plain = fit(small(strategy="none", epochs=1, dataset_options={"views": VIEWS[modalities]}))  # same harness
    assert uninterrupted["history"][0]["train_loss"] != plain["history"][0]["train_loss"]  # the hook acted


def test_the_running_scores_absorb_only_the_steps_inside_the_modulation_window():
    run = prepare(resolve_config(small(batch_size=128, modulation_ends=0)))
    train_epoch(run, 0)
    controller = run.strategy.training_method.controller
    after_window = (list(controller.running_scores), controller.num_updates)
    train_epoch(run, 1)  # a plain step: no padded passes, no update
    assert after_window == (controller.running_scores, controller.num_updates)
    assert controller.num_updates == len(_loader(run, "train", 0))
    assert run.strategy.training_method.state_dict()["num_updates"] == controller.num_updates


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"alpha": -1.0}, "alpha must be >= 0"),
        ({"max_gap": 0.0}, "max_gap must be > 0"),
        ({"alpha": "big"}, "alpha must be a number"),
    ],
)
def test_agm_refuses_bad_hyperparameters(overrides, message):
    with pytest.raises(ConfigError, match=message):
        fit(small(**overrides))


def test_agm_refuses_a_unimodal_loss_weight():
    with pytest.raises(ConfigError, match="unimodal heads learn as probes only: unimodal_loss_weight"):
        fit(small(unimodal_loss_weight=1.0))


def test_agm_refuses_a_regression_task(tmp_path):
    from tests._sequence_fixtures import write_mmsa

    write_mmsa(tmp_path, aligned=False)
    with pytest.raises(ConfigError, match="strategy 'agm' trains classification tasks only, not regression"):
        fit({"strategy": "agm", "dataset": "mosi", "data_root": str(tmp_path), "backbone": "transformer_seq",
             "backbone_options": {"d_model": 8, "heads": 2, "layers": 1}, "epochs": 1})  # fmt: skip

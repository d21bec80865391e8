"""Gradient-Blending trained through the engine's TrainingMethod hook (``grad_blending``).

The weights after the estimate before epoch 0 are those of BalanceBenchmark's
formula (transcribed) over probes trained here by hand, one per head, on copies of
the model; a step's gradients are those of the weighted sum of the heads' losses;
runs with two and three modalities resume bit-exactly and differ from the plain
recipe; a super_epoch longer than the run estimates once; a regression task
trains; bad hyperparameters and a unimodal loss weight of 0 are refused.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import goal_plugin as gp
from goal_plugin.engine import ConfigError, fit
from goal_plugin.engine.checkpoint import load_checkpoint
from goal_plugin.engine.config import resolve_config
from goal_plugin.engine.trainer import _loader, prepare, start_epoch
from goal_plugin.methods.grad_blending import GradientBlending
from goal_plugin.methods.hook import StepLosses
from goal_plugin.models import MultimodalNetwork, create_backbone
from tests._fit_runs import Killed, deterministic, kill_after
from tests._method_references import gb_super_epoch_weights

VIEWS = {2: ["fou", "kar"], 3: ["fou", "kar", "pix"]}


def small(**overrides):
    return {
        "strategy": "grad_blending",
        "epochs": 2,
        "diagnostics": False,
        "batch_size": 256,
        **overrides,
    }


def blended(**overrides):
    return small(**{"super_epoch": 2, **overrides})


def head_logits(outputs, head: str) -> torch.Tensor:
    return outputs.fused_logits if head == "output" else outputs.unimodal_logits[head]


def probe_by_hand(run, head: str, epochs: int) -> list[tuple[float, float]]:
    """BalanceBenchmark's super_epoch_origin for one head (a copy of the model, a fresh
    SGD of the run's settings, that head's cross-entropy alone), with per-sample means:
    per probe epoch, the training loss while training and the validation loss after it."""
    model = copy.deepcopy(run.model)
    config = run.config
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    losses = []
    for epoch in range(epochs):
        model.train()
        train_sum, train_count = 0.0, 0
        for batch in _loader(run, "train", epoch):  # the run's epoch-0 probe reads epochs 0, 1, ...
            optimizer.zero_grad()
            loss = F.cross_entropy(head_logits(model(batch), head), batch["label"])
            loss.backward()
            optimizer.step()
            train_sum, train_count = (
                train_sum + loss.item() * len(batch["label"]),
                train_count + len(batch["label"]),
            )
        model.eval()
        with torch.no_grad():
            val = [
                (F.cross_entropy(head_logits(model(b), head), b["label"]).item(), len(b["label"]))
                for b in _loader(run, "val", None)
            ]
        losses.append(
            (train_sum / train_count, sum(v * n for v, n in val) / sum(n for _, n in val))
        )
    return losses


def test_the_weights_before_epoch_0_are_the_formula_over_probes_trained_by_hand():
    super_epoch = 3  # the middle probe epoch is not recorded
    run = prepare(
        resolve_config(small(super_epoch=super_epoch, dataset_options={"views": VIEWS[3]}))
    )
    heads = [*run.modalities, "output"]
    probes = {head: probe_by_hand(run, head, super_epoch) for head in heads}
    expected = gb_super_epoch_weights(
        {h: probes[h][0][0] for h in heads},
        {h: probes[h][0][1] for h in heads},
        {h: probes[h][-1][0] for h in heads},
        {h: probes[h][-1][1] for h in heads},
    )
    before = copy.deepcopy(run.model.state_dict())
    start_epoch(run, 0)
    weights = run.strategy.training_method.blending.weights
    assert weights.tolist() == pytest.approx([expected[h] for h in heads], rel=1e-6)
    # The probes train copies: the model is untouched.
    assert all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())
    start_epoch(run, 1)  # no estimate between super-epochs
    assert torch.equal(run.strategy.training_method.blending.weights, weights)


def network(modalities: int) -> tuple[MultimodalNetwork, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    widths = {"fou": 76, "kar": 64, "pix": 240}
    encoders = {
        m: create_backbone("mlp", (widths[m],), hidden_dim=16, out_dim=8) for m in VIEWS[modalities]
    }
    batch = {m: torch.randn(12, widths[m]) for m in VIEWS[modalities]} | {
        "label": torch.randint(0, 4, (12,))
    }
    return MultimodalNetwork(encoders, num_classes=4), batch


@pytest.mark.parametrize("modalities", [2, 3])
def test_a_step_gives_the_gradients_of_the_weighted_sum_of_the_heads_losses(modalities):
    net, batch = network(modalities)
    blending = GradientBlending(modalities, super_epoch=2)
    losses = torch.rand(
        2,
        modalities + 1,
        2,
        generator=torch.Generator().manual_seed(modalities),
        dtype=torch.float64,
    )
    for probe_epoch, row in zip(blending.probe_epochs, losses):
        for head, (train, heldout) in enumerate(row.tolist()):
            blending.record(head, probe_epoch, train, heldout)
    weights = blending.finish().tolist()
    method = gp.create_strategy("grad_blending", super_epoch=2).training_method
    method.load_state_dict(blending.state_dict())

    out = net(batch)
    labels = batch["label"]
    heads = [*(out.unimodal_logits[m] for m in VIEWS[modalities]), out.fused_logits]
    sum(w * F.cross_entropy(z, labels) for w, z in zip(weights, heads)).backward()
    expected = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad(set_to_none=True)

    out = net(batch)
    unimodal = {m: F.cross_entropy(z, labels) for m, z in out.unimodal_logits.items()}
    method.backward(
        StepLosses(net, F.cross_entropy(out.fused_logits, labels), unimodal, 1.0, lambda x: x)
    )
    for name, param in net.named_parameters():
        assert torch.allclose(param.grad, expected[name], rtol=1e-6, atol=1e-8), name
    assert len(set(weights)) == len(weights)  # distinct weights: a head mixed up would show


def saved_weights(run_dir) -> list[float]:
    """The blend's weights in the checkpoint of a run folder."""
    return load_checkpoint(run_dir / "checkpoint")["strategy"]["training_method"]["weights"]


@pytest.mark.parametrize("modalities", [2, 3])
def test_a_run_resumes_bit_exactly_and_the_blend_acted(tmp_path, modalities):
    # Estimates before epochs 0 and 2; the run is killed after epoch 0, so epoch 1
    # trains on the checkpoint's weights and epoch 2 estimates again.
    config = blended(epochs=3, dataset_options={"views": VIEWS[modalities]})
    uninterrupted = fit(config)

    with pytest.raises(Killed):
        fit(config, output_dir=tmp_path / "run", on_epoch_end=kill_after(0))
    saved = saved_weights(tmp_path / "run")
    assert len(saved) == modalities + 1 and sum(saved) == pytest.approx(1.0)
    resumed = fit(config, output_dir=tmp_path / "run", resume_from=tmp_path / "run")
    assert deterministic(resumed) == deterministic(uninterrupted)
    plain = fit(
        small(strategy="none_uniloss", epochs=1, dataset_options={"views": VIEWS[modalities]})
    )
    assert uninterrupted["history"][0]["train_loss"] != plain["history"][0]["train_loss"]


def test_a_super_epoch_longer_than_the_run_estimates_once_offline(tmp_path):
    config = small(super_epoch=3, epochs=2)  # BalanceBenchmark's offline mode: super_epoch = epochs
    fit(config, output_dir=tmp_path / "run")
    run = prepare(resolve_config(config))
    start_epoch(run, 0)  # 3-epoch probes before epoch 0 and none after
    assert saved_weights(tmp_path / "run") == run.strategy.training_method.blending.weights.tolist()


def test_a_regression_run_blends_the_tasks_losses(tmp_path):
    from tests._sequence_fixtures import write_mmsa

    write_mmsa(tmp_path, aligned=False)
    config = blended(
        dataset="mosi",
        data_root=str(tmp_path),
        backbone="transformer_seq",
        backbone_options={"d_model": 8, "heads": 2, "layers": 1},
        epochs=1,
    )
    assert fit(config, output_dir=tmp_path / "run")["final"]["task"] == "regression"
    weights = saved_weights(tmp_path / "run")
    assert len(weights) == 4 and sum(weights) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"super_epoch": 1}, "super_epoch must be"),
        ({"super_epoch": 2.5}, "super_epoch must be"),
        ({"eps": 0.0}, "eps must be"),
        (
            {"unimodal_loss_weight": 0.0},
            "strategy 'grad_blending' combines the fused and the unimodal losses' gradients",
        ),
    ],
)
def test_bad_settings_are_refused_with_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        fit(blended(**overrides))
    assert "\n" not in str(error.value)

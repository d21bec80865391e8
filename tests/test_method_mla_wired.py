"""The ``mla`` recipe through the engine's TrainingMethod hook.

One wired epoch equals a transcription of the official ``train_epoch`` with
``--gs_flag`` (one shared head, one SGD step per modality, the head's gradient
projected) parameter by parameter, with two and three modalities; evaluation
predicts with the official entropy gating; runs resume bit-exactly and differ
from plain training of the same shared head; the refusals are one-line
ConfigErrors.
"""

from __future__ import annotations

import copy

import pytest
import torch

from goal_plugin.engine import ConfigError, fit
from goal_plugin.engine.config import resolve_config
from goal_plugin.engine.trainer import _loader, _to_device, collect, prepare, train_epoch
from tests import _method_references as ref
from tests._fit_runs import deterministic, killed_and_resumed

VIEWS = {2: ["fou", "kar"], 3: ["fou", "kar", "pix"]}
REFERENCE_UPDATES = {"owm": ref.mla_owm_before_update, "released": ref.mla_before_update}


def small(**overrides):
    return {
        "strategy": "mla",
        "epochs": 2,
        "diagnostics": False,
        "batch_size": 600,
        "backbone_options": {"hidden_dim": 32, "out_dim": 16},
        **overrides,
    }


def official_epoch(model, loader, optimizer, modalities, before_update, projector, exp_count):
    """main.py ``train_epoch``'s ``gs_flag`` branch (``gs_plugin.before_update`` on the
    shared head's weight, as its body describes); the unimodal heads' probe loss joins
    the first modality's step, as the harness trains them (they are separate
    parameters, so this changes nothing else)."""
    criterion = torch.nn.CrossEntropyLoss()
    fc_out = model.fusion.fc_out
    len_dataloader = len(loader)
    for batch_step, batch in enumerate(loader):
        label = batch["label"]
        optimizer.zero_grad()
        out = model(batch, detach_heads=True)  # a, v(, t) = model(...)
        for position, modality in enumerate(modalities):
            features = out.features[modality]
            loss = criterion(fc_out(features), label)
            if position == 0:
                loss = loss + sum(criterion(z, label) for z in out.unimodal_logits.values())
            loss.backward()
            projector, fc_out.weight.grad = before_update(
                projector,
                features.detach(),
                fc_out.weight.grad,
                batch_step,
                len_dataloader,
                exp_count,
            )
            optimizer.step()
            optimizer.zero_grad()
            exp_count += 1
        for p in model.parameters():
            if p.grad is not None:
                del p.grad
    return projector, exp_count


@pytest.mark.parametrize(
    ("modalities", "projector_update"), [(2, "owm"), (3, "owm"), (2, "released")]
)
def test_a_wired_epoch_is_the_official_alternating_loop(modalities, projector_update):
    # 1200 training samples in batches of 500: three batches, the last one smaller.
    config = small(
        batch_size=500,
        projector_update=projector_update,
        dataset_options={"views": VIEWS[modalities]},
    )
    run = prepare(resolve_config(config))
    official = copy.deepcopy(run.model)
    optimizer = torch.optim.SGD(official.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    dim = official.fusion.fc_out.in_features
    projector, exp_count = torch.eye(dim), 0
    for epoch in range(2):  # the projector carries over into the second epoch
        train_epoch(run, epoch)
        loader = [_to_device(b, run.device) for b in _loader(run, "train", epoch)]
        projector, exp_count = official_epoch(
            official,
            loader,
            optimizer,
            run.modalities,
            REFERENCE_UPDATES[projector_update],
            projector,
            exp_count,
        )
    assert exp_count == 2 * 3 * modalities
    # Equal bit for bit on CPU today; the tolerance leaves room for another BLAS.
    for (name, wired), (_, expected) in zip(
        run.model.named_parameters(), official.named_parameters()
    ):
        torch.testing.assert_close(wired, expected, rtol=1e-6, atol=1e-7, msg=name)
    state = run.strategy.state_dict()["training_method"]
    assert state["updates"] == exp_count
    torch.testing.assert_close(state["projector"], projector, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(projector, torch.eye(dim), atol=0.1)  # the projection acted


def test_the_projection_commutes_with_the_amp_loss_scale():
    # fp16 AMP scales each modality's loss before backward and unscales in the update; a
    # power-of-two scale is exact, and so is projecting the scaled gradient.
    runs = [prepare(resolve_config(small(batch_size=500))) for _ in range(2)]
    runs[1].scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for run in runs:
        train_epoch(run, 0)
    assert runs[1].scaler.get_scale() == 2.0**10  # every step was taken (no overflow)
    for (name, plain), (_, scaled) in zip(
        runs[0].model.named_parameters(), runs[1].model.named_parameters()
    ):
        assert torch.equal(plain, scaled), name


@pytest.mark.parametrize("modalities", [2, 3])
def test_evaluation_predicts_with_the_official_entropy_gating(modalities):
    run = prepare(
        resolve_config(small(batch_size=150, dataset_options={"views": VIEWS[modalities]}))
    )
    train_epoch(run, 0)
    gating = (
        ref.mla_calculate_gating_weights if modalities == 2 else ref.mla_calculate_gating_weights3
    )
    method, expected = run.strategy.training_method, []
    run.model.eval()
    with torch.no_grad():
        for batch in _loader(run, "test", None):  # the official weights are per evaluation batch
            out = run.model(_to_device(batch, run.device))
            logits = [run.model.fusion.fc_out(out.features[m]) for m in run.modalities]
            fused = sum(w * z for w, z in zip(gating(*logits), logits))
            torch.testing.assert_close(method.predict(out), fused)
            expected.append(fused.argmax(dim=1))
    assert torch.equal(collect(run, "test")["pred"], torch.cat(expected))



@pytest.mark.parametrize("modalities", [2, 3])
def test_a_run_of_mla_resumes_bit_exactly_and_differs_from_plain_shared_training(
    tmp_path, modalities
):
    config = small(dataset_options={"views": VIEWS[modalities]})
    uninterrupted = fit(config)
    resumed = killed_and_resumed(config, tmp_path / "run")
    assert deterministic(resumed) == deterministic(uninterrupted)
    plain = fit(
        small(
            strategy="none", fusion="shared", epochs=1, dataset_options={"views": VIEWS[modalities]}
        )
    )
    acted = uninterrupted["history"][0]["train_loss"] != plain["history"][0]["train_loss"]
    assert acted  # the hook changed the training of the same shared head


def test_the_recipe_trains_the_shared_head_and_probe_heads_only():
    with pytest.raises(ConfigError, match="trains the 'shared' fusion module, not fusion 'concat'"):
        fit(small(fusion="concat"))
    with pytest.raises(
        ConfigError, match="unimodal heads learn as probes only: unimodal_loss_weight"
    ):
        fit(small(unimodal_loss_weight=0.5))
    with pytest.raises(ConfigError, match="fusion 'shared' applies one head .* got \\[64, 32\\]"):
        fit(
            small(
                backbone_options={"kar": {"out_dim": 32}}, dataset_options={"views": ["fou", "kar"]}
            )
        )


@pytest.mark.parametrize(
    ("hparams", "message"),
    [
        ({"alpha_base": 0.0}, "alpha_base must be > 0, got 0.0"),
        ({"projector_update": "exact"}, "unknown value for projector_update: 'exact'"),
        ({"entropy_scope": "epoch"}, "unknown value for entropy_scope: 'epoch'"),
    ],
)
def test_bad_hyperparameters_are_refused(hparams, message):
    with pytest.raises(ConfigError, match=message) as error:
        resolve_config(small(**hparams))
    assert "\n" not in str(error.value)


def test_mla_refuses_a_regression_task(tmp_path):
    from tests._sequence_fixtures import write_mmsa

    write_mmsa(tmp_path, aligned=False)
    with pytest.raises(
        ConfigError, match="strategy 'mla' trains classification tasks only, not regression"
    ):
        fit({"strategy": "mla", "dataset": "mosi", "data_root": str(tmp_path), "backbone": "transformer_seq",
             "backbone_options": {"d_model": 8, "heads": 2, "layers": 1}, "epochs": 1})  # fmt: skip

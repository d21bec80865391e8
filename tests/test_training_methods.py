"""The engine's TrainingMethod hook: MMPareto (backward) and PMR (epoch start + backward).

One training step of ``mmpareto`` gives every parameter the gradient of a
transcription of the official loop (separate backward passes, the per-encoder
rule, the heads and fusion with the summed loss's gradient), with two and three
modalities; PMR's prototypes before an epoch are the class means of the first
tenth of its batches; runs of both recipes resume bit-exactly; a method that
needs the unimodal losses refuses a weight of 0, and PMR refuses regression.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import goal_plugin as gp
from goal_plugin.engine import ConfigError, fit
from goal_plugin.engine.trainer import PLAIN_STEP
from goal_plugin.methods.hook import StepLosses
from goal_plugin.models import MultimodalNetwork, create_backbone
from tests._fit_runs import deterministic, killed_and_resumed
from tests._method_references import mmpareto_official_encoder

VIEWS = {2: ["fou", "kar"], 3: ["fou", "kar", "pix"]}


def network(modalities: int) -> tuple[MultimodalNetwork, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    widths = {"fou": 76, "kar": 64, "pix": 240}
    names = VIEWS[modalities]
    encoders = {m: create_backbone("mlp", (widths[m],), hidden_dim=16, out_dim=8) for m in names}
    batch = {m: torch.randn(12, widths[m]) for m in names} | {"label": torch.randint(0, 4, (12,))}
    return MultimodalNetwork(encoders, num_classes=4), batch


def losses(net, batch):
    out = net(batch)
    return F.cross_entropy(out.fused_logits, batch["label"]), {
        m: F.cross_entropy(z, batch["label"]) for m, z in out.unimodal_logits.items()
    }


def official_gradients(net, batch, gamma=1.5) -> dict[str, torch.Tensor]:
    """MMPareto.py's train_epoch for one batch: per-loss backward passes, the rule per
    encoder, the summed loss's gradient everywhere else."""
    names = dict(net.named_parameters())

    def grads_of(loss) -> dict[str, torch.Tensor]:
        net.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in names.items()}

    fused, unimodal = losses(net, batch)
    both = grads_of(fused)
    per_modality = {m: grads_of(loss) for m, loss in unimodal.items()}
    total = grads_of(fused + sum(unimodal.values()))
    result = dict(total)
    for m in unimodal:
        own = [n for n in names if n.startswith(f"encoders.{m}.")]
        combined, _weights = mmpareto_official_encoder(own, {n: both[n] for n in own}, {n: per_modality[m][n] for n in own}, gamma)
        result.update(combined)
    return result


@pytest.mark.parametrize("modalities", [2, 3])
def test_an_mmpareto_step_gives_the_official_gradients(modalities):
    net, batch = network(modalities)
    expected = official_gradients(net, batch)
    net.zero_grad(set_to_none=True)
    fused, unimodal = losses(net, batch)
    gp.create_strategy("mmpareto").training_method.backward(StepLosses(net, fused, unimodal, 1.0, lambda x: x))
    for name, param in net.named_parameters():
        assert torch.allclose(param.grad, expected[name], rtol=1e-5, atol=1e-7), name


def test_the_plain_step_is_the_summed_losses_backward():
    net, batch = network(2)
    fused, unimodal = losses(net, batch)
    (fused + 0.5 * sum(unimodal.values())).backward(retain_graph=True)
    expected = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad(set_to_none=True)
    assert gp.create_strategy("none_uniloss").training_method is None  # plain recipes carry no method
    PLAIN_STEP.backward(StepLosses(net, fused, unimodal, 0.5, lambda x: x))
    assert all(torch.equal(p.grad, expected[n]) for n, p in net.named_parameters())


def small(**overrides):
    return {"strategy": "mmpareto", "epochs": 2, "diagnostics": False, "batch_size": 256, **overrides}


def test_pmr_prototypes_are_the_class_means_of_the_first_tenth_of_the_epochs_batches():
    from goal_plugin.engine.config import resolve_config
    from goal_plugin.engine.trainer import _loader, _to_device, prepare, start_epoch

    run = prepare(resolve_config({"strategy": "pmr", "batch_size": 32, "diagnostics": False}))
    start_epoch(run, 0)
    batches = list(_loader(run, "train", 0))[: max(1, len(_loader(run, "train", 0)) // 10)]
    run.model.eval()
    with torch.no_grad():
        outs = [(run.model(_to_device(b, run.device)), b["label"]) for b in batches]
    labels = torch.cat([y for _, y in outs])
    for index, m in enumerate(run.modalities):
        features = torch.cat([out.features[m] for out, _ in outs]).double()
        for c in labels.unique():
            expected = features[labels == c].mean(0).float()
            assert torch.allclose(run.strategy.training_method.pmr.prototypes[index][c], expected, atol=1e-5)



@pytest.mark.parametrize("views", [VIEWS[2], VIEWS[3]])
@pytest.mark.parametrize("strategy", ["mmpareto", "pmr"])
def test_a_run_of_a_method_resumes_bit_exactly(tmp_path, strategy, views):
    config = small(strategy=strategy, epochs=3, dataset_options={"views": views})  # PMR smooths from epoch 2
    uninterrupted = fit(config)
    resumed = killed_and_resumed(config, tmp_path / "run")
    assert deterministic(resumed) == deterministic(uninterrupted)
    plain = fit(small(strategy="none_uniloss", epochs=1, dataset_options={"views": views}))
    assert uninterrupted["history"][0]["train_loss"] != plain["history"][0]["train_loss"]  # the hook acted


def test_mmpareto_without_the_unimodal_loss_is_refused():
    with pytest.raises(ConfigError, match="unimodal_loss_weight must be above 0"):
        fit(small(unimodal_loss_weight=0.0))


def test_pmr_refuses_a_regression_task(tmp_path):
    from tests._sequence_fixtures import write_mmsa

    write_mmsa(tmp_path, aligned=False)
    with pytest.raises(ConfigError, match="strategy 'pmr' trains classification tasks only, not regression"):
        fit({"strategy": "pmr", "dataset": "mosi", "data_root": str(tmp_path), "backbone": "transformer_seq",
             "backbone_options": {"d_model": 8, "heads": 2, "layers": 1}, "epochs": 1})  # fmt: skip

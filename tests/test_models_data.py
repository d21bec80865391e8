"""Backbones, fusion, the multi-encoder network and the embedded datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import goal_plugin as gp
from goal_plugin.data import build_dataset, list_datasets, stratified_split
from goal_plugin.models import ConcatFusion, SumFusion, build_network, create_backbone, list_backbones


def test_backbone_registry_lists_and_refuses_unknown():
    assert {"mlp", "resnet18", "small_cnn"} <= set(list_backbones())
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet'.*did you mean 'resnet18'.*mlp"):
        create_backbone("resnet", (1, 32, 32))
    with pytest.raises(ValueError, match="hidden_dmi"):
        create_backbone("mlp", (8,), hidden_dmi=3)
    with pytest.raises(ValueError, match="use backbone 'mlp'"):
        create_backbone("resnet18", (64,))


@pytest.mark.parametrize("backbone", ["resnet18", "small_cnn"])
@pytest.mark.parametrize("shape", [(32, 24), (1, 32, 24), (3, 16, 16), (3, 4, 16, 16)])
def test_conv_backbones_accept_spectrograms_images_and_frames(backbone, shape):
    torch.manual_seed(0)
    encoder = create_backbone(backbone, shape).eval()
    out = encoder(torch.randn(2, *shape))
    assert out.shape == (2, encoder.out_dim)


def test_frames_are_pooled_over_time():
    torch.manual_seed(0)
    encoder = create_backbone("resnet18", (3, 3, 32, 32)).eval()
    frame = torch.randn(2, 3, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(encoder(frame.repeat(1, 1, 3, 1, 1)), encoder(frame), atol=1e-5)


@pytest.mark.parametrize("fusion_cls", [ConcatFusion, SumFusion])
def test_fusion_slices_add_up_to_the_fused_logits(fusion_cls):
    torch.manual_seed(0)
    fusion = fusion_cls([4, 4, 4], 5)
    feats = [torch.randn(3, 4) for _ in range(3)]
    assert torch.allclose(sum(fusion.slice_logits(feats)), fusion(feats), atol=1e-6)


def test_concat_slice_logits_follow_ogm_official_formula():
    torch.manual_seed(0)
    fusion = ConcatFusion([4, 6], 3)
    a, v = torch.randn(2, 4), torch.randn(2, 6)
    w, b = fusion.fc_out.weight, fusion.fc_out.bias
    out_a, out_v = fusion.slice_logits([a, v])
    assert torch.allclose(out_a, a @ w[:, :4].T + b / 2)
    assert torch.allclose(out_v, v @ w[:, 4:].T + b / 2)


def test_network_outputs_and_gate_position():
    torch.manual_seed(0)
    net = build_network("mlp", {"a": (5,), "b": (7,)}, 4, backbone_options={"out_dim": 6})
    batch = {"a": torch.randn(3, 5), "b": torch.randn(3, 7), "label": torch.tensor([0, 1, 2])}
    out = net(batch, gp.create_strategy("goal"))
    assert set(out.features) == {"a", "b"} and out.fused_logits.shape == (3, 4)
    assert out.unimodal_logits["a"].shape == (3, 4) and not out.fusion_slice_logits["a"].requires_grad
    assert net.encoder_prefixes() == ["encoders.a", "encoders.b"]
    with pytest.raises(ValueError, match="lacks modalities"):
        net({"a": batch["a"], "label": batch["label"]})


def test_per_modality_backbone_options():
    net = build_network("mlp", {"a": (5,), "b": (7,)}, 3, backbone_options={"out_dim": 8, "b": {"out_dim": 4}})
    assert net.feature_dims == {"a": 8, "b": 4}


def test_resnet18_audio_visual_step_on_cpu():
    torch.manual_seed(0)
    train = build_dataset("synthetic", kinds=("spectrogram", "frames"), sizes=(8, 4, 4), num_classes=4)
    net = build_network("resnet18", train.sample_shapes, train.num_classes)
    batch = train.__getitems__(range(8))[0]
    out = net(batch, gp.create_strategy("goal"))
    loss = torch.nn.functional.cross_entropy(out.fused_logits, batch["label"])
    loss.backward()
    assert all(p.grad is not None for p in net.encoders.parameters())


# ------------------------------------------------------------------ data
def test_dataset_registry():
    assert {"mfeat", "synthetic"} <= set(list_datasets())
    with pytest.raises(ValueError, match=r"unknown dataset 'mfaet'.*did you mean 'mfeat'"):
        build_dataset("mfaet")
    with pytest.raises(ValueError, match="split"):
        build_dataset("mfeat", split="dev")


def test_mfeat_splits_are_stratified_disjoint_and_fixed_by_seed():
    labels = np.repeat(np.arange(10), 200)
    parts = stratified_split(labels, (0.6, 0.2, 0.2), seed=3)
    assert [len(p) for p in parts] == [1200, 400, 400]
    assert len(np.unique(np.concatenate(parts))) == 2000
    for part in parts:
        assert np.all(np.bincount(labels[part]) == len(part) // 10)
    again = stratified_split(labels, (0.6, 0.2, 0.2), seed=3)
    other = stratified_split(labels, (0.6, 0.2, 0.2), seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not np.array_equal(parts[0], other[0])


def test_mfeat_views_and_standardisation():
    train = build_dataset("mfeat", views=("pix", "fou", "mor"))
    test = build_dataset("mfeat", split="test", views=("pix", "fou", "mor"))
    assert train.modalities == ("pix", "fou", "mor")
    assert train.sample_shapes == {"pix": (240,), "fou": (76,), "mor": (6,)}
    assert len(train) == 1200 and len(test) == 400 and train.num_classes == 10
    assert torch.allclose(train.data["fou"].mean(0), torch.zeros(76), atol=1e-4)
    sample = train[0]
    assert set(sample) == {"pix", "fou", "mor", "label"}
    with pytest.raises(ValueError, match="views"):
        build_dataset("mfeat", views=("pix", "colour"))
    for not_a_list in (3, "pix"):
        with pytest.raises(ValueError, match="views must be a list of view names"):
            build_dataset("mfeat", views=not_a_list)
    with pytest.raises(ValueError, match="data_root"):
        build_dataset("mfeat", root="/data/mfeat")


def test_synthetic_is_reproducible_and_validates_options():
    a = build_dataset("synthetic", data_seed=1)
    b = build_dataset("synthetic", data_seed=1)
    c = build_dataset("synthetic", data_seed=2)
    assert torch.equal(a.data["audio"], b.data["audio"]) and not torch.equal(a.data["audio"], c.data["audio"])
    assert not torch.equal(a.data["audio"][:400], build_dataset("synthetic", split="test", data_seed=1).data["audio"])
    for bad in (
        {"kinds": ("vector",)},
        {"informativeness": (1.0, -1.0)},
        {"conflict_rate": 1.5},
        {"kinds": ("vector", "video")},
        {"noise": 0},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            build_dataset("synthetic", **bad)


def test_synthetic_informativeness_controls_which_modality_is_learnable():
    from sklearn.linear_model import LogisticRegression

    train = build_dataset("synthetic", informativeness=(3.0, 0.3), sizes=(1000, 10, 500))
    test = build_dataset("synthetic", split="test", informativeness=(3.0, 0.3), sizes=(1000, 10, 500))
    scores = {
        m: LogisticRegression(max_iter=500).fit(train.data[m], train.labels).score(test.data[m], test.labels)
        for m in train.modalities
    }
    assert scores["audio"] > scores["visual"] + 0.3

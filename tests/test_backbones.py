"""Backbones: training steps of every registered one, local torchvision weights,
the 1-channel stem, pooling over frames, the feature_dim projection, and the
registry without torchvision.

Each torchvision model (and its weights file) is built once per module: a
ConvNeXt-B takes seconds to initialise and 350 MB to save."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.vision_transformer import interpolate_embeddings

import goal_plugin as gp
from goal_plugin.models import MultimodalNetwork, build_network, create_backbone, list_backbones

# Options that keep a backbone small enough for two CPU steps; any other backbone runs with its defaults.
SMALL_OPTIONS = {"vit_b_32": {"image_size": 32}}
SHAPES = {"audio": (1, 40, 32), "visual": (3, 2, 32, 32)}
FRAME_BACKBONES = ("resnet18", "small_cnn", "convnext_base", "vit_b_32")
TINY_BERT = {"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
# Backbones that do not read images: the "visual" modality becomes what they read (per-sample
# shape, a batch of two with a padded second sample, options keeping them small).
SEQUENCE_MASK = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
NON_IMAGE_INPUTS = {
    "transformer_seq": ((6, 5), lambda: torch.randn(2, 6, 5), {"d_model": 16, "heads": 2, "layers": 1}),
    "lstm": ((6, 5), lambda: torch.randn(2, 6, 5), {"hidden_dim": 8}),
    "bert_base": ((6,), lambda: torch.randint(1, 50, (2, 6)), {"config": TINY_BERT}),
}


class TorchvisionCase:
    """How a torchvision model's names and head relate to our encoder built from it."""

    def __init__(self, build, stem, head, renames, stem_std):
        self.build, self.stem, self.head, self.renames, self.stem_std = build, stem, head, renames, stem_std

    def torchvision_name(self, encoder_key: str) -> str:
        for ours, theirs in self.renames.items():
            if encoder_key.startswith(ours):
                return theirs + encoder_key[len(ours):]
        raise AssertionError(f"unexpected encoder key {encoder_key}")

    def headless(self, model):
        parent, _, child = self.head.rpartition(".")
        setattr(model.get_submodule(parent), child, torch.nn.Identity())
        return model

    def one_channel(self, state: dict) -> dict:
        """``state`` with a stem for 1-channel inputs, as a trained audio encoder has."""
        rgb_stem = state[f"{self.stem}.weight"]
        return state | {f"{self.stem}.weight": torch.randn(rgb_stem.shape[0], 1, *rgb_stem.shape[2:])}


TORCHVISION = {
    "resnet18": TorchvisionCase(
        torchvision.models.resnet18, "conv1", "fc", {"trunk.": ""}, math.sqrt(2 / (64 * 7 * 7))
    ),
    "convnext_base": TorchvisionCase(
        torchvision.models.convnext_base, "features.0.0", "classifier.2",
        {"trunk.": "features.", "pooled_norm.": "classifier.0."}, 0.02,
    ),
    "vit_b_32": TorchvisionCase(
        torchvision.models.vit_b_32, "conv_proj", "heads", {"trunk.vit.": ""}, math.sqrt(1 / (32 * 32))
    ),
}


class TorchvisionWeights:
    """A torchvision model with random weights (seed 0), saved once to ``rgb_file``,
    and the same weights with a 1-channel stem in ``one_channel_file``."""

    def __init__(self, case: TorchvisionCase, folder: Path):
        torch.manual_seed(0)
        model = case.build(weights=None).eval()
        self.state = model.state_dict()
        self.rgb_file = folder / "rgb.pth"
        torch.save(self.state, self.rgb_file)
        self.one_channel_state = case.one_channel(self.state)
        self.one_channel_file = folder / "one_channel.pth"
        torch.save(self.one_channel_state, self.one_channel_file)
        self.headless = case.headless(model)  # the RGB model's features, to compare with an encoder


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """``weights(name)``: the :class:`TorchvisionWeights` of ``name``, built on first use."""
    built: dict[str, TorchvisionWeights] = {}

    def get(name: str) -> TorchvisionWeights:
        if name not in built:
            built[name] = TorchvisionWeights(TORCHVISION[name], tmp_path_factory.mktemp(name))
        return built[name]

    return get


@pytest.fixture(scope="module")
def random_frame_encoder():
    """``random_frame_encoder(name)``: ``name`` with random weights (seed 0) for clips
    of three 1-channel frames, (1, 3, 32, 32), built on first use."""
    built = {}

    def get(name: str):
        if name not in built:
            torch.manual_seed(0)
            built[name] = create_backbone(name, (1, 3, 32, 32), **SMALL_OPTIONS.get(name, {})).eval()
        return built[name]

    return get


def test_registry_holds_the_paper_backbones():
    expected = {"mlp", "small_cnn", "resnet18", "convnext_base", "vit_b_32", "transformer_seq", "lstm", "bert_base"}
    assert expected <= set(list_backbones())


@pytest.mark.parametrize("name", list_backbones())
def test_two_training_steps_of_every_backbone_on_cpu(name):
    """The backbone encodes the frames (folded into the batch); a small CNN the
    spectrogram; feature_dim gives both one width, as GOAL's direction step needs."""
    torch.manual_seed(0)
    batch = {m: torch.randn(2, *shape) for m, shape in SHAPES.items()} | {"label": torch.tensor([0, 2])}
    visual_shape, options = SHAPES["visual"], SMALL_OPTIONS.get(name, {})
    if name in NON_IMAGE_INPUTS:
        visual_shape, make_batch, options = NON_IMAGE_INPUTS[name]
        batch |= {"visual": make_batch(), "visual_mask": SEQUENCE_MASK}
    encoders = {
        "audio": create_backbone("small_cnn", SHAPES["audio"], feature_dim=16),
        "visual": create_backbone(name, visual_shape, feature_dim=16, **options),
    }
    net = MultimodalNetwork(encoders, num_classes=3)
    strategy = gp.create_strategy("goal")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    before = torch.cat([p.detach().flatten() for p in encoders["visual"].parameters()])
    for _ in range(2):
        optimizer.zero_grad()
        out = net(batch, strategy)
        loss = F.cross_entropy(out.fused_logits, batch["label"]) + sum(
            F.cross_entropy(z, batch["label"]) for z in out.unimodal_logits.values()
        )
        loss.backward()
        assert torch.isfinite(loss)
        for param in encoders["visual"].parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all()
        optimizer.step()
    assert set(strategy.last_stats) and out.features["visual"].shape == (2, 16)
    after = torch.cat([p.detach().flatten() for p in encoders["visual"].parameters()])
    assert not torch.equal(before, after), f"{name} did not train"


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_local_rgb_weights_load_into_a_one_channel_encoder(name, weights):
    """Every weight is the file's; the 1-channel stem is the sum over RGB, so the encoder
    gives a spectrogram x exactly the features the RGB model gives the grey image (x, x, x)."""
    case, saved = TORCHVISION[name], weights(name)
    state = saved.state
    size = 224 if name == "vit_b_32" else 32
    encoder = create_backbone(name, (1, size, size), pretrained_path=str(saved.rgb_file)).eval()
    for key, value in encoder.state_dict().items():
        source = case.torchvision_name(key)
        if source == f"{case.stem}.weight":
            assert value.shape[1] == 1
            assert torch.allclose(value, state[source].sum(dim=1, keepdim=True), atol=1e-6)
        else:
            assert torch.equal(value, state[source]), key
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        expected = saved.headless(x.expand(-1, 3, -1, -1))
        assert torch.allclose(encoder(x), expected, atol=1e-4, rtol=1e-4)
    if name == "vit_b_32":  # position embeddings follow image_size through torchvision's interpolation
        small = create_backbone(name, (1, 40, 48), image_size=64, pretrained_path=str(saved.rgb_file))
        assert torch.equal(
            small.trunk.vit.encoder.pos_embedding,
            interpolate_embeddings(64, 32, state)["encoder.pos_embedding"],
        )
        assert small(torch.randn(2, 40, 48)).shape == (2, 768)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_local_one_channel_weights_load_as_they_are_into_a_one_channel_encoder(name, weights):
    """A file whose stem already takes one channel (OGM-GE's trained audio ResNet)
    loads unadapted: every weight of the encoder, the stem's included, is the file's."""
    case, saved = TORCHVISION[name], weights(name)
    size = 224 if name == "vit_b_32" else 32
    encoder = create_backbone(name, (1, size, size), pretrained_path=str(saved.one_channel_file))
    stem = next(m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.in_channels == 1
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, saved.one_channel_state[case.torchvision_name(key)]), key
    with pytest.raises(ValueError, match=f"one_channel.pth' does not fit {name}: size mismatch"):
        create_backbone(name, (2, size, size), pretrained_path=str(saved.one_channel_file))


def test_pretrained_path_errors_name_the_file(tmp_path, weights):
    state = weights("resnet18").state
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
    create_backbone("resnet18", (1, 32, 32), pretrained_path=str(tmp_path / "wrapped.pth"))
    with pytest.raises(ValueError, match="missing.pth' is not a file"):
        create_backbone("resnet18", (1, 32, 32), pretrained_path=str(tmp_path / "missing.pth"))
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth' does not fit resnet18: missing"):
        create_backbone("resnet18", (1, 32, 32), pretrained_path=str(tmp_path / "other.pth"))
    torch.save(state | {"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)}, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match="does not fit resnet18: size mismatch for layer1.0.conv1.weight"):
        create_backbone("resnet18", (1, 32, 32), pretrained_path=str(tmp_path / "shape.pth"))
    with pytest.raises(ValueError, match="wrapped.pth' does not fit vit_b_32: missing"):
        create_backbone("vit_b_32", (1, 32, 32), image_size=32, pretrained_path=str(tmp_path / "wrapped.pth"))
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="text.pth' is not a readable state dict"):
        create_backbone("resnet18", (1, 32, 32), pretrained_path=str(tmp_path / "text.pth"))
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(ValueError, match="tensor.pth' must hold a state dict"):
        create_backbone("resnet18", (1, 32, 32), pretrained_path=str(tmp_path / "tensor.pth"))


def test_two_channel_stem_from_rgb_weights_keeps_the_response_to_equal_channels(weights):
    saved = weights("resnet18")
    encoder = create_backbone("resnet18", (2, 32, 32), pretrained_path=str(saved.rgb_file)).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(
            encoder(x.expand(-1, 2, -1, -1)), saved.headless(x.expand(-1, 3, -1, -1)), atol=1e-4
        )


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_random_one_channel_stem_is_initialised_as_torchvision_initialises_it(name, random_frame_encoder):
    stem = next(m for m in random_frame_encoder(name).modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.in_channels == 1
    assert stem.weight.std().item() == pytest.approx(TORCHVISION[name].stem_std, rel=0.1)


@pytest.mark.parametrize("name", FRAME_BACKBONES)
def test_frames_are_pooled_over_time_per_clip(name, random_frame_encoder):
    encoder = random_frame_encoder(name)
    clips = torch.randn(2, 1, 3, 32, 32)
    with torch.no_grad():
        features = encoder(clips)
        assert torch.allclose(encoder(clips[:, :, [2, 0, 1]]), features, atol=1e-5)
        other = clips.clone()
        other[1] = torch.randn(1, 3, 32, 32)
        changed = encoder(other)
        assert torch.allclose(changed[0], features[0], atol=1e-5)  # frames never mix across clips
        assert not torch.allclose(changed[1], features[1], atol=1e-3)


def test_vit_resizes_non_square_spectrograms_to_image_size():
    encoder = create_backbone("vit_b_32", (1, 50, 37), image_size=64)
    assert encoder.trunk.vit.conv_proj.in_channels == 1
    assert encoder(torch.randn(2, 1, 50, 37)).shape == (2, 768)
    for bad in (48, 16):
        with pytest.raises(ValueError, match="image_size"):
            create_backbone("vit_b_32", (1, 50, 37), image_size=bad)
    with pytest.raises(ValueError, match="convnext_base' needs inputs of at least 32 x 32"):
        create_backbone("convnext_base", (1, 16, 40))


@pytest.mark.parametrize("name", ["mlp", "resnet18"])
def test_feature_dim_projects_to_a_common_width(name):
    encoder = create_backbone(name, (1, 40, 32), feature_dim=24)
    assert encoder.out_dim == 24 and encoder(torch.randn(2, 1, 40, 32)).shape == (2, 24)
    with pytest.raises(ValueError, match="feature_dim"):
        create_backbone(name, (1, 40, 32), feature_dim=0)


def test_differing_encoder_widths_need_feature_dim_for_direction_steps():
    torch.manual_seed(0)
    batch = {m: torch.randn(2, *shape) for m, shape in SHAPES.items()} | {"label": torch.tensor([0, 1])}
    backbones = {"audio": "resnet18", "visual": "small_cnn"}
    mixed = MultimodalNetwork({m: create_backbone(b, SHAPES[m]) for m, b in backbones.items()}, num_classes=3)
    with pytest.raises(ValueError, match=r"goal compares modality gradients.*512.*64.*feature_dim"):
        mixed.check_strategy(gp.create_strategy("goal"))
    # forward leaves that check to the caller, once before training; the gate still checks the
    # shapes it gets on every training step
    with pytest.raises(ValueError, match="same per-sample shape"):
        mixed(batch, gp.create_strategy("goal"))
    mixed.check_strategy(gp.create_strategy("al"))  # a magnitude step alone compares no directions
    mixed(batch, gp.create_strategy("al"))
    projected = MultimodalNetwork(
        {m: create_backbone(b, SHAPES[m], feature_dim=32) for m, b in backbones.items()}, num_classes=3
    )
    projected.check_strategy(gp.create_strategy("goal"))
    out = projected(batch, gp.create_strategy("goal"))
    F.cross_entropy(out.fused_logits, batch["label"]).backward()
    assert projected.feature_dims == {"audio": 32, "visual": 32}


def test_a_misspelt_feature_dim_is_suggested():
    with pytest.raises(ValueError, match=r"'feture_dim'; did you mean 'feature_dim'\? Available: .*feature_dim"):
        create_backbone("mlp", (8,), feture_dim=32)
    with pytest.raises(ValueError, match=r"'feture_dim'; did you mean 'feature_dim'"):
        build_network("resnet18", {"a": (1, 32, 32)}, 3, backbone_options={"feture_dim": 32})


REPOSITORY = Path(__file__).resolve().parents[1]
# Runs runners/train.py (arguments after -c's code) in an interpreter where torchvision
# cannot be imported, as after the README's quick-start install.
WITHOUT_TORCHVISION = (
    "import runpy, sys; sys.modules['torchvision'] = None; "
    f"sys.argv[0] = {str(REPOSITORY / 'runners' / 'train.py')!r}; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _train_without_torchvision(tmp_path: Path, *settings: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", WITHOUT_TORCHVISION, "--set", "epochs=1", *settings]
    return subprocess.run(
        [*command, "--output", str(tmp_path / "run")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )


def test_mlp_trains_without_torchvision(tmp_path):
    done = _train_without_torchvision(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_a_torchvision_backbone_without_torchvision_is_a_one_line_error(tmp_path):
    done = _train_without_torchvision(tmp_path, "--set", "backbone=resnet18")
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "backbone 'resnet18' needs torchvision: pip install torchvision" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_importing_the_package_and_listing_backbones_imports_neither_torchvision_nor_transformers():
    code = (
        "import sys, goal_plugin, goal_plugin.models as models; "
        "names = models.list_backbones(); models.create_backbone('small_cnn', (1, 8, 8)); "
        "assert {'resnet18', 'convnext_base', 'vit_b_32'} <= set(names), names; "
        "assert 'torchvision' not in sys.modules, 'torchvision was imported'; "
        "assert 'transformers' not in sys.modules, 'transformers was imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr

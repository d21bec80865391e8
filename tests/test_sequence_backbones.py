"""The sequence encoders (transformer_seq, lstm) and bert_base from a local folder.

Padding never changes a sequence's features; the network hands each modality's
mask to the encoders that read one; bert_base loads a checkpoint and its
tokenizer from a folder the test writes (never the hub) and trains; bad options
are one-line errors.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import goal_plugin as gp
from goal_plugin.models import MultimodalNetwork, create_backbone

SEQUENCE_OPTIONS = {"transformer_seq": {"d_model": 16, "heads": 2, "layers": 2, "dropout": 0.0}, "lstm": {"hidden_dim": 8, "layers": 2}}
TINY_BERT = {"vocab_size": 60, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def padded(x: torch.Tensor, lengths: list[int], steps: int, fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (B, T, D) cut to ``lengths`` and padded with ``fill`` to ``steps``; and its mask."""
    out = torch.full((x.shape[0], steps, x.shape[2]), fill)
    mask = torch.zeros(x.shape[0], steps, dtype=torch.bool)
    for row, length in enumerate(lengths):
        out[row, :length] = x[row, :length]
        mask[row, :length] = True
    return out, mask


@pytest.mark.parametrize("name", sorted(SEQUENCE_OPTIONS))
def test_padding_does_not_change_the_features(name):
    torch.manual_seed(0)
    encoder = create_backbone(name, (9, 4), **SEQUENCE_OPTIONS[name]).eval()
    x = torch.randn(3, 9, 4)
    lengths = [5, 2, 4]
    short, short_mask = padded(x, lengths, 5, 0.0)
    long, long_mask = padded(x, lengths, 9, 123.0)  # garbage in the padding
    with torch.no_grad():
        a, b = encoder(short, mask=short_mask), encoder(long, mask=long_mask)
        alone = torch.stack([encoder(x[i : i + 1, :n]).squeeze(0) for i, n in enumerate(lengths)])
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, alone, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SEQUENCE_OPTIONS))
def test_three_sequence_modalities_train_two_goal_steps_with_masks(name):
    torch.manual_seed(0)
    shapes = {"audio": (7, 3), "visual": (7, 5), "text": (7, 6)}
    encoders = {m: create_backbone(name, s, feature_dim=8, **SEQUENCE_OPTIONS[name]) for m, s in shapes.items()}
    net = MultimodalNetwork(encoders, num_classes=3)
    strategy = gp.create_strategy("goal")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    batch = {"label": torch.tensor([0, 1, 2, 1])}
    for m, (steps, dim) in shapes.items():
        batch[m], batch[f"{m}_mask"] = padded(torch.randn(4, steps, dim), [7, 3, 5, 1], steps, 0.0)
    before = [p.detach().clone() for p in net.parameters()]
    for _ in range(2):
        optimizer.zero_grad()
        out = net(batch, strategy)
        loss = F.cross_entropy(out.fused_logits, batch["label"]) + sum(
            F.cross_entropy(z, batch["label"]) for z in out.unimodal_logits.values()
        )
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss) and len(strategy.last_stats["weights"]) == 3
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters()) if b.requires_grad)


def test_the_lstm_refuses_padding_before_real_steps():
    encoder = create_backbone("lstm", (4, 2), hidden_dim=4)
    with pytest.raises(ValueError, match="padding must follow the real steps"):
        encoder(torch.randn(1, 4, 2), mask=torch.tensor([[False, True, True, True]]))


def write_local_bert(folder) -> None:
    """A tiny randomly initialised BERT and a WordPiece tokenizer, saved as save_pretrained writes them."""
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "meme", "film", "good", "bad"]
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizer(str(folder / "vocab.txt")).save_pretrained(str(folder))
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(**TINY_BERT)).save_pretrained(str(folder))


def test_bert_base_from_a_local_folder_trains_two_steps_on_its_tokenizer_output(tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "bert"
    write_local_bert(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    tokens = tokenizer(["a good cat", "a bad film meme", "dog"], padding="max_length", max_length=8, return_tensors="pt")
    encoder = create_backbone("bert_base", (8,), path=str(folder))
    saved = transformers.BertModel.from_pretrained(str(folder), local_files_only=True)
    assert torch.equal(encoder.model.embeddings.word_embeddings.weight, saved.embeddings.word_embeddings.weight)
    net = MultimodalNetwork({"text": encoder, "image": create_backbone("mlp", (4,), out_dim=32)}, num_classes=2)
    batch = {"text": tokens["input_ids"], "text_mask": tokens["attention_mask"].bool(), "image": torch.randn(3, 4), "label": torch.tensor([1, 0, 1])}
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = encoder.model.encoder.layer[0].attention.self.query.weight.detach().clone()
    for _ in range(2):
        optimizer.zero_grad()
        out = net(batch, gp.create_strategy("goal"))
        (F.cross_entropy(out.fused_logits, batch["label"]) + sum(F.cross_entropy(z, batch["label"]) for z in out.unimodal_logits.values())).backward()
        optimizer.step()
    assert out.features["text"].shape == (3, 32)
    assert not torch.equal(before, encoder.model.encoder.layer[0].attention.self.query.weight)


def test_bert_base_features_ignore_padding(tmp_path):
    pytest.importorskip("transformers")
    encoder = create_backbone("bert_base", (8,), config=TINY_BERT).eval()
    ids = torch.tensor([[2, 5, 6, 3, 0, 0, 0, 0]])
    with torch.no_grad():
        padded_out = encoder(ids, mask=ids != 0)
        alone = encoder(ids[:, :4], mask=torch.ones(1, 4, dtype=torch.bool))
    assert torch.allclose(padded_out, alone, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs exactly one of path"),
        ({"config": {"hidden_size": 32, "hiden_layers": 2}}, "unknown BertConfig field"),
        ({"path": "/nonexistent/bert"}, "no config.json"),
    ],
)
def test_bert_base_option_errors_name_the_option(options, message):
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match=message):
        create_backbone("bert_base", (8,), **options)


def test_sequence_backbones_refuse_inputs_that_are_not_sequences():
    with pytest.raises(ValueError, match=r"needs a feature sequence \(T, D\)"):
        create_backbone("transformer_seq", (3, 32, 32))

"""``bert_base``: a BERT text encoder from ``transformers``, from local files only.

The text modality is given as token ids ``(B, L)`` (int64) and an attention mask
``(B, L)`` (the dataset tokenises with the tokenizer saved in the same folder).
The features are the last layer's hidden state of the first token ([CLS]),
``hidden_size`` wide, as in the paper's text encoders.

- ``path``: a local checkpoint folder (``config.json`` and the weights, as
  ``save_pretrained`` writes them, e.g. ``bert-base-uncased`` downloaded once);
  read with ``local_files_only``, so nothing is ever fetched from the hub.
- ``config``: the ``BertConfig`` fields of a randomly initialised model (e.g. 2
  layers of width 32 for tests); unknown fields are refused.

``transformers`` is imported when the backbone is built (the ``text`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from goal_plugin.models.backbones import BACKBONES


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError("backbone 'bert_base' needs transformers: pip install 'goal-plugin[text]'") from None
    return transformers


class BertEncoder(nn.Module):
    accepts_mask = True

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.out_dim = int(model.config.hidden_size)

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        out = self.model(input_ids=ids.long(), attention_mask=None if mask is None else mask.long())
        return out.last_hidden_state[:, 0]


@BACKBONES.register("bert_base")
def bert_base(
    input_shape: tuple[int, ...],
    *,
    path: str | None = None,
    config: Mapping[str, object] | None = None,
) -> nn.Module:
    """BERT over token ids (L,) from a local checkpoint ``path`` or a random-init ``config``."""
    if len(input_shape) != 1:
        raise ValueError(f"backbone 'bert_base' needs token ids (L,) per sample, got shape {input_shape}")
    if (path is None) == (config is None):
        raise ValueError(
            "backbone 'bert_base' needs exactly one of path (a local checkpoint folder) or config "
            "(BertConfig fields for a randomly initialised model); it never downloads"
        )
    transformers = _transformers()
    if config is not None:
        if not isinstance(config, Mapping):
            raise ValueError(f"bert_base config must be a mapping of BertConfig fields, got {config!r}")
        known = set(transformers.BertConfig().to_dict())
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"bert_base config: unknown BertConfig field(s) {unknown}")
        model = transformers.BertModel(transformers.BertConfig(**config), add_pooling_layer=False)
    else:
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            raise ValueError(f"bert_base path {str(folder)!r}: no config.json (a folder written by save_pretrained)")
        try:
            model = transformers.BertModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False)
        except OSError as error:
            raise ValueError(f"bert_base path {str(folder)!r}: {str(error).splitlines()[0]}") from None
    if input_shape[0] > model.config.max_position_embeddings:
        raise ValueError(
            f"token sequences of {input_shape[0]} exceed the model's max_position_embeddings "
            f"({model.config.max_position_embeddings})"
        )
    return BertEncoder(model)

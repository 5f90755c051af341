"""The `transfer` block of an experiment config: how the pretrained weights are used.

Example:

>>> TransferConfig(strategy="lora").lora_rank
8
"""

import dataclasses
from typing import List

from official.modeling.hyperparams import base_config

from tftransfer import compat
from tftransfer.config_checks import ConfigError, bounded, one_of, text


def _strategies():
    # The registry imports Keras; the package has registered every strategy
    # by the time a config is checked (importing this module imported it).
    from tftransfer.transfer import transfer_strategy

    return sorted(transfer_strategy.registered())


#: what `lora` adapts by default: every attention and feed-forward
#: projection of keras-hub's encoder and decoder layers (BERT, GPT-2, Llama),
#: by keras-hub's names (`compat.check()` sees that its blocks have them).
LORA_TARGETS = compat.PROJECTIONS


@dataclasses.dataclass
class TransferConfig(base_config.Config):
    """How a run transfers the backbone's knowledge to the task.

    Attributes:
        strategy: `full` (fine-tune everything), `frozen` (train the head
            on fixed backbone features), `lora` (low-rank adapters on the
            backbone's projections, merged into the weights before export),
            `llrd` (layer-wise learning-rate decay), `gradual_unfreezing`
            (ULMFiT: the head first, then one more layer from the top at a
            time) or `scratch` (the same architecture and tokenizer with random
            weights: the baseline that measures what pretraining gave) or
            `distill` (knowledge distillation: train on a teacher's outputs
            as well as the gold labels; see docs/distillation.md).
        lora_rank: rank of the LoRA factors.
        lora_alpha: LoRA scale numerator: the update is `alpha / rank * A @ B`.
        lora_targets: names of the keras-hub layers that get adapters; each
            must name a layer of every transformer block (the default list
            skips the names a backbone's blocks lack, e.g. BERT's gate).
        llrd_decay: each layer gets `llrd_decay` times the rate of the layer
            above it; the head (and pooler) keeps `trainer.learning_rate`.
        unfreeze_every: steps between two unfreezings (0 = each epoch).
        teacher: `distill`: the teacher, a trained run folder (its best
            checkpoint) or an exported SavedModel (a version folder, or an
            export folder: its newest version). It reads raw text, so it may
            have another tokenizer and architecture than the student.
        distill_temperature: `distill`: both models' logits are divided by
            this before the soft-target loss (Hinton et al., 2015); that
            loss is scaled by its square so its gradients keep their size.
            Regression targets are the teacher's scores as they are.
        distill_weight: `distill`: the weight of the teacher's soft
            targets; the gold labels get `1 - distill_weight` (examples
            without a gold label, `data.unlabeled`, only the teacher's).
        cache_features: `frozen`: the backbone's outputs (the pooled vector
            of text classification, multi-label classification and
            regression) are computed once before training and the head
            trains on them; false = the backbone runs at every step. Tasks
            with per-token heads, and long texts as windows, always run it.
        teacher_cache: `distill`: the folder the teacher's outputs are stored
            in, keyed by text, so no text is labelled twice; empty =
            `<model_dir>/teacher_outputs`. `compare` shares one per grid.
    """

    strategy: str = one_of("full", _strategies)
    lora_rank: int = bounded(8, low=1, high=65536)
    lora_alpha: float = bounded(16.0, above=0.0)
    lora_targets: List[str] = text(default_factory=lambda: list(LORA_TARGETS))
    llrd_decay: float = bounded(0.8, above=0.0, high=1.0)
    unfreeze_every: int = bounded(0, low=0)
    teacher: str = text("")
    distill_temperature: float = bounded(2.0, above=0.0)
    distill_weight: float = bounded(0.5, low=0.0, high=1.0)
    teacher_cache: str = text("")
    cache_features: bool = True

    def check(self, key):
        if self.strategy == "distill" and not self.teacher:
            raise ConfigError(
                f"{key}.strategy is distill: set {key}.teacher to a trained run folder "
                "or an exported SavedModel"
            )

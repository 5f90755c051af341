"""What a causal LM serves: generation with cached decoding, and scoring texts.

`CausalLMServing` is the serving half of the `causal_lm` task (tasks/causal_lm.py),
kept apart because it is as long as the training half: prompt encoding with
room for the new tokens, the `generate`, `generate_with_options` and `score`
signatures, per-request option checks in the graph, warmup requests and the
export's metadata (stop strings, chat template, generation defaults).

It reads what `CausalLM` sets up: `config`, `tokenizer`, the special ids
(`start_id`, `end_id`, `pad_id`, `stop_ids`), `_ids` (texts to ragged ids),
`_column` and `logits`.

Example:

>>> import keras_hub, tensorflow as tf
>>> from tftransfer import backbones
>>> from tftransfer.tasks.causal_lm import CausalLM, CausalLMConfig
>>> tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(backbones.decoder_path())
>>> task = CausalLM(CausalLMConfig(max_length=8), tokenizer)
>>> task.prompt_ids(tf.constant(["one two three", ""]), max_new_tokens=4).to_list()
[[537, 827, 1296], [2]]
"""

import numpy as np
import tensorflow as tf

from tftransfer.models import token_loss
from tftransfer.models.cached_decoder import CachedDecoder
from tftransfer.text import utf8


class CausalLMServing:
    """The serving functions of the `causal_lm` task (a mixin of `CausalLM`)."""

    def serving_inputs(self):
        return {"prompt": tf.TensorSpec([None], tf.string, name="prompt")}

    def postprocess(self, outputs):
        return outputs

    def prompt_ids(self, prompts, max_new_tokens):
        """Prompt strings -> ragged ids leaving room for `max_new_tokens` in `max_length`.

        An empty prompt starts from the end token (what precedes a document
        in training). A longer prompt is an error or loses its start
        (`prompt_truncation`), never silently cut elsewhere.
        """
        ids = self._ids(prompts)
        if self.start_id is not None:
            ids = tf.concat([self._column(ids.nrows(), self.start_id), ids], axis=1)
        empty = tf.cast(tf.equal(ids.row_lengths(), 0), tf.int64)
        filler = tf.fill([tf.reduce_sum(empty)], self.end_id)
        ids = tf.concat([ids, tf.RaggedTensor.from_row_lengths(filler, empty)], axis=1)
        room = tf.maximum(self.config.max_length - tf.cast(max_new_tokens, tf.int32), 1)
        if self.config.prompt_truncation == "left":
            return ids[:, -room:]
        longest = tf.cast(tf.reduce_max(ids.row_lengths()), tf.int32)
        check = tf.debugging.assert_less_equal(
            longest,
            room,
            message=(
                "prompt too long: prompt tokens + max_new_tokens exceed "
                f"task.causal_lm.max_length={self.config.max_length} (set "
                "prompt_truncation: left to drop the start of long prompts)"
            ),
        )
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def decoder(self, model):
        """A `CachedDecoder` on this task's model (a keras-hub CausalLM)."""
        return CachedDecoder(
            model, self.stop_ids, self.pad_id, self.config.max_length, self.config.jit_compile
        )

    def generate(self, decoder, prompts, max_new_tokens, temperature, top_k, top_p, seed):
        """Prompt strings -> `{"generated_text", "generated_tokens"}` (graph ops)."""
        ids = self.prompt_ids(prompts, max_new_tokens)
        new = decoder(ids, max_new_tokens, temperature, top_k, top_p, seed)
        return {
            # A byte-level model's bytes can end inside a character.
            "generated_text": utf8.complete(self.tokenizer.detokenize(new)),
            "generated_tokens": tf.cast(new.row_lengths(), tf.int32),
        }

    def score(self, model, texts):
        """Texts -> mean log-likelihood per token and the number of tokens scored.

        Each text is scored as a document: its tokens (and the end token
        after it, as in training) given what precedes them, the first one
        given the end token that opens a document. Texts longer than
        `max_length` are scored on their first `max_length` tokens
        (`token_count` says how many).
        """
        rows = self._blocks_of(texts)
        nll, mask = token_loss.token_nll(rows["labels"], self.logits(model, rows["inputs"]))
        count = tf.reduce_sum(mask, axis=1)
        return {
            "mean_log_likelihood": -tf.reduce_sum(nll, axis=1) / tf.maximum(count, 1.0),
            "token_count": tf.cast(count, tf.int32),
        }

    def _blocks_of(self, texts):
        ids = self._ids(texts)
        rows = ids.nrows()
        opener = self.start_id if self.start_id is not None else self.end_id
        ids = tf.concat([self._column(rows, opener), ids, self._column(rows, self.end_id)], 1)
        ids = ids[:, : self.config.max_length + 1]
        inputs, targets = ids[:, :-1], ids[:, 1:]
        return {
            "inputs": {
                "token_ids": inputs.to_tensor(self.pad_id),
                "padding_mask": tf.ones_like(inputs).to_tensor(0),
            },
            "labels": targets.to_tensor(-1),
        }

    def warmup_requests(self):
        """A short prompt and a long one, each alone.

        The long one leaves room for `max_new_tokens` (at ~2 tokens a word);
        a batch of 16 would make the server generate for long at every load.
        """
        from tftransfer import serving_warmup

        cfg = self.config
        long_words = max(1, min(cfg.max_seq_length, (cfg.max_length - cfg.max_new_tokens) // 2))
        return [
            {"prompt": np.array([serving_warmup.sample_text(n)], object)}
            for n in sorted({min(8, long_words), long_words})
        ]

    def export_metadata(self):
        return {
            "stop_strings": list(self.config.stop_strings),
            "chat_template": self.config.chat_template
            or getattr(self.tokenizer, "chat_template", None)
            or "",
            "max_length": self.config.max_length,
            "generation_defaults": {
                k: getattr(self.config, k)
                for k in ("max_new_tokens", "temperature", "top_k", "top_p", "seed")
            },
        }

    def check_options(self, max_new_tokens, temperature, top_k, top_p):
        """In-graph checks of per-request generation options (NaN fails them all)."""
        room = self.config.max_length - 1
        key = "task.causal_lm.max_length"
        return [
            tf.debugging.assert_greater_equal(
                max_new_tokens, 0, message="max_new_tokens must be >= 0"
            ),
            tf.debugging.assert_less_equal(
                max_new_tokens, room, message=f"max_new_tokens must be <= {key} - 1 = {room}"
            ),
            tf.debugging.assert_greater_equal(
                temperature, 0.0, message="temperature must be a number >= 0"
            ),
            tf.debugging.assert_greater_equal(top_k, 0, message="top_k must be >= 0"),
            tf.debugging.assert_greater(top_p, 0.0, message="top_p must be > 0 and <= 1"),
            tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be > 0 and <= 1"),
        ]

    def serving_functions(self, model, backbone):
        """`generate` (also the default), `generate_with_options` and `score`.

        TF Serving needs every input of a signature in each request, so the
        generation settings are a second signature rather than optional
        inputs; `generate` uses the config's.
        """
        del backbone
        decoder = self.decoder(model)
        cfg = self.config
        prompt = self.serving_inputs()
        scalar = lambda name, dtype: tf.TensorSpec([], dtype, name=name)  # noqa: E731

        options = dict(prompt)
        options.update(
            max_new_tokens=scalar("max_new_tokens", tf.int32),
            temperature=scalar("temperature", tf.float32),
            top_k=scalar("top_k", tf.int32),
            top_p=scalar("top_p", tf.float32),
            seed=scalar("seed", tf.int64),
        )

        # One traced graph behind all three generation signatures: tracing
        # keras-hub's tokenizer and 2 x 30 decoder layers takes most of a
        # minute, and the SavedModel then holds the loop once.
        @tf.function(input_signature=list(options.values()), autograph=False)
        def generate_with_options(prompts, max_new_tokens, temperature, top_k, top_p, seed):
            # A client's options are checked in the graph: TF Serving answers
            # INVALID_ARGUMENT with the message instead of decoding nonsense.
            with tf.control_dependencies(
                self.check_options(max_new_tokens, temperature, top_k, top_p)
            ):
                max_new_tokens = tf.identity(max_new_tokens)
            return self.generate(decoder, prompts, max_new_tokens, temperature, top_k, top_p, seed)

        def generate(prompts):
            return generate_with_options(
                prompts,
                tf.constant(cfg.max_new_tokens, tf.int32),
                tf.constant(cfg.temperature, tf.float32),
                tf.constant(cfg.top_k, tf.int32),
                tf.constant(cfg.top_p, tf.float32),
                tf.constant(cfg.seed, tf.int64),
            )

        return {
            "serving_default": (generate, prompt),
            "generate": (generate, prompt),
            "generate_with_options": (generate_with_options, options),
            "score": (
                lambda texts: self.score(model, texts),
                {"text": tf.TensorSpec([None], tf.string, name="text")},
            ),
        }

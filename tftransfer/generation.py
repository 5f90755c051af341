"""Generate text from a causal-LM run's checkpoint or its exported SavedModel.

Both paths call the same `generate_with_options` function (built in-process
on the checkpoint, or the SavedModel's signature), so a seed gives the same
text from either. Stop strings cut the output after decoding; a chat prompt
(`chat=True`) is rendered with the checkpoint's chat template as one user
message followed by the assistant's turn.

Example:

>>> from tftransfer import generation
>>> generation.cut_at_stop("Paris.\\nQ: and", ["\\nQ:", "###"])
'Paris.'
"""

import dataclasses
import re

import tensorflow as tf

from tftransfer import export
from tftransfer.data import chat_template
from tftransfer.models.serving_weights import ServingFunction

#: the signature both paths call (prompts and every setting as inputs).
SIGNATURE = "generate_with_options"


class GenerationError(ValueError):
    """A run or export that does not generate, or a prompt or option it refuses."""


@dataclasses.dataclass
class Options:
    """Per-request generation settings (None: the run's config)."""

    max_new_tokens: int = None
    temperature: float = None
    top_k: int = None
    top_p: float = None
    seed: int = None
    stop_strings: tuple = ()


def cut_at_stop(text, stops):
    """`text` up to the first occurrence of any stop string."""
    cut = len(text)
    for stop in stops:
        if stop:
            found = text.find(stop)
            if found >= 0:
                cut = min(cut, found)
    return text[:cut]


class Generator:
    """Prompts in, continuations out; see the module docstring.

    Use `Generator.from_model_dir` or `Generator.from_saved_model`.
    """

    def __init__(self, function, defaults, stop_strings, template):
        self._function = function
        self.defaults = defaults
        self.stop_strings = list(stop_strings)
        self.template = template

    @classmethod
    def from_model_dir(cls, model_dir, checkpoint="best"):
        from tftransfer import loaded_run

        loaded = loaded_run.LoadedRun(model_dir, checkpoint)
        functions = loaded.serving_functions()
        if SIGNATURE not in functions:
            raise GenerationError(
                f"{model_dir}: a {loaded.task.name} run does not generate text; "
                "use `tftransfer predict`"
            )
        fn, specs = functions[SIGNATURE]
        traced = ServingFunction(fn, list(specs.values()))
        meta = loaded.task.export_metadata()
        return cls(traced, meta["generation_defaults"], meta["stop_strings"], meta["chat_template"])

    @classmethod
    def from_saved_model(cls, version_dir):
        import tensorflow_text  # noqa: F401  (registers the ops the graph uses)

        meta = export.read_metadata(version_dir)
        if SIGNATURE not in meta["signatures"]:
            raise GenerationError(
                f"{version_dir}: a {meta.get('task')} export does not generate text; "
                "use `tftransfer predict`"
            )
        signature = tf.saved_model.load(version_dir).signatures[SIGNATURE]

        def call(prompt, max_new_tokens, temperature, top_k, top_p, seed):
            return signature(
                prompt=prompt,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                seed=seed,
            )

        return cls(call, meta["generation_defaults"], meta["stop_strings"], meta["chat_template"])

    def chat_prompt(self, text):
        """`text` as a user message, rendered up to the assistant's turn."""
        if not self.template:
            raise GenerationError("this model has no chat template; generate without --chat")
        messages = [{"role": "user", "content": text}]
        return chat_template.render(self.template, messages, add_generation_prompt=True)

    def _call(self, texts, settings):
        return self._function(
            tf.constant(texts, tf.string),
            tf.constant(settings["max_new_tokens"], tf.int32),
            tf.constant(settings["temperature"], tf.float32),
            tf.constant(settings["top_k"], tf.int32),
            tf.constant(settings["top_p"], tf.float32),
            tf.constant(settings["seed"], tf.int64),
        )

    def _refused(self, texts, settings, start, error):
        """A `GenerationError` with the graph's check message and the prompt it is about."""
        found = re.search(r"assertion failed: \[(.*?)\]", str(error), re.S)
        message = found.group(1) if found else str(error).splitlines()[0]
        if not message.startswith("prompt"):
            return GenerationError(message)  # an option, the same for every prompt
        for i, text in enumerate(texts if len(texts) > 1 else ()):
            try:
                self._call([text], settings)
            except tf.errors.InvalidArgumentError:
                return GenerationError(f"prompt {start + i + 1}: {message}")
        which = f"prompt {start + 1}: " if len(texts) == 1 else ""
        return GenerationError(f"{which}{message}")

    def __call__(self, prompts, options=None, chat=False, batch_size=8):
        """Returns `[{"prompt", "generated_text", "generated_tokens"}]`."""
        return list(self.stream(prompts, options, chat, batch_size))

    def stream(self, prompts, options=None, chat=False, batch_size=8):
        """Yields `{"prompt", "generated_text", "generated_tokens"}` a batch at a time."""
        options = options or Options()
        settings = {
            k: getattr(options, k) if getattr(options, k) is not None else self.defaults[k]
            for k in ("max_new_tokens", "temperature", "top_k", "top_p", "seed")
        }
        stops = self.stop_strings + list(options.stop_strings)
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            texts = [self.chat_prompt(p) if chat else p for p in chunk]
            try:
                out = self._call(texts, settings)
            except tf.errors.InvalidArgumentError as e:
                raise self._refused(texts, settings, start, e) from None
            for prompt, text, count in zip(
                chunk, out["generated_text"].numpy(), out["generated_tokens"].numpy()
            ):
                yield {
                    "prompt": prompt,
                    "generated_text": cut_at_stop(text.decode("utf-8", "replace"), stops),
                    "generated_tokens": int(count),
                }

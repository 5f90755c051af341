"""Render chats with a checkpoint's Jinja chat template, marking the assistant's text.

Hugging Face checkpoints carry a Jinja template (`tokenizer_config.json`'s
`chat_template`, GGUF's `tokenizer.chat_template`) that turns a list of
messages into the exact text the model was tuned on. It is rendered here as
`transformers.apply_chat_template` renders it (a sandboxed Jinja environment
with `trim_blocks` and `lstrip_blocks`), without importing transformers.

For training, a chat becomes segments: the text before each assistant turn
(not a target) and the turn itself, up to the next message (a target, its
end-of-turn marker included, so the model learns to stop).

Example:

>>> from tftransfer.data import chat_template
>>> template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
...             "{% if add_generation_prompt %}<assistant>{% endif %}")
>>> chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
>>> chat_template.segments(template, chat)
[('<user>hi</s><assistant>', False), ('hello</s>', True)]
"""

import functools

from tftransfer.data.data_error import DataError


@functools.lru_cache(maxsize=8)
def _compile(template):
    import jinja2
    from jinja2 import sandbox

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    env = sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def render(template, messages, add_generation_prompt=False):
    """The chat as the model's text."""
    import jinja2

    try:
        return _compile(template).render(
            messages=messages, add_generation_prompt=add_generation_prompt
        )
    except jinja2.TemplateError as e:
        raise DataError(f"the chat template rejected the messages: {e}") from e


def segments(template, messages):
    """`[(text, is_target)]` whose texts concatenate to the rendered chat.

    Raises:
        DataError: the template does not render a chat's prefix as a prefix
            of the whole (such templates cannot mark turns by position).
    """
    whole = render(template, messages)
    out, done = [], 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(template, messages[:i], add_generation_prompt=True)
        through = render(template, messages[: i + 1])
        if not (whole.startswith(before) and whole.startswith(through)) or len(before) < done:
            raise DataError(
                "the chat template does not render turns incrementally, so the "
                "assistant's text cannot be located in the chat"
            )
        if before[done:]:
            out.append((before[done:], False))
        out.append((through[len(before) :], True))
        done = len(through)
    if whole[done:]:
        out.append((whole[done:], False))
    return out

"""The byte-level pre-tokenizers of the decoders tftransfer loads, as `tokenizer.json` spells them.

Plain Python (the GGUF converter writes them without TensorFlow);
`byte_level_split` is their in-graph equivalent.

Example:

>>> settings({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True})
{'pattern': 'gpt2', 'split_digits': False}
"""

#: Llama 3's `Split` pattern as its `tokenizer.json` spells it (with the look-ahead).
LLAMA3_REFERENCE = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _byte_level(step, use_regex):
    return (
        step.get("type") == "ByteLevel"
        and bool(step.get("use_regex", True)) == use_regex
        and not step.get("add_prefix_space")
    )


def settings(pre_tokenizer):
    """`{"pattern": name, "split_digits": bool}` for a `tokenizer.json` pre-tokenizer.

    Recognises the three byte-level pre-tokenizers of the decoders tftransfer
    loads: GPT-2's (`ByteLevel` with its regex), SmolLM2's (`Digits` one by
    one, then GPT-2's) and Llama 3's (`Split` on its pattern, then
    `ByteLevel` without a regex).

    Args:
        pre_tokenizer: the `pre_tokenizer` entry of a `tokenizer.json` (a dict).

    Returns:
        The settings for `split`, or None for any other pre-tokenizer.
    """
    if not isinstance(pre_tokenizer, dict):
        return None
    steps = pre_tokenizer.get("pretokenizers", [])
    if pre_tokenizer.get("type") != "Sequence":
        steps = [pre_tokenizer]
    if len(steps) == 1 and _byte_level(steps[0], use_regex=True):
        return {"pattern": "gpt2", "split_digits": False}
    if len(steps) != 2:
        return None
    first, second = steps
    if (
        first.get("type") == "Digits"
        and first.get("individual_digits")
        and _byte_level(second, use_regex=True)
    ):
        return {"pattern": "gpt2", "split_digits": True}
    if (
        first.get("type") == "Split"
        and first.get("pattern") == {"Regex": LLAMA3_REFERENCE}
        and first.get("behavior") == "Isolated"
        and not first.get("invert")
        and _byte_level(second, use_regex=False)
    ):
        return {"pattern": "llama3", "split_digits": False}
    return None

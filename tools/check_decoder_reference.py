"""Checks the converted SmolLM2 against an independent reading of the same GGUF.

The reference is Hugging Face transformers' own GGUF loader
(`from_pretrained(..., gguf_file=...)`: its dequantizer and its inverse of
llama.cpp's Q/K permutation) with its PyTorch Llama. tftransfer's side is the
`smollm2` backbone: `gguf_converter` -> keras-hub's Llama 3 converter ->
`CachedDecoder`. Reports the largest relative logit difference on each
prompt and whether greedy generations agree token for token.

Needs the `bench` extra (torch, transformers).

Usage:
    python tools/check_decoder_reference.py --new_tokens=32 --output=runs/decoder_reference.json
"""

import json
import os
import time

from absl import app, flags

flags.DEFINE_integer("new_tokens", 32, "Greedy tokens compared per prompt.")
flags.DEFINE_string("output", "", "Write the results as JSON here too.")
FLAGS = flags.FLAGS

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "<|im_start|>user\nWhat is 12 times 7?<|im_end|>\n<|im_start|>assistant\n",
]


def reference(prompts, new_tokens):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tftransfer import backbones

    path = backbones.decoder_gguf_path()
    folder, name = os.path.split(path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    out = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(ids).logits[0].numpy()
            generated = model.generate(
                ids, max_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0
            )[0, ids.shape[1] :]
        out.append({"ids": ids[0].tolist(), "logits": logits, "greedy": generated.tolist()})
    return out


def ours(prompts, new_tokens):
    import numpy as np
    import tensorflow as tf

    from tftransfer import backbones
    from tftransfer.models.cached_decoder import CachedDecoder

    backbone, tokenizer = backbones.load(backbones.DECODER_SPEC)
    lm = backbones.Backbone(backbone).causal_lm()
    decoder = CachedDecoder(lm, stop_ids=[], pad_id=0, max_length=512)
    out = []
    for prompt in prompts:
        ids = tf.convert_to_tensor(tokenizer(prompt)).numpy()
        logits = np.asarray(lm({"token_ids": ids[None], "padding_mask": np.ones_like(ids)[None]}))
        greedy = decoder(tf.ragged.constant([ids.tolist()]), new_tokens).to_list()[0]
        out.append({"ids": ids.tolist(), "logits": logits[0], "greedy": greedy})
    return out


def main(argv):
    del argv
    import numpy as np

    start = time.time()
    theirs, mine = reference(PROMPTS, FLAGS.new_tokens), ours(PROMPTS, FLAGS.new_tokens)
    results = []
    for prompt, a, b in zip(PROMPTS, theirs, mine):
        same_ids = a["ids"] == b["ids"]
        relative = float(np.abs(a["logits"] - b["logits"]).max() / np.abs(a["logits"]).max())
        matched = next(
            (i for i, (x, y) in enumerate(zip(a["greedy"], b["greedy"])) if x != y),
            min(len(a["greedy"]), len(b["greedy"])),
        )
        results.append(
            {
                "prompt": prompt,
                "same_prompt_tokens": same_ids,
                "max_relative_logit_difference": relative,
                "greedy_tokens_equal": matched,
                "greedy_tokens": len(a["greedy"]),
            }
        )
        print(json.dumps(results[-1], ensure_ascii=False))
    print(f"wall time {time.time() - start:.0f} s")
    if FLAGS.output:
        with open(FLAGS.output, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    app.run(main)

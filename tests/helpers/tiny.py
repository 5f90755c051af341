"""Tiny random backbones and data for fast tests."""

import os

import keras
import keras_hub

WORDS = (
    "the a an is was it this that movie film great good bad awful terrible "
    "love hate fun boring happy sad not very really best worst ever plot "
    "acting story i you we they he she what day lovely cafe naive zurich "
    "and or but so to of in on for with hello world there why "
    "alice bob carol paris london berlin acme visited met works at lives who"
).split()
VOCAB = list(
    dict.fromkeys(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + WORDS
        + ["##s", "##ed", "##ing", "##ly"]
        + list("abcdefghijklmnopqrstuvwxyz.,!?'")
        + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    )
)


def make_preset(path, hidden_dim=16, num_layers=2, num_heads=2, max_len=64, seed=0):
    """Writes a randomly initialised BERT keras-hub preset folder."""
    if os.path.exists(os.path.join(path, "metadata.json")):
        return path
    # Seeded so that every run tests the same weights: an unseeded draw made
    # tests that measure small effects pass or fail by luck.
    keras.utils.set_random_seed(seed)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=True, strip_accents=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCAB),
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=hidden_dim * 2,
        max_sequence_length=max_len,
        dropout=0.0,
    )
    backbone.save_to_preset(path)
    tokenizer.save_to_preset(path)
    return path


POSITIVE = [
    "great movie",
    "i love this film",
    "what a lovely day",
    "best acting ever",
    "really fun story",
    "good plot and great acting",
    "happy happy film",
]
NEGATIVE = [
    "awful movie",
    "i hate this film",
    "worst plot ever",
    "boring and bad",
    "terrible acting",
    "not good at all",
    "really sad and boring story",
]


def write_tsv(path, n_repeat=4):
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for _ in range(n_repeat):
            for p, n in zip(POSITIVE, NEGATIVE):
                f.write(f"{p}\tpositive\n{n}\tnegative\n")
    return path


PEOPLE = ["alice", "bob", "carol smith", "bobs"]  # "bobs" is two subwords: bob ##s
PLACES = ["paris", "london", "berlin", "new paris"]
ORGS = ["acme", "acme films"]
TEMPLATES = [
    "{PER} visited {LOC}",
    "{PER} works at {ORG} in {LOC}",
    "{PER} met {PER} in {LOC}",
    "the movie was great and {PER} lives in {LOC}",
    "{ORG} hate {LOC}",
]


def classification_params(preset, tsv):
    """A small, fast text-classification experiment on the tiny backbone."""
    from tftransfer import configs

    return configs.load(
        [],
        {
            "backbone": {"spec": preset},
            "task": {
                "text_classification": {"max_seq_length": 32, "dropout": 0.0, "pooling": "mean"}
            },
            "data": {
                "train": {"path": tsv, "text_column": "sentence"},
                "validation": {"path": tsv, "text_column": "sentence"},
            },
            "trainer": {
                "batch_size": 8,
                "epochs": 2,
                "learning_rate": 3e-3,
                "checkpoint_every": 5,
                "seed": 7,
            },
        },
    )


def tagged_sentences(n_repeat=2):
    """Synthetic (tokens, IOB2 tags) sentences from the templates."""
    fill = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}
    out = []
    for r in range(n_repeat):
        for t, template in enumerate(TEMPLATES):
            tokens, tags, used = [], [], {}
            for piece in template.split():
                if piece.startswith("{"):
                    kind = piece[1:-1]
                    used[kind] = used.get(kind, 0) + 1
                    choices = fill[kind]
                    entity = choices[(r + t + used[kind]) % len(choices)].split()
                    tokens += entity
                    tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(entity) - 1)
                else:
                    tokens.append(piece)
                    tags.append("O")
            out.append((tokens, tags))
    return out


def write_conll(path, n_repeat=2, scheme="iob2"):
    """Writes the synthetic sentences as CoNLL (token POS tag)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("-DOCSTART- -X- O\n\n")
        for tokens, tags in tagged_sentences(n_repeat):
            if scheme == "bioes":
                tags = to_bioes(tags)
            for token, tag in zip(tokens, tags):
                f.write(f"{token} NN {tag}\n")
            f.write("\n")
    return path


def to_bioes(tags):
    out = []
    for i, tag in enumerate(tags):
        nxt = tags[i + 1] if i + 1 < len(tags) else "O"
        ends = not nxt.startswith("I-")
        if tag.startswith("B-"):
            out.append(("S-" if ends else "B-") + tag[2:])
        elif tag.startswith("I-"):
            out.append(("E-" if ends else "I-") + tag[2:])
        else:
            out.append(tag)
    return out


FILLER = "the movie was great and we love this film it was a lovely day in the cafe".split()


def name_questions(n=40, seed=3, long_every=4):
    """Synthetic SQuAD document: the answer is the one person in the context.

    Every `long_every`-th context is long enough to need several windows.
    """
    import random

    rng = random.Random(seed)
    people = ["alice", "bob", "carol"]
    paragraphs = []
    for i in range(n):
        size = 40 if i % long_every == 0 else 8
        words = [rng.choice(FILLER) for _ in range(size)]
        at = rng.randrange(size)
        words.insert(at, people[i % 3])
        context = " ".join(words)
        start = len(" ".join(words[:at])) + (1 if at else 0)
        paragraphs.append(
            {
                "context": context,
                "qas": [
                    {
                        "id": f"q{i}",
                        "question": "who is there ?",
                        "answers": [{"text": people[i % 3], "answer_start": start}],
                    }
                ],
            }
        )
    return {"version": "1.1", "data": [{"title": "names", "paragraphs": paragraphs}]}


# -- decoders: a byte-level BPE trained here, tiny random GPT-2 and Llama -------

LM_TEXT = [
    "the movie was great and the story was fun",
    "i love this film, it is the best ever",
    "what a lovely day in paris with alice",
    "bob visited london and berlin with carol",
    "the plot was boring and the acting was bad",
    "hello world, why is there a cafe in zurich?",
    "naïve café, 你好 世界",
]
# `<|endoftext|>` is id 0 on purpose: keras-hub pads GPT-2 with id 0, and a
# decoder that tells padding from text by id would lose generated text.
LM_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def bpe(vocab_size=300):
    """`(vocabulary, merges)` of a byte-level BPE trained on `LM_TEXT`."""
    import json

    import tokenizers

    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=LM_SPECIALS,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(LM_TEXT * 4, trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return model["vocab"], merges


def gpt2(hidden_dim=16, num_layers=2, max_len=64, seed=0):
    """`(Backbone, tokenizer)`: a random GPT-2 with the trained BPE."""
    from tftransfer import backbones

    keras.utils.set_random_seed(seed)
    from tftransfer.text.hf_byte_pair_tokenizer import HfBytePairTokenizer

    vocab, merges = bpe()
    # As `backbones.load` gives a GPT-2 checkpoint's tokenizer.
    tokenizer = HfBytePairTokenizer.like(
        keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=merges),
        "gpt2",
        added_tokens=LM_SPECIALS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    model = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocab),
        num_layers=num_layers,
        num_heads=2,
        hidden_dim=hidden_dim,
        intermediate_dim=hidden_dim * 2,
        max_sequence_length=max_len,
        dropout=0.0,
    )
    return backbones.Backbone(model), tokenizer


def llama_weights(vocab_size, hidden=32, layers=2, heads=4, kv_heads=2, inter=64, seed=0):
    """Random Llama weights in Hugging Face layout (name -> float32 array)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    head_dim = hidden // heads

    def dense(rows, cols):
        return (rng.standard_normal((rows, cols)) * 0.2).astype("float32")

    weights = {
        "model.embed_tokens.weight": dense(vocab_size, hidden),
        "model.norm.weight": (1 + 0.1 * rng.standard_normal(hidden)).astype("float32"),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        weights[p + "input_layernorm.weight"] = (1 + 0.1 * rng.standard_normal(hidden)).astype(
            "float32"
        )
        weights[p + "post_attention_layernorm.weight"] = (
            1 + 0.1 * rng.standard_normal(hidden)
        ).astype("float32")
        weights[p + "self_attn.q_proj.weight"] = dense(heads * head_dim, hidden)
        weights[p + "self_attn.k_proj.weight"] = dense(kv_heads * head_dim, hidden)
        weights[p + "self_attn.v_proj.weight"] = dense(kv_heads * head_dim, hidden)
        weights[p + "self_attn.o_proj.weight"] = dense(hidden, heads * head_dim)
        weights[p + "mlp.gate_proj.weight"] = dense(inter, hidden)
        weights[p + "mlp.up_proj.weight"] = dense(inter, hidden)
        weights[p + "mlp.down_proj.weight"] = dense(hidden, inter)
    return weights


LLAMA = {"hidden": 32, "layers": 2, "heads": 4, "kv_heads": 2, "inter": 64}


def write_llama_gguf(
    path, seed=0, embedding_type="Q8_0", matrix_type="Q4_1", arch="llama", pre="default"
):
    """Writes a tiny Llama GGUF as llama.cpp's converter would; returns its HF weights.

    Matrices are quantized (`embedding_type`, `matrix_type`), norms stay F32,
    and the query/key rows are permuted as llama.cpp permutes them. `pre`
    names the pre-tokenizer (`tokenizer.ggml.pre`: "default", "smollm",
    "llama-bpe", ...).

    Returns:
        The Hugging Face-layout weights the file holds, dequantized with a
        NumPy reference (not the gguf package), for comparisons.
    """
    import gguf
    import numpy as np

    vocab, merges = bpe()
    tokens = sorted(vocab, key=vocab.get)
    weights = llama_weights(len(tokens), seed=seed, **LLAMA)
    heads, kv_heads = LLAMA["heads"], LLAMA["kv_heads"]

    def permute(w, n):  # llama.cpp convert_hf_to_gguf.py LlamaModel.permute
        return w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    writer = gguf.GGUFWriter(path, arch)
    writer.add_name("tiny-test-llama")
    writer.add_block_count(LLAMA["layers"])
    writer.add_context_length(128)
    writer.add_embedding_length(LLAMA["hidden"])
    writer.add_feed_forward_length(LLAMA["inter"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in LM_SPECIALS else 1 for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_pad_token_id(vocab["<|endoftext|>"])
    writer.add_chat_template(CHAT_TEMPLATE)
    names = {
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    stored = {}
    for hf_name, value in weights.items():
        if hf_name == "model.embed_tokens.weight":
            name, qtype = "token_embd.weight", embedding_type
        elif hf_name == "model.norm.weight":
            name, qtype = "output_norm.weight", "F32"
        else:
            layer, part = hf_name[len("model.layers.") :].split(".", 1)
            part = part[: -len(".weight")]
            name = f"blk.{layer}.{names[part]}.weight"
            qtype = "F32" if value.ndim == 1 else matrix_type
        if part_is(hf_name, "q_proj"):
            value = permute(value, heads)
        elif part_is(hf_name, "k_proj"):
            value = permute(value, kv_heads)
        kind = gguf.GGMLQuantizationType[qtype]
        if qtype == "F32":
            data = value
        elif qtype == "F16":
            data = value.astype(np.float16)
        else:
            data = gguf.quants.quantize(value, kind)
        writer.add_tensor(name, data, raw_dtype=kind)
        stored[hf_name] = (data, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reference = {}
    for hf_name, (data, qtype) in stored.items():
        value = numpy_dequantize(np.asarray(data), qtype)
        if part_is(hf_name, "q_proj"):
            value = unpermute(value, heads)
        elif part_is(hf_name, "k_proj"):
            value = unpermute(value, kv_heads)
        reference[hf_name] = value
    return reference


def part_is(hf_name, part):
    return hf_name.endswith(f".{part}.weight")


def unpermute(w, n):
    return w.reshape(n, w.shape[0] // n // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def numpy_dequantize(data, qtype):
    """GGML's block formats, from ggml-quants.c (32 values a block)."""
    import numpy as np

    if qtype == "F32":
        return data.astype("float32")
    rows = data.shape[0]
    if qtype == "Q8_0":  # f16 scale, 32 x int8
        blocks = data.reshape(rows, -1, 34)
        scale = blocks[..., :2].copy().view(np.float16).astype("float32")
        q = blocks[..., 2:].copy().view(np.int8).astype("float32")
        return (scale * q).reshape(rows, -1)
    if qtype == "F16":
        return (
            data.view(np.float16).astype("float32")
            if data.dtype != np.float16
            else data.astype("float32")
        )
    if qtype == "Q4_0":  # f16 scale, 16 bytes: low nibbles then high, offset 8
        blocks = data.reshape(rows, -1, 18)
        scale = blocks[..., 0:2].copy().view(np.float16).astype("float32")
        nibbles = blocks[..., 2:]
        q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype("float32")
        return (scale * (q - 8)).reshape(rows, -1)
    if qtype == "Q4_1":  # f16 scale, f16 min, 16 bytes: low nibbles then high
        blocks = data.reshape(rows, -1, 20)
        scale = blocks[..., 0:2].copy().view(np.float16).astype("float32")
        low = blocks[..., 2:4].copy().view(np.float16).astype("float32")
        nibbles = blocks[..., 4:]
        q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype("float32")
        return (scale * q + low).reshape(rows, -1)
    raise ValueError(qtype)


def llama_folder(path, seed=0, pre="default"):
    """A tiny Llama as a Hugging Face-format folder, converted from a tiny GGUF."""
    from tftransfer.backbones import gguf_converter

    if not os.path.exists(os.path.join(path, "config.json")):
        gguf_path = path + ".gguf"
        write_llama_gguf(gguf_path, seed=seed, pre=pre)
        gguf_converter.convert(gguf_path, path)
    return path

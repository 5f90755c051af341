"""Causal LM: blocks, loss masks, chats, cached decoding, metrics, export."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import fresh_process, tiny

from tftransfer import (
    backbones,
    configs,
    experiment,
    export,
    generation,
    loaded_run,
    serving_warmup,
)
from tftransfer.data import lm_readers
from tftransfer.data.readers import DataError
from tftransfer.models.cached_decoder import CachedDecoder
from tftransfer.tasks.causal_lm import CausalLM, CausalLMConfig


@pytest.fixture(scope="module")
def gpt2():
    return tiny.gpt2()


def _encode(task, batch):
    return {k: v.numpy() for k, v in tf.function(task.encode, autograph=False)(batch).items()}


def test_blocks_keep_every_token_with_ends_between_documents(gpt2):
    _, tokenizer = gpt2
    task = CausalLM(CausalLMConfig(max_seq_length=8), tokenizer)
    docs = tiny.LM_TEXT[:3]
    rows = _encode(task, {"text": tf.constant(docs)})
    end = tokenizer.end_token_id
    expected = [end]
    for doc in docs:
        expected += np.asarray(tokenizer(doc)).tolist() + [end]
    mask = rows["padding_mask"].astype(bool)
    inputs = rows["token_ids"][mask].tolist()
    targets = rows["labels"][mask].tolist()
    assert inputs == expected[:-1]  # every token is read, in order
    assert targets == expected[1:]  # and predicted once, the ends included
    assert (rows["labels"][~mask] == -1).all()
    assert rows["token_ids"].shape == (math.ceil((len(expected) - 1) / 8), 8)


@pytest.mark.slow
def test_prompt_completion_loss_covers_only_the_completion(gpt2):
    _, tokenizer = gpt2
    task = CausalLM(CausalLMConfig(max_seq_length=32), tokenizer)
    batch = {
        "segments": tf.ragged.constant([["what a lovely", " day in paris"], ["hello", " world"]]),
        "targets": tf.ragged.constant([[False, True], [False, True]]),
    }
    rows = _encode(task, batch)
    prompt = np.asarray(tokenizer("what a lovely")).tolist()
    completion = np.asarray(tokenizer(" day in paris")).tolist()
    labels = rows["labels"][0]
    # Position i predicts token i + 1: the prompt's tokens after the first
    # are not targets, the completion's and the end token are.
    assert (labels[: len(prompt) - 1] == -1).all()
    targets = labels[labels >= 0].tolist()
    assert targets == completion + [tokenizer.end_token_id]
    assert rows["token_ids"][0][: len(prompt) + len(completion)].tolist() == prompt + completion


def test_loss_is_the_mean_over_target_tokens(gpt2):
    backbone, tokenizer = gpt2
    task = CausalLM(CausalLMConfig(max_seq_length=16), tokenizer)
    labels = tf.constant([[3, 4, -1, -1], [5, 6, 7, 8]])
    logits = tf.random.stateless_normal([2, 4, 300], seed=[1, 2])
    per_position = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.maximum(labels, 0), logits=logits
    ).numpy()
    expected = (per_position[0, :2].sum() + per_position[1].sum()) / 6
    loss = tf.nn.compute_average_loss(task.loss(labels, logits), global_batch_size=2)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_chats_train_on_assistant_turns_and_need_a_template(tmp_path, gpt2):
    _, tokenizer = gpt2
    path = tmp_path / "chats.jsonl"
    chat = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hello world"},
        {"role": "user", "content": "why"},
        {"role": "assistant", "content": "the plot"},
    ]
    path.write_text(json.dumps({"messages": chat}) + "\n")
    examples = lm_readers.read(configs.InputConfig(path=str(path)))
    assert examples.kind == "chat"
    # GPT-2's tokenizer splits the template's markers into pieces: long rows.
    task = CausalLM(CausalLMConfig(max_seq_length=256), tokenizer)
    task.prepare(examples)
    assert task.config.chat_template == tiny.CHAT_TEMPLATE  # saved with the run
    batch = next(iter(task.raw_dataset(examples).batch(1)))
    rows = _encode(task, batch)
    targets = rows["labels"][0][rows["labels"][0] >= 0]
    expected = "hello world<|im_end|>\nthe plot<|im_end|>\n"
    decoded = tokenizer.detokenize(targets[:-1])  # the last target is the end token
    assert decoded == expected

    bare = tiny.gpt2()[1]
    bare.chat_template = None
    with pytest.raises(DataError, match="no chat template"):
        CausalLM(CausalLMConfig(), bare).prepare(examples)


@pytest.mark.slow
def test_too_long_pairs_are_an_error_naming_the_line(tmp_path, gpt2):
    _, tokenizer = gpt2
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        json.dumps({"prompt": "hi", "completion": " there"})
        + "\n"
        + json.dumps({"prompt": "the movie " * 20, "completion": " was great"})
        + "\n"
    )
    examples = lm_readers.read(configs.InputConfig(path=str(path)))
    task = CausalLM(CausalLMConfig(max_seq_length=16), tokenizer)
    with pytest.raises(DataError, match=r"pairs.jsonl:2: \d+ tokens .*max_seq_length=16"):
        task.prepare(examples)


def test_mixed_kinds_in_one_split_are_an_error(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "a"}\n{"prompt": "b", "completion": "c"}\n')
    with pytest.raises(DataError, match="mixed.jsonl:2: a prompt/completion record among text"):
        lm_readers.read(configs.InputConfig(path=str(path)))


def _full_recompute_greedy(lm, prompt, steps):
    ids = list(prompt)
    for _ in range(steps):
        x = np.asarray([ids])
        logits = np.asarray(lm({"token_ids": x, "padding_mask": np.ones_like(x)}))
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt) :]


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_cached_greedy_decoding_equals_recomputing_the_prefix(family, gpt2, llama_dir):
    from tftransfer import backbones

    if family == "gpt2":
        backbone, _ = gpt2
    else:
        backbone = backbones.Backbone(backbones.load(llama_dir)[0])
    lm = backbone.causal_lm()
    prompts = [[5, 17, 40, 41, 200], [7], [90, 91, 92]]  # uneven: right-padded in a batch
    decoder = tf.function(
        lambda p, n: CachedDecoder(lm, stop_ids=[], pad_id=0, max_length=32)(p, n),
        autograph=False,
    )
    out = decoder(tf.ragged.constant(prompts), tf.constant(6)).to_list()
    assert out == [_full_recompute_greedy(lm, p, 6) for p in prompts]


@pytest.mark.slow
def test_decoding_stops_and_samples_reproducibly(gpt2):
    backbone, _ = gpt2
    lm = backbone.causal_lm()
    prompts = tf.ragged.constant([[5, 17, 40], [7, 8]])
    greedy = CachedDecoder(lm, [], 0, 32)(prompts, 5).to_list()
    first = greedy[0][0]
    stopped = CachedDecoder(lm, [first], 0, 32)(prompts, 5).to_list()
    assert stopped[0] == []  # the stop token ends the row and is not output
    assert len(stopped[1]) <= 5

    def sample(seed, top_k=0, top_p=1.0):
        return CachedDecoder(lm, [], 0, 32)(prompts, 8, 1.0, top_k, top_p, seed).to_list()

    assert sample(3) == sample(3)
    assert sample(3) != sample(4)
    assert sample(3, top_k=1) == CachedDecoder(lm, [], 0, 32)(prompts, 8).to_list()
    assert sample(5, top_p=1e-6) == CachedDecoder(lm, [], 0, 32)(prompts, 8).to_list()


@pytest.mark.slow
def test_long_prompts_fail_or_lose_their_start(gpt2):
    backbone, tokenizer = gpt2
    lm = backbone.causal_lm()
    long_prompt = tf.constant(["the movie was great " * 10])

    def generate(task, prompts):
        fn = task.serving_functions(lm, backbone)["generate_with_options"][0]
        return tf.function(fn, autograph=False)(prompts, 4, 0.0, 0, 1.0, 0)

    strict = CausalLM(CausalLMConfig(max_length=20), tokenizer)
    with pytest.raises(tf.errors.InvalidArgumentError, match="prompt too long"):
        generate(strict, long_prompt)
    lenient = CausalLM(CausalLMConfig(max_length=20, prompt_truncation="left"), tokenizer)
    ids = tf.function(lambda p: lenient.prompt_ids(p, 4), autograph=False)(long_prompt)
    full = np.asarray(tokenizer("the movie was great " * 10)).tolist()
    assert ids.to_list() == [full[-16:]]
    assert generate(lenient, long_prompt)["generated_tokens"].numpy().tolist() == [4]


@pytest.mark.slow
def test_generated_text_is_always_valid_utf8(gpt2):
    # A random byte-level model emits bytes that end inside characters, or
    # form none: strict clients must still decode every answer.
    backbone, tokenizer = gpt2
    task = CausalLM(CausalLMConfig(max_length=48), tokenizer)
    # (Already a tf.function with a signature: the ints below do not retrace it.)
    generate = task.serving_functions(backbone.causal_lm(), backbone)["generate_with_options"][0]
    prompts = tf.constant(["今天天气很好，我们去", "😀👍🏽", "naïve café"])
    for max_new_tokens in range(1, 17):
        for seed in (1, 2):
            out = generate(prompts, max_new_tokens, 1.0, 0, 1.0, seed)["generated_text"]
            for text in out.numpy():
                text.decode("utf-8")  # strict: raises on invalid UTF-8


def _lm_params(llama_dir, data, **task):
    return configs.load(
        ["configs/shakespeare_smollm2.yaml"],
        {
            "backbone": {"spec": llama_dir},
            "data": {"train": {"path": data}, "validation": {"path": data}},
            "task": {"causal_lm": {"max_seq_length": 16, "max_new_tokens": 6, **task}},
            "trainer": {"batch_size": 4, "train_steps": 4, "checkpoint_every": 2},
        },
    )


@pytest.mark.slow
def test_epochs_0_makes_a_run_of_the_pretrained_decoder_as_it_is(tmp_path, llama_dir):
    data = tmp_path / "text.txt"
    data.write_text("\n".join(tiny.LM_TEXT))
    params = _lm_params(llama_dir, str(data))
    params.override({"trainer": {"train_steps": 0, "epochs": 0}})
    run_dir = str(tmp_path / "run")
    metrics = experiment.train(params, run_dir)
    assert metrics["checkpoint_step"] == 0
    assert os.path.exists(os.path.join(run_dir, "checkpoints", "ckpt-0.index"))
    pretrained, _ = backbones.load(llama_dir)
    loaded = loaded_run.LoadedRun(run_dir).backbone.model
    for a, b in zip(pretrained.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    # What users make it for: generation from (and export of) the checkpoint.
    assert generation.Generator.from_model_dir(run_dir)(["the"])[0]["generated_tokens"] == 6


@pytest.mark.slow
def test_train_evaluate_export_and_generate_in_a_fresh_process(tmp_path, llama_dir):
    data = tmp_path / "text.txt"
    data.write_text("\n".join(tiny.LM_TEXT * 2))
    run_dir = str(tmp_path / "run")
    metrics = experiment.train(_lm_params(llama_dir, str(data)), run_dir)
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["nll"]))
    assert metrics["tokens"] > len(" ".join(tiny.LM_TEXT * 2).split())
    chinese = "naïve café, 你好 世界"
    prompts = ["the movie", chinese, ""]
    generator = generation.Generator.from_model_dir(run_dir)
    in_process = generator(prompts)
    assert [r["generated_tokens"] for r in in_process] == [6, 6, 6]
    # `stream` (what the CLI writes from) yields each batch as it is done.
    stream = generator.stream(prompts, batch_size=1)
    assert next(stream) == in_process[0]
    assert list(stream) == in_process[1:]
    path = export.export_run(run_dir)
    meta = export.read_metadata(path)
    assert {"generate", "generate_with_options", "score"} <= set(meta["signatures"])
    script = f"""
import json, tensorflow as tf, tensorflow_text  # the TF Serving condition
m = tf.saved_model.load({path!r})
out = m.signatures["generate"](prompt=tf.constant({prompts!r}))
score = m.signatures["score"](text=tf.constant([{chinese!r}]))
print(json.dumps({{"text": [t.decode("utf-8", "replace") for t in out["generated_text"].numpy()],
                  "score": float(score["mean_log_likelihood"][0]),
                  "count": int(score["token_count"][0])}}))
"""
    fresh = fresh_process.python(script)
    assert fresh["text"] == [r["generated_text"] for r in in_process]
    # A short and a long prompt that still leaves room for max_new_tokens.
    served = tf.saved_model.load(path)
    assert serving_warmup.replay(served, path) == 2
    # A client's options outside their range are refused, with the reason.
    good = {"max_new_tokens": 2, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}
    dtypes = {"max_new_tokens": tf.int32, "top_k": tf.int32, "seed": tf.int64}
    for bad, message in [
        ({"max_new_tokens": -1}, "max_new_tokens must be >= 0"),
        ({"max_new_tokens": 5000}, "max_new_tokens must be <= task.causal_lm.max_length - 1"),
        ({"temperature": float("nan")}, "temperature must be a number >= 0"),
        ({"top_k": -3}, "top_k must be >= 0"),
        ({"top_p": 2.0}, "top_p must be > 0 and <= 1"),
    ]:
        options = {k: tf.constant(v, dtypes.get(k, tf.float32)) for k, v in {**good, **bad}.items()}
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            served.signatures["generate_with_options"](prompt=tf.constant(["the"]), **options)
    # The CLI's generator says which prompt does not fit, in one line.
    with pytest.raises(generation.GenerationError, match="^prompt 2: prompt too long"):
        generator(["the", "the king " * 600])
    with pytest.raises(generation.GenerationError, match="^max_new_tokens must be <="):
        generator(["the"], generation.Options(max_new_tokens=5000))
    # Chinese text goes through the byte-level BPE and back unchanged.
    tokenizer = loaded_run.LoadedRun(run_dir).task.tokenizer
    round_trip = tf.function(lambda t: tokenizer.detokenize(tokenizer(t)), autograph=False)
    assert round_trip(tf.constant([chinese])).numpy()[0].decode("utf-8") == chinese
    assert fresh["count"] == len(np.asarray(tokenizer(chinese))) + 1  # + the end token
    assert fresh["score"] < 0


def test_xla_compiled_decoding_gives_the_same_tokens(llama_dir):
    from tftransfer import backbones

    lm = backbones.Backbone(backbones.load(llama_dir)[0]).causal_lm()
    prompts = tf.ragged.constant([[5, 17, 40, 41, 200], [7]])

    def decode(jit_compile):
        decoder = CachedDecoder(lm, [], 0, 100, jit_compile=jit_compile)
        return tf.function(lambda p: decoder(p, 6), autograph=False)(prompts).to_list()

    assert decode(True) == decode(False)


@pytest.mark.slow
def test_lora_continued_pretraining_saves_a_merged_decoder_preset(tmp_path, llama_dir):
    data = tmp_path / "text.txt"
    data.write_text("\n".join(tiny.LM_TEXT * 2))
    params = _lm_params(llama_dir, str(data), save_backbone=True)
    params.override(
        {"transfer": {"strategy": "lora", "lora_rank": 2}, "trainer": {"learning_rate": 1e-2}}
    )
    run_dir = str(tmp_path / "run")
    experiment.train(params, run_dir)
    from tftransfer import backbones

    preset, _ = backbones.load(os.path.join(run_dir, "backbone"))
    assert not [w.path for w in preset.weights if "lora" in w.path]
    # The preset computes what the adapted model computes (adapters merged).
    loaded = loaded_run.LoadedRun(run_dir)
    tokens = np.array([[5, 9, 17, 3, 8, 2]], np.int32)
    inputs = {"token_ids": tokens, "padding_mask": np.ones_like(tokens)}
    expected = loaded.backbone.model(inputs)
    np.testing.assert_allclose(preset(inputs), expected, atol=1e-5)
    base, _ = backbones.load(llama_dir)
    assert not np.allclose(base(inputs), expected, atol=1e-5)

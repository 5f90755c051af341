"""Masked-LM continued pretraining on the tiny BERT: rows, masks, the saved preset."""

import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny

from tftransfer import backbones, configs, experiment, export, loaded_run
from tftransfer.tasks.masked_lm import MaskedLM, MaskedLMConfig


def _task(tiny_preset, **config):
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(tiny_preset)
    return MaskedLM(MaskedLMConfig(**config), tokenizer), tokenizer


@pytest.mark.slow
def test_documents_become_rows_without_losing_a_token(tiny_preset):
    task, tokenizer = _task(tiny_preset, max_seq_length=6)
    texts = ["the movie was great fun and i love it", "bad", ""]
    rows = tf.function(task.encode)({"text": tf.constant(texts)})
    ids = rows["token_ids"].numpy()
    mask = rows["padding_mask"].numpy().astype(bool)
    body = [list(r[m][1:-1]) for r, m in zip(ids, mask)]
    assert all(r[m][0] == task.cls_id and r[m][-1] == task.sep_id for r, m in zip(ids, mask))
    expected = [tf.function(tokenizer)(tf.constant([t]))[0].numpy().tolist() for t in texts]
    # 9 tokens -> rows of 4, 4, 1; "bad" one row; the empty document one empty row.
    assert [len(b) for b in body] == [4, 4, 1, 1, 0]
    assert sum(body[:3], []) == expected[0] and body[3] == expected[1]


def test_masks_follow_the_configured_rates(tiny_preset):
    task, _ = _task(tiny_preset, max_seq_length=128)
    rng = np.random.default_rng(0)
    special = {task.pad_id, task.cls_id, task.sep_id, task.mask_id}
    words = [i for i in range(len(tiny.VOCAB)) if i not in special]
    token_ids = rng.choice(words, size=(256, 128)).astype(np.int32)
    token_ids[:, 0], token_ids[:, -1] = task.cls_id, task.sep_id
    token_ids[:8, 64:] = task.pad_id  # padding is never chosen
    features = {"token_ids": tf.constant(token_ids)}
    masked = task.mask(features)
    positions = masked["mask_positions"].numpy()
    labels = masked["mask_labels"].numpy()
    new = masked["token_ids"].numpy()
    chosen = labels >= 0
    rows = np.repeat(np.arange(256)[:, None], positions.shape[1], axis=1)
    picked = token_ids[rows[chosen], positions[chosen]]
    assert not set(picked.tolist()) & special
    candidates = np.isin(token_ids, list(words)).sum()
    assert abs(chosen.sum() / candidates - 0.15) < 0.01
    after = new[rows[chosen], positions[chosen]]
    np.testing.assert_array_equal(labels[chosen], picked)
    as_mask = np.mean(after == task.mask_id)
    unchanged = np.mean(after == picked)
    assert abs(as_mask - 0.8) < 0.03
    # Unchanged: the 10% kept, plus random tokens that happen to be the same one.
    assert abs(unchanged - 0.1) < 0.03
    assert abs(1 - as_mask - unchanged - 0.1) < 0.03


@pytest.mark.slow
def test_continued_pretraining_writes_a_preset_that_loads(tiny_preset, tmp_path):
    text = tmp_path / "domain.txt"
    text.write_text(" ".join(["the movie was great fun and i love it"] * 40))
    params = configs.load(
        [],
        {
            "backbone": {"spec": tiny_preset},
            "task": {"type": "masked_lm", "masked_lm": {"max_seq_length": 16}},
            "data": {"train": {"path": str(text)}, "validation": {"path": str(text)}},
            "trainer": {"batch_size": 4, "epochs": 12, "learning_rate": 1e-2, "eval_every": 24},
        },
    )
    model_dir = str(tmp_path / "dapt")
    metrics = experiment.train(params, model_dir)
    assert metrics["masked_tokens"] > 0 and metrics["perplexity"] < len(tiny.VOCAB)
    losses = [r["loss"] for r in experiment.history.read(model_dir) if "loss" in r]
    assert losses[0] > losses[-1]

    preset = str(tmp_path / "dapt" / "backbone")
    loaded, _ = backbones.load(preset)
    run = experiment.build(params)
    loaded_run.restore(run.model, model_dir)
    for a, b in zip(loaded.weights, run.backbone.model.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    # Fill-mask from the run's serving function: the tiny model has learnt
    # the text's words (not yet which one goes where).
    serve, _ = run.task.serving_functions(run.model, run.backbone)["serving_default"]
    out = tf.function(serve)(tf.constant(["the movie was [MASK] fun", "no mask here"]))
    assert out["mask_count"].numpy().tolist() == [1, 0]
    top = [t.decode() for t in out["tokens"].numpy()[0, 0]]
    assert set(top) <= set("the movie was great fun and i love it".split())
    probabilities = out["probabilities"].numpy()
    assert np.all(np.diff(probabilities[0, 0]) <= 0) and probabilities[0, 0].sum() <= 1.0 + 1e-6
    assert not out["tokens"].numpy()[1].any() and not probabilities[1].any()
    # The export answers the same (raw text in, tokens out).
    path = export.export_run(model_dir, str(tmp_path / "serving"))
    served = tf.saved_model.load(path).signatures["serving_default"](
        text=tf.constant(["the movie was [MASK] fun", "no mask here"])
    )
    assert served["tokens"].numpy().tolist() == out["tokens"].numpy().tolist()
    np.testing.assert_allclose(served["probabilities"].numpy(), probabilities, atol=1e-5)


def test_whole_word_masking_predicts_every_token_of_a_chosen_word(tiny_preset):
    task, tokenizer = _task(tiny_preset, max_seq_length=64, whole_word_masking=True)
    text = " ".join(["played walking sadly the bad movies"] * 6)  # words of 2 tokens and of 1
    rows = tf.function(task.encode)({"text": tf.constant([text] * 64)})
    token_ids = rows["token_ids"].numpy()
    masked = task.mask({"token_ids": rows["token_ids"]})
    positions, labels = masked["mask_positions"].numpy(), masked["mask_labels"].numpy()
    vocab = tokenizer.get_vocabulary()
    words = chosen_words = 0
    for row, (pos, lab) in enumerate(zip(positions, labels)):
        chosen = set(pos[lab >= 0].tolist())
        assert not chosen & {0} and all(token_ids[row, p] not in (2, 3) for p in chosen)
        starts = [
            p
            for p in range(1, 63)
            if token_ids[row, p] > 4 and not vocab[token_ids[row, p]].startswith("##")
        ]
        for i, start in enumerate(starts):
            end = (
                starts[i + 1]
                if i + 1 < len(starts)
                else int(rows["padding_mask"][row].numpy().sum()) - 1
            )
            span = set(range(start, end))
            words += 1
            if span & chosen:
                # A chosen word is chosen whole (unless cut by max_predictions).
                assert span <= chosen or len(chosen) >= task.max_predictions - 1, (
                    row,
                    span,
                    chosen,
                )
                chosen_words += 1
    assert abs(chosen_words / words - 0.15) < 0.03

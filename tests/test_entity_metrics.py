import pytest

from tftransfer.metrics import entity


def test_scores_entities_not_tokens():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]  # PER span cut short
    r = entity.report(gold, pred)
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["per_type"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["per_type"]["LOC"]["f1"] == 1.0


def test_conlleval_reading_vs_strict():
    gold = [["B-PER", "I-PER", "O"]]
    pred = [["I-PER", "I-PER", "O"]]  # conlleval: I- after start begins the entity
    assert entity.report(gold, pred)["f1"] == 1.0
    assert entity.report(gold, pred, strict=True)["f1"] == 0.0


def test_shape_mismatch_and_conll_file(tmp_path):
    with pytest.raises(ValueError, match="same shapes"):
        entity.report([["O"]], [["O", "O"]])
    path = tmp_path / "pred.conll"
    entity.write_conll(str(path), [["EU", "rejects"]], [["B-ORG", "O"]], [["B-ORG", "B-MISC"]])
    assert path.read_text() == "EU B-ORG B-ORG\nrejects O B-MISC\n\n"

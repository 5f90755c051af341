import pytest
from official.nlp.tools import squad_evaluate_v1_1

from tftransfer.metrics import squad


@pytest.mark.parametrize(
    "prediction,golds,exact,f1",
    [
        ("the Denver Broncos", ["Denver Broncos"], 100.0, 100.0),  # article dropped
        ("Denver  Broncos!", ["denver broncos"], 100.0, 100.0),  # case, space, punctuation
        ("Broncos", ["Denver Broncos"], 0.0, 100 * 2 / 3),  # P=1, R=1/2
        ("Carolina", ["Denver Broncos", "Carolina Panthers"], 0.0, 100 * 2 / 3),  # best gold
        ("an apple", ["apple pie"], 0.0, 100 * 2 / 3),
        ("", ["Denver"], 0.0, 0.0),
    ],
)
def test_official_semantics(prediction, golds, exact, f1):
    out = squad.score({"q": prediction}, {"q": golds})
    assert out["exact_match"] == pytest.approx(exact)
    assert out["f1"] == pytest.approx(f1)


def test_missing_prediction_scores_zero_and_agrees_with_v1_script():
    golds = {"a": ["Paris"], "b": ["in 1990", "1990"], "c": ["blue whale"]}
    predictions = {"a": "Paris", "b": "1990."}
    out = squad.score(predictions, golds)
    assert out["missing"] == 1
    assert out["exact_match"] == pytest.approx(200 / 3)
    dataset = [
        {"paragraphs": [{"qas": [{"id": k, "answers": [{"text": t} for t in v]}]}]}
        for k, v in golds.items()
    ]
    official = squad_evaluate_v1_1.evaluate(dataset, predictions)
    assert out["exact_match"] == pytest.approx(100 * official["exact_match"])
    assert out["f1"] == pytest.approx(100 * official["final_f1"])


def test_unanswerable_questions_and_threshold():
    golds = {"has": ["Paris"], "none1": [], "none2": []}
    predictions = {"has": "Paris", "none1": "", "none2": "London"}
    out = squad.score(predictions, golds, {"has": 0.1, "none1": 0.9, "none2": 0.6})
    assert out["no_answer_questions"] == 2 and out["has_answer_questions"] == 1
    assert out["no_answer_exact_match"] == pytest.approx(50.0)
    assert out["exact_match"] == pytest.approx(200 / 3)
    # Answering null above p=0.1 gets all three right.
    assert out["best_exact_match"] == pytest.approx(100.0)
    assert out["best_exact_match_threshold"] == pytest.approx(0.1)


def test_v1_gold_answers_that_normalise_to_nothing_count_as_in_the_v1_script():
    # dev-v1.1 has three such questions (e.g. 5725bad5271a42140099d0c1): a gold
    # answer of only an article or punctuation. The v1.1 script keeps it, so an
    # empty prediction matches it; the v2.0 script drops it.
    golds = {"q": ["the", "The Broncos"]}
    v1 = squad.score({"q": "a"}, golds)  # v1.1 data (every question answerable)
    v2 = squad.score({"q": "a"}, golds, version="2.0")
    assert v1["exact_match"] == 100.0 and v2["exact_match"] == 0.0

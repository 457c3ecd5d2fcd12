"""Caption-quality metrics on hand-written captions whose right answer is known."""

from __future__ import annotations

import math

import pytest

from workbench.probe_videos import ground_truth
from workbench.quality import metrics

DETAILED = "A red circle moves from the left towards the centre while a blue square appears at the top right."
GENERIC = "A modern office environment featuring contemporary furniture."
GENERIC_2 = "The video shows a scene in an indoor setting with various objects in the background."

# One second of a probe video, as in the timeline JSON: a red circle moving right, a blue square at rest.
SECOND = {
    "second": 0, "start_s": 0.0, "end_s": 1.0,
    "objects": [
        {"object": "mover", "shape": "circle", "colour": "red", "region": "left", "motion": "right"},
        {"object": "still", "shape": "square", "colour": "blue", "region": "top right", "motion": "none"},
    ],
    "events": [],
    "description": "On a grey background, a red circle moves right and a blue square is at the top right.",
}


@pytest.fixture(scope="module")
def events_truth() -> dict:
    return ground_truth("events", 0, (320, 240), 10, 8)


# ---- tokens -----------------------------------------------------------------------------------------------


def test_tokenize_drops_timestamps_and_punctuation():
    assert metrics.tokenize("[0.5s] A red circle. [1.5s] 0-1s: Blue!") == ["a", "red", "circle", "blue"]
    assert metrics.tokenize("[00:12] it's here") == ["it's", "here"]


# ---- success, coverage, degeneration ----------------------------------------------------------------------


@pytest.mark.parametrize("caption", [
    "the the the the the the the",
    "circle circle circle circle",
    "a red circle a red circle a red circle a red circle",
    "LLLLLLLLLLLLLLLL",
    "?? !! ...",
])
def test_degenerate_captions_are_failures(caption):
    assert metrics.is_degenerate(caption)
    assert not metrics.is_usable("ok", caption)
    assert metrics.success_rate(["ok"], [caption]) == 0.0


def test_normal_sentences_are_not_degenerate(events_truth):
    sentences = [DETAILED, GENERIC, GENERIC_2, "A dog runs after a ball in the park and jumps over a bench."]
    sentences += [s["description"] for s in events_truth["seconds"]]
    for sentence in sentences:
        assert metrics.degeneration_reason(sentence) == "", sentence


def test_success_rate_counts_only_usable_captions():
    statuses = ["ok", "ok", "ok", "empty", "error"]
    texts = [DETAILED, "circle circle circle circle circle", "[2.5s]", "", ""]
    assert metrics.success_rate(statuses, texts) == pytest.approx(1 / 5)
    assert math.isnan(metrics.success_rate([], []))


def test_coverage_counts_seconds_with_a_usable_caption():
    spans = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert metrics.coverage(spans, [True, False, True, False, False], 5.0) == pytest.approx(0.4)
    # two-second windows each cover two seconds; a partial last second counts as a second
    assert metrics.coverage([(0, 2), (2, 4), (4, 4.5)], [True, False, True], 4.5) == pytest.approx(3 / 5)


# ---- length, diversity, repetition ------------------------------------------------------------------------


def test_length_and_distinct_n():
    assert metrics.length("[0.5s] A red circle, moving.") == 4
    varied = ["a red circle moves right", "a blue square appears", "the green triangle disappears"]
    repeated = ["a red circle moves right"] * 3
    assert metrics.distinct_n(varied, 1) > 0.9
    assert metrics.distinct_n(repeated, 1) == pytest.approx(1 / 3)
    assert metrics.distinct_n(varied, 2) > metrics.distinct_n(repeated, 2)


def test_repetition_measures():
    assert metrics.repeated_ngram_share(DETAILED, 3) == 0.0
    assert metrics.repeated_ngram_share("a red circle a red circle a red circle", 3) == pytest.approx(4 / 7)
    assert metrics.longest_token_run("a red red red red circle") == 4
    assert metrics.longest_token_run(DETAILED) == 1


# ---- genericness ------------------------------------------------------------------------------------------


def test_detailed_caption_scores_more_specific_than_generic_ones():
    for generic in (GENERIC, GENERIC_2):
        assert metrics.genericness(DETAILED) < metrics.genericness(generic)
        assert metrics.specificity(DETAILED) > metrics.specificity(generic)
    assert metrics.genericness(GENERIC) >= 0.8
    assert metrics.genericness(GENERIC_2) >= 0.6
    assert metrics.genericness(DETAILED) <= 0.1
    assert metrics.specificity(DETAILED) >= 0.8


def test_stock_phrases_are_found_once_each():
    assert metrics.stock_phrases(GENERIC) == ["a modern office environment", "contemporary furniture"]
    assert "the video shows" in metrics.stock_phrases(GENERIC_2)
    assert metrics.stock_phrases(DETAILED) == []


# ---- staticness -------------------------------------------------------------------------------------------


def test_repeated_caption_series_scores_static():
    repeated = ["A red circle on the left of a grey background."] * 5
    changing = ["a red circle on the left", "the circle moves right", "a blue square appears",
                "the square turns yellow", "the yellow square disappears"]
    changed = [True] * 4
    assert metrics.staticness(repeated, changed) == 1.0
    assert metrics.staticness(changing, changed) < 0.3
    assert metrics.caption_change_rate(repeated) == 0.0
    assert metrics.caption_change_rate(changing) == 1.0


def test_staticness_only_judges_pairs_where_the_truth_changed():
    captions = ["a red circle", "a red circle", "a blue square"]
    # the only change in the truth is between windows 1 and 2, and the captions follow it
    assert metrics.staticness(captions, [False, True]) == 0.0
    assert math.isnan(metrics.staticness(captions, [False, False]))
    with pytest.raises(ValueError, match="needs 2 entries"):
        metrics.staticness(captions, [True])


# ---- references -------------------------------------------------------------------------------------------


def test_reference_scores_order_a_match_above_a_mismatch():
    references = [[s] for s in ("a red circle moves right", "a blue square appears at the top",
                                "a green triangle disappears from the left")]
    good = metrics.reference_scores([r[0] for r in references], references)
    bad = metrics.reference_scores(["an office", "a modern room", "furniture"], references)
    assert good["bleu_4"] == pytest.approx(1.0, abs=1e-6) and good["rouge_l"] == pytest.approx(1.0)
    assert bad["bleu_4"] < 0.01 and bad["rouge_l"] < 0.2
    assert good["cider"] > 1.0 > bad["cider"]
    assert len(good["per_caption"]) == 3


def test_cider_of_a_one_caption_corpus_is_zero_and_empty_captions_score_zero():
    single = metrics.reference_scores(["a red circle moves right"], [["a red circle moves right"]])
    assert single["cider"] == 0.0  # IDF over one document is 0 for every n-gram
    empty = metrics.reference_scores(["", "a red circle"], [["a blue square"], ["a red circle"]])
    assert empty["per_caption"][0]["rouge_l"] == 0.0


# ---- grounding --------------------------------------------------------------------------------------------


def test_caption_naming_an_absent_colour_is_a_hallucination():
    facts = metrics.truth_facts([SECOND], 0.0, 1.0)
    wrong = metrics.grounding("A green circle moves right.", facts)
    assert wrong["hallucinated"] == ["colour:green"]
    assert "shape:circle" in wrong["mentioned"] and "motion:right" in wrong["mentioned"]
    assert "colour:red" in wrong["missed"]
    shape = metrics.grounding("A red triangle moves right.", facts)
    assert shape["hallucinated"] == ["shape:triangle"]
    right = metrics.grounding("A red circle moves to the right and a blue square sits at the top.", facts)
    assert right["hallucinated"] == [] and right["n_mentioned"] == right["n_facts"] == 5
    # the background may be named
    assert metrics.grounding("A red circle on a grey background.", facts)["hallucinated"] == []


def test_facts_count_only_in_the_right_second(events_truth):
    seconds = events_truth["seconds"]
    appears = next(s for s in seconds if any(e["type"] == "appears" for e in s["events"]))
    before = appears["second"] - 1
    caption = appears["description"]
    here = metrics.grounding(caption, metrics.truth_facts(seconds, appears["start_s"], appears["end_s"]))
    early = metrics.grounding(caption, metrics.truth_facts(seconds, float(before), float(before + 1)))
    assert here["n_mentioned"] == here["n_facts"] and here["hallucinated"] == []
    assert "appears" not in " ".join(early["mentioned"])  # nothing appears a second earlier
    assert early["hallucinated"]  # the newcomer's colour and shape are not on screen yet


def test_reference_sentences_mention_every_fact_of_their_second(events_truth):
    rows = []
    for second in events_truth["seconds"]:
        facts = metrics.truth_facts(events_truth["seconds"], second["start_s"], second["end_s"])
        rows.append(metrics.grounding(second["description"], facts))
    assert metrics.fact_recall(rows) == 1.0
    assert metrics.hallucination_rate(rows) == 0.0
    kinds = metrics.recall_by_kind(rows)
    assert {k for k, v in kinds.items() if not math.isnan(v)} == set(metrics.FACT_KINDS)


def test_hallucination_rate_is_undefined_when_nothing_is_named():
    facts = metrics.truth_facts([SECOND], 0.0, 1.0)
    rows = [metrics.grounding("something happens here", facts)]
    assert metrics.fact_recall(rows) == 0.0
    assert math.isnan(metrics.hallucination_rate(rows))


@pytest.mark.parametrize("caption, expected", [
    ("a circle moves right", {"right"}),
    ("a circle drifts upward", {"up"}),
    ("the square slides from the top towards the bottom", {"down"}),
    ("the triangle moves from the centre towards the left", {"left"}),
    ("a circle on the left and a square on the right", set()),
])
def test_stated_directions(caption, expected):
    assert metrics.stated_directions(metrics.tokenize(caption)) == expected


def test_staticness_discounts_what_the_truth_itself_keeps(events_truth):
    references = [s["description"] for s in events_truth["seconds"]]
    kept = [metrics.caption_similarity(a, b) for a, b in zip(references[:-1], references[1:])]
    changed = [True] * (len(references) - 1)
    assert min(kept) > 0.3  # consecutive references share their unchanged objects
    assert metrics.staticness(references, changed, kept) == 0.0  # the references follow the truth exactly
    assert metrics.staticness(references, changed) > 0.5  # raw similarity would call them static
    assert metrics.staticness([references[0]] * len(references), changed, kept) == 1.0

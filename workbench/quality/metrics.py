"""Caption-quality metrics as pure functions of caption text (and a probe video's ground truth).

No torch, no model: each metric takes strings (and plain dicts from the probe-video timeline JSON), so it
is tested on hand-written captions whose right answer is known. Every metric is a number measured the
same way for every model; docs/caption_quality.md says what each one means and where it misleads.

Text is normalized by `tokenize`: lower case, timestamp tags such as "[0.5s]" or "0-1s:" removed,
words of letters and digits kept, punctuation dropped. No PTB tokenizer (it needs Java).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# ----------------------------------------------------------------------------------------------
# Tokens

# "[0.5s]", "[12 s]", "[frame 3]", "[00:12]", "0-1s:", "0.0 - 1.0 s:", "00:01-00:02:" at any position.
_TIMESTAMP_TAG = re.compile(
    r"\[\s*(?:frame\s*\d+|\d+(?:[.:]\d+)*\s*s?(?:\s*[-–]\s*\d+(?:[.:]\d+)*\s*s?)?)\s*\]"
    r"|\b\d+(?:[.:]\d+)*\s*s?\s*[-–]\s*\d+(?:[.:]\d+)*\s*s?\s*:",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

STOPWORDS = frozenset("""
a an the and or but of in on at to from into onto over under with without by for as is are was were be been
being it its this that these those there here then than while when where which who whom whose what how
has have had do does did can could will would should may might must also very just so such not no nor
too only own same both each few more most other some any all one two three four five six seven eight nine
ten i you he she we they them his her their our your my me him us out up down off again further once
""".split())
# Direction words are stopwords in English lists but carry facts here.
STOPWORDS = STOPWORDS - {"up", "down", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                         "ten"}


def strip_timestamps(text: str) -> str:
    """Remove timestamp tags a model (or the BLIP-2 adapter) puts in front of captions.

    >>> strip_timestamps("[0.5s] a red circle [1.5s] a blue square")
    'a red circle a blue square'
    >>> strip_timestamps("0-1s: a dot")
    'a dot'
    """
    return " ".join(_TIMESTAMP_TAG.sub(" ", text).split())


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens without timestamp tags or punctuation.

    >>> tokenize("[0.5s] A red circle, moving RIGHT!")
    ['a', 'red', 'circle', 'moving', 'right']
    """
    return _WORD.findall(strip_timestamps(text or "").lower())


def content_tokens(tokens: Sequence[str]) -> list[str]:
    """Tokens that are not stopwords.

    >>> content_tokens(tokenize("The red circle is on the left"))
    ['red', 'circle', 'left']
    """
    return [t for t in tokens if t not in STOPWORDS]


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """Consecutive n-token tuples.

    >>> ngrams(["a", "b", "c"], 2)
    [('a', 'b'), ('b', 'c')]
    """
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


# ----------------------------------------------------------------------------------------------
# Length, diversity, repetition, degeneration


def length(text: str) -> int:
    """Word tokens in a caption (timestamps and punctuation not counted).

    >>> length("[0.5s] A red circle.")
    3
    """
    return len(tokenize(text))


def distinct_n(captions: Iterable[str], n: int = 1) -> float:
    """Distinct n-grams over all n-grams of a set of captions (corpus-level; 0 when there are none).

    1.0 means no n-gram is ever reused; a model that writes the same sentence every second scores low.

    >>> distinct_n(["a red circle", "a red circle"], 1)
    0.5
    >>> distinct_n(["a red circle", "a blue square"], 2)
    1.0
    """
    grams = [g for caption in captions for g in ngrams(tokenize(caption), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_ngram_share(text: str, n: int = 3) -> float:
    """Share of a caption's n-grams that repeat an n-gram seen earlier in the same caption.

    >>> repeated_ngram_share("a red circle a red circle", 3)
    0.25
    >>> repeated_ngram_share("the the the the the", 1)
    0.8
    """
    grams = ngrams(tokenize(text), n)
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams)


def longest_token_run(text: str) -> int:
    """Longest run of one token repeated back to back (a single-token loop).

    >>> longest_token_run("a red red red circle")
    3
    >>> longest_token_run("")
    0
    """
    tokens = tokenize(text)
    best = run = 0
    for i, token in enumerate(tokens):
        run = run + 1 if i and token == tokens[i - 1] else 1
        best = max(best, run)
    return best


# A caption is degenerate when it loops: these thresholds were set on hand-written loops and normal
# sentences (tests/quality/test_metrics.py); a normal sentence repeats no trigram and no token 4 times running.
DEGENERATE_TOKEN_RUN = 4
DEGENERATE_REPEATED_TRIGRAMS = 0.4
DEGENERATE_DISTINCT_1 = 0.35
DEGENERATE_MIN_TOKENS = 6
DEGENERATE_CHAR_LOOP = 6  # a "word" this long made of one or two letters ("llllllll", "ababab") is a loop


def degeneration_reason(text: str) -> str:
    """Why a non-empty caption is degenerate ('' when it is not): a loop, or no words at all.

    >>> degeneration_reason("a red circle moves right")
    ''
    >>> degeneration_reason("circle circle circle circle circle")
    'token repeated 5 times in a row'
    >>> degeneration_reason("!!! ...")
    'no words'
    >>> degeneration_reason("LLLLLLLLLLLL")
    "character loop 'llllllllllll'"
    """
    if not (text or "").strip():
        return ""
    tokens = tokenize(text)
    if not any(any(c.isalpha() for c in t) for t in tokens):
        return "no words"
    loops = [t for t in tokens if len(t) >= DEGENERATE_CHAR_LOOP and len(set(t)) <= 2]
    if loops:
        return f"character loop {loops[0]!r}"
    run = longest_token_run(text)
    if run >= DEGENERATE_TOKEN_RUN:
        return f"token repeated {run} times in a row"
    if len(tokens) >= DEGENERATE_MIN_TOKENS:
        share = repeated_ngram_share(text, 3)
        if share >= DEGENERATE_REPEATED_TRIGRAMS:
            return f"{share:.0%} of trigrams repeat"
        distinct = len(set(tokens)) / len(tokens)
        if distinct <= DEGENERATE_DISTINCT_1:
            return f"only {distinct:.0%} distinct tokens"
    return ""


def is_degenerate(text: str) -> bool:
    return bool(degeneration_reason(text))


def is_usable(status: str, text: str) -> bool:
    """A caption that counts as a success: status ok, some words left after timestamps, no loop.

    >>> is_usable("ok", "a red circle"), is_usable("ok", "[0.5s] "), is_usable("error", "a red circle")
    (True, False, False)
    """
    return status == "ok" and bool(tokenize(text)) and not is_degenerate(text)


def success_rate(statuses: Sequence[str], texts: Sequence[str]) -> float:
    """Share of captioning attempts that gave a usable caption (not empty, no error, not degenerate).

    >>> success_rate(["ok", "ok", "error", "empty"], ["a red circle", "dot dot dot dot", "", ""])
    0.25
    """
    if len(statuses) != len(texts):
        raise ValueError(f"{len(statuses)} statuses for {len(texts)} texts")
    if not statuses:
        return float("nan")
    return sum(is_usable(s, t) for s, t in zip(statuses, texts)) / len(statuses)


def n_seconds(duration_s: float) -> int:
    """Whole or partial seconds in a video of this duration.

    >>> n_seconds(8.0), n_seconds(4.5), n_seconds(0.0)
    (8, 5, 0)
    """
    return max(0, math.ceil(duration_s - 1e-9))


def covered_seconds(spans: Sequence[tuple[float, float]], usable: Sequence[bool], duration_s: float) -> list[bool]:
    """For each second of the video, whether a usable caption's span [start, end) overlaps it."""
    covered = [False] * n_seconds(duration_s)
    for (start, end), ok in zip(spans, usable):
        if not ok:
            continue
        for second in range(len(covered)):
            if start < second + 1 and end > second:
                covered[second] = True
    return covered


def coverage(spans: Sequence[tuple[float, float]], usable: Sequence[bool], duration_s: float) -> float:
    """Share of the video's seconds with a usable caption.

    >>> coverage([(0, 1), (1, 2), (2, 3), (3, 4)], [True, False, True, True], 4.0)
    0.75
    >>> coverage([(0.0, 8.0)], [True], 8.0)  # one caption for the whole clip covers it, but says little
    1.0
    """
    covered = covered_seconds(spans, usable, duration_s)
    return sum(covered) / len(covered) if covered else float("nan")


# ----------------------------------------------------------------------------------------------
# Genericness

# Stock phrases of captioning models that describe any clip equally well (collected from generic captions
# that real models write about offices, rooms and streets). Matched on normalized tokens.
STOCK_PHRASES: tuple[str, ...] = (
    "a modern office environment", "modern office", "office environment", "contemporary furniture",
    "the video shows", "the video depicts", "this video shows", "in this video", "the video features",
    "the image shows", "the image depicts", "this image shows", "the scene shows", "the scene depicts",
    "the scene is", "a scene of", "a view of", "a variety of", "various objects", "a number of",
    "in the background", "in the foreground", "the camera", "the overall atmosphere", "the atmosphere",
    "creating a", "a sense of", "well lit", "brightly lit", "visually appealing", "everyday life",
    "appears to be", "seems to be", "some kind of", "an indoor setting", "an outdoor setting",
    "indoor environment", "outdoor environment", "a room with", "a static shot", "a close up",
    "nothing happens", "nothing much happens", "a person", "some people", "a group of people",
)
# Words that fit nearly any clip and carry little information about this one.
LOW_INFORMATION_WORDS = frozenset("""
modern contemporary environment environments setting settings scene scenes featuring features feature
various variety several things thing objects object items item stuff area areas space spaces background
foreground image images video videos picture pictures view views shot shots footage frame frames clip
shows show showing shown depicts depicting depicted displays displaying display atmosphere overall general
nice beautiful bright clean simple typical ordinary interesting different many lot lots something someone
somewhere somehow kind sort type seems seem appears located situated visible present elements element style
design decor aesthetic vibrant serene cozy bustling lively calm peaceful professional stylish sleek
individual individuals people person content static still image
""".split())

COLOURS: dict[str, str] = {
    "red": "red", "green": "green", "blue": "blue", "yellow": "yellow", "purple": "purple", "violet": "purple",
    "orange": "orange", "white": "white", "black": "black", "pink": "pink", "brown": "brown", "grey": "grey",
    "gray": "grey", "cyan": "cyan", "magenta": "magenta", "gold": "gold", "golden": "gold", "silver": "silver",
    "turquoise": "cyan", "teal": "cyan", "beige": "beige",
}
SHAPES: dict[str, str] = {
    "circle": "circle", "circles": "circle", "ball": "circle", "balls": "circle", "disc": "circle",
    "disk": "circle", "dot": "circle", "dots": "circle", "sphere": "circle", "oval": "circle",
    "circular": "circle", "round": "circle",
    "square": "square", "squares": "square", "box": "square", "boxes": "square", "cube": "square",
    "rectangle": "square", "rectangles": "square", "block": "square", "blocks": "square",
    "rectangular": "square",
    "triangle": "triangle", "triangles": "triangle", "triangular": "triangle", "pyramid": "triangle",
}
DIRECTION_WORDS: dict[str, str] = {
    "rightward": "right", "rightwards": "right", "leftward": "left", "leftwards": "left",
    "upward": "up", "upwards": "up", "downward": "down", "downwards": "down",
    "rises": "up", "rising": "up", "climbs": "up", "falls": "down", "falling": "down", "drops": "down",
    "sinks": "down",
}
# Region words and where they are, for "from the left towards the centre" (x right, y down).
REGIONS: dict[str, tuple[float, float]] = {
    "left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1), "centre": (0, 0), "center": (0, 0),
    "middle": (0, 0), "up": (0, -1), "down": (0, 1),
}
MOTION_VERBS = frozenset("""
moves move moving moved slides slide sliding glides gliding travels travel travelling traveling goes going
drifts drifting rolls rolling crosses crossing heads heading shifts shifting passes passing runs running
""".split())
APPEAR_WORDS = frozenset("appears appear appeared appearing enters enter entered entering emerges emerge "
                         "emerging arrives arrive arriving materializes materialises pops".split())
DISAPPEAR_WORDS = frozenset("disappears disappear disappeared disappearing vanishes vanish vanished vanishing "
                            "leaves exits exit exited gone fades fading".split())
CHANGE_WORDS = frozenset("turns turn turning turned changes change changing changed becomes become becoming "
                         "recolours recolors".split())
SPECIFIC_WORDS = (frozenset(COLOURS) | frozenset(SHAPES) | frozenset(DIRECTION_WORDS) | frozenset(REGIONS)
                  | MOTION_VERBS | APPEAR_WORDS | DISAPPEAR_WORDS | CHANGE_WORDS)


def stock_phrases(text: str) -> list[str]:
    """The stock phrases a caption contains (longest first, overlapping ones counted once).

    >>> stock_phrases("A modern office environment featuring contemporary furniture.")
    ['a modern office environment', 'contemporary furniture']
    """
    return [phrase for phrase, _ in _stock_matches(tokenize(text))]


def _stock_matches(tokens: list[str]) -> list[tuple[str, range]]:
    taken: set[int] = set()
    found = []
    for phrase in sorted(STOCK_PHRASES, key=lambda p: -len(p.split())):
        words = phrase.split()
        for i in range(len(tokens) - len(words) + 1):
            span = range(i, i + len(words))
            if tokens[i:i + len(words)] == words and not taken & set(span):
                taken |= set(span)
                found.append((phrase, span))
    return sorted(found, key=lambda item: item[1].start)


def genericness(text: str) -> float:
    """Share of a caption's content words that are stock-phrase or low-information words (0 specific .. 1 generic).

    NaN for a caption without content words (nothing to judge).

    >>> genericness("A modern office environment featuring contemporary furniture.")
    1.0
    >>> genericness("A red circle moves from the left towards the centre.")
    0.0
    """
    tokens = tokenize(text)
    in_stock = {i for _, span in _stock_matches(tokens) for i in span}
    content = [(i, t) for i, t in enumerate(tokens) if t not in STOPWORDS]
    if not content:
        return float("nan")
    generic = sum(1 for i, t in content if i in in_stock or t in LOW_INFORMATION_WORDS)
    return generic / len(content)


def specificity(text: str) -> float:
    """Share of content words that name something checkable: a colour, shape, place, direction, motion or event.

    >>> specificity("A red circle moves left.")
    1.0
    >>> specificity("A modern office environment featuring contemporary furniture.")
    0.0
    """
    content = content_tokens(tokenize(text))
    if not content:
        return float("nan")
    return sum(t in SPECIFIC_WORDS for t in content) / len(content)


# ----------------------------------------------------------------------------------------------
# Staticness


def caption_similarity(a: str, b: str) -> float:
    """Jaccard overlap of two captions' content-word sets (1 identical .. 0 nothing shared).

    >>> caption_similarity("A red circle on the left", "a red circle, on the left.")
    1.0
    >>> caption_similarity("a red circle", "a blue square")
    0.0
    """
    set_a, set_b = set(content_tokens(tokenize(a))), set(content_tokens(tokenize(b)))
    if not set_a and not set_b:
        return 1.0
    return len(set_a & set_b) / len(set_a | set_b)


def staticness(captions: Sequence[str], truth_changed: Sequence[bool] | None = None,
               truth_similarity: Sequence[float] | None = None) -> float:
    """How little consecutive captions change where the ground truth changed (1 static .. 0 following it).

    `truth_changed[i]` says whether the truth differs between window i and i + 1 (len(captions) - 1
    entries); without it every consecutive pair counts. A pair scores its caption similarity; with
    `truth_similarity` (the similarity of the pair's reference descriptions) only the similarity beyond what
    the truth itself keeps counts, rescaled to 0..1, so captions that repeat the unchanged part of a scene
    are not called static (pairs whose references read the same are skipped). NaN when there is no pair.

    >>> staticness(["a red circle"] * 3, [True, True])
    1.0
    >>> staticness(["a red circle", "a blue square", "a green triangle"], [True, True])
    0.0
    >>> staticness(["a red circle, a blue square", "a red circle, a blue triangle"], [True], [0.6])
    0.0
    """
    n_pairs = max(0, len(captions) - 1)
    for name, values in (("truth_changed", truth_changed), ("truth_similarity", truth_similarity)):
        if values is not None and len(values) != n_pairs:
            raise ValueError(f"{name} needs {n_pairs} entries, got {len(values)}")
    scores = []
    for i in range(n_pairs):
        if truth_changed is not None and not truth_changed[i]:
            continue
        similarity = caption_similarity(captions[i], captions[i + 1])
        if truth_similarity is not None:
            kept = truth_similarity[i]
            if kept >= 1:
                continue  # the references read the same: no change in words for the captions to follow
            similarity = max(0.0, similarity - kept) / (1 - kept)
        scores.append(similarity)
    return sum(scores) / len(scores) if scores else float("nan")


def caption_change_rate(captions: Sequence[str]) -> float:
    """Share of consecutive caption pairs whose normalized text differs at all.

    >>> caption_change_rate(["A red circle.", "a red circle", "a blue square"])
    0.5
    """
    normalized = [" ".join(tokenize(c)) for c in captions]
    pairs = list(zip(normalized[:-1], normalized[1:]))
    return sum(a != b for a, b in pairs) / len(pairs) if pairs else float("nan")


# ----------------------------------------------------------------------------------------------
# References: BLEU, ROUGE-L, CIDEr (pycocoevalcap scorers, our own tokenization)

_EMPTY = "emptycaption"  # stands in for an empty caption: it matches no reference word


def reference_scores(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Corpus BLEU-1..4, ROUGE-L and CIDEr-D of captions against their references, plus per-caption scores.

    CIDEr weighs n-grams by their inverse document frequency over the references of this corpus, so it
    needs several captions to mean anything: a corpus of one scores 0 whatever the caption says.

    >>> scores = reference_scores(["a red circle moves right"], [["a red circle moves right"]])
    >>> round(scores["bleu_1"], 3), round(scores["rouge_l"], 3)
    (1.0, 1.0)
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
    if not candidates:
        return {"bleu_1": float("nan"), "bleu_2": float("nan"), "bleu_3": float("nan"), "bleu_4": float("nan"),
                "rouge_l": float("nan"), "cider": float("nan"), "per_caption": []}
    res = {i: [" ".join(tokenize(c)) or _EMPTY] for i, c in enumerate(candidates)}
    gts = {i: [" ".join(tokenize(r)) or _EMPTY for r in refs] or [_EMPTY] for i, refs in enumerate(references)}
    bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, rouge_each = Rouge().compute_score(gts, res)
    cider, cider_each = Cider().compute_score(gts, res)
    per_caption = [{"bleu_4": float(bleu_each[3][i]), "rouge_l": float(rouge_each[i]),
                    "cider": float(cider_each[i])} for i in range(len(candidates))]
    return {"bleu_1": float(bleu[0]), "bleu_2": float(bleu[1]), "bleu_3": float(bleu[2]), "bleu_4": float(bleu[3]),
            "rouge_l": float(rouge), "cider": float(cider), "per_caption": per_caption}


# ----------------------------------------------------------------------------------------------
# Alignment with reference segments (a team's own subtitles or dense captions)

_OVERLAP_EPS = 1e-6  # seconds: windows and segments that only touch do not overlap


def overlap_s(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Seconds two [start, end) spans share.

    >>> overlap_s((0.0, 1.0), (0.5, 3.0))
    0.5
    >>> overlap_s((0.0, 1.0), (1.0, 2.0))
    0.0
    """
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def align_references(windows: Sequence[tuple[float, float]],
                     segments: Sequence[tuple[float, float]]) -> list[list[int]]:
    """For each window, the indices of the reference segments that overlap it (in segment order).

    Dense-caption segments overlap each other and span many windows; a window gets every segment that
    shares any time with it, so it is scored against all the sentences that describe that moment.

    >>> align_references([(0, 1), (1, 2), (2, 3)], [(0.0, 1.5), (2.5, 9.0), (1.2, 1.4)])
    [[0], [0, 2], [1]]
    """
    return [[j for j, segment in enumerate(segments) if overlap_s(window, segment) > _OVERLAP_EPS]
            for window in windows]


def segments_covered(windows: Sequence[tuple[float, float]], usable: Sequence[bool],
                     segments: Sequence[tuple[float, float]]) -> list[bool]:
    """For each reference segment, whether a window with a usable caption overlaps it.

    >>> segments_covered([(0, 1), (1, 2)], [True, False], [(0.2, 0.8), (1.0, 2.0), (5.0, 6.0)])
    [True, False, False]
    """
    return [any(ok and overlap_s(window, segment) > _OVERLAP_EPS for window, ok in zip(windows, usable))
            for segment in segments]


# ----------------------------------------------------------------------------------------------
# Probe-video grounding


@dataclass
class TruthFacts:
    """What a span of a probe video shows: facts a caption should mention, words it may use."""

    facts: set[tuple[str, str]] = field(default_factory=set)  # (kind, value), kind in FACT_KINDS
    colours: set[str] = field(default_factory=set)  # colours a caption may name without hallucinating
    shapes: set[str] = field(default_factory=set)
    signature: tuple = ()  # compares spans: equal signatures = nothing changed


FACT_KINDS = ("colour", "shape", "motion", "appears", "disappears", "changes_colour")


def truth_facts(seconds: Sequence[dict[str, Any]], start_s: float, end_s: float,
                background: str = "grey") -> TruthFacts:
    """Facts of the ground-truth seconds that overlap [start_s, end_s) (probe-video timeline JSON records).

    Colour and shape of every object present; the direction of every moving object; each event (an
    object appears, disappears, changes colour, named by its shape). The background colour may be named.
    """
    found = TruthFacts(colours={background})
    signature = []
    for record in seconds:
        if not (record["start_s"] < end_s and record["end_s"] > start_s):
            continue
        for obj in record["objects"]:
            found.facts |= {("colour", obj["colour"]), ("shape", obj["shape"])}
            found.colours.add(obj["colour"])
            found.shapes.add(obj["shape"])
            if obj.get("motion", "none") != "none":
                found.facts.add(("motion", obj["motion"]))
            signature.append((obj["shape"], obj["colour"], obj.get("region"), obj.get("motion")))
        for event in record["events"]:
            kind = event["type"]
            found.facts.add((kind, event["shape"]))
            found.shapes.add(event["shape"])
            found.colours |= {c for c in (event.get("colour"), event.get("from"), event.get("to")) if c}
            signature.append((kind, event["shape"]))
    found.signature = tuple(sorted(map(str, signature)))
    return found


def stated_directions(tokens: Sequence[str]) -> set[str]:
    """Directions of motion a caption states: 'moves right', 'drifts upward', 'from the left towards the centre'.

    A place ('on the left') is not a direction; a destination ('to the right') is; source and destination
    together give the direction between them.

    >>> sorted(stated_directions(tokenize("A circle on the left moves to the right")))
    ['right']
    >>> sorted(stated_directions(tokenize("a square moves from the left towards the centre")))
    ['right']
    >>> sorted(stated_directions(tokenize("a red circle on the left")))
    []
    """
    directions = {DIRECTION_WORDS[t] for t in tokens if t in DIRECTION_WORDS}
    source = destination = None
    for i, token in enumerate(tokens):
        if token not in REGIONS:
            continue
        before = [t for t in tokens[max(0, i - 2):i] if t != "the"]
        if before and before[-1] in MOTION_VERBS and token in ("left", "right", "up", "down"):
            directions.add(token)
        elif before and before[-1] in ("to", "towards", "toward", "into"):
            destination = token
        elif before and before[-1] == "from":
            source = token
    if destination is not None:
        dx, dy = REGIONS[destination]
        if source is not None:
            dx, dy = dx - REGIONS[source][0], dy - REGIONS[source][1]
        if (dx, dy) != (0, 0):
            if abs(dx) >= abs(dy):
                directions.add("right" if dx > 0 else "left")
            else:
                directions.add("down" if dy > 0 else "up")
    return directions


def _mentions(tokens: list[str], fact: tuple[str, str], named_colours: set[str], named_shapes: set[str],
              directions: set[str]) -> bool:
    kind, value = fact
    words = set(tokens)
    if kind == "colour":
        return value in named_colours
    if kind == "shape":
        return value in named_shapes
    if kind == "motion":
        return value in directions
    if kind == "appears":
        # "appears to be" is hedging, not an event
        hits = [i for i, t in enumerate(tokens) if t in APPEAR_WORDS
                and not (t.startswith("appear") and tokens[i + 1:i + 2] in (["to"], ["as"]))]
        return bool(hits)
    if kind == "disappears":
        return bool(words & DISAPPEAR_WORDS)
    if kind == "changes_colour":
        return bool(words & CHANGE_WORDS)
    raise ValueError(f"unknown fact kind {kind!r}")


def grounding(caption: str, truth: TruthFacts) -> dict[str, Any]:
    """Which of a span's facts a caption mentions, and which colours or shapes it names that are not there.

    >>> facts = TruthFacts({("colour", "red"), ("shape", "circle"), ("motion", "right")}, {"red", "grey"}, {"circle"})
    >>> g = grounding("A red circle moves right next to a blue square", facts)
    >>> g["n_mentioned"], g["n_facts"], g["hallucinated"]
    (3, 3, ['colour:blue', 'shape:square'])
    """
    tokens = tokenize(caption)
    named_colours = {COLOURS[t] for t in tokens if t in COLOURS}
    named_shapes = {SHAPES[t] for t in tokens if t in SHAPES}
    directions = stated_directions(tokens)
    mentioned = sorted(f"{k}:{v}" for k, v in truth.facts
                       if _mentions(tokens, (k, v), named_colours, named_shapes, directions))
    missed = sorted(f"{k}:{v}" for k, v in truth.facts if f"{k}:{v}" not in mentioned)
    hallucinated = sorted([f"colour:{c}" for c in named_colours - truth.colours]
                          + [f"shape:{s}" for s in named_shapes - truth.shapes])
    return {
        "n_facts": len(truth.facts), "n_mentioned": len(mentioned), "mentioned": mentioned, "missed": missed,
        "n_named": len(named_colours) + len(named_shapes), "n_hallucinated": len(hallucinated),
        "hallucinated": hallucinated,
    }


def fact_recall(rows: Sequence[dict[str, Any]]) -> float:
    """Mentioned facts over all facts, summed over spans (rows from `grounding`).

    >>> fact_recall([{"n_facts": 3, "n_mentioned": 3}, {"n_facts": 1, "n_mentioned": 0}])
    0.75
    """
    total = sum(r["n_facts"] for r in rows)
    return sum(r["n_mentioned"] for r in rows) / total if total else float("nan")


def hallucination_rate(rows: Sequence[dict[str, Any]]) -> float:
    """Hallucinated colours and shapes over all colours and shapes named (NaN when none are named:
    a model that names nothing is not credited with naming nothing wrong).

    >>> hallucination_rate([{"n_named": 2, "n_hallucinated": 1}, {"n_named": 2, "n_hallucinated": 0}])
    0.25
    """
    named = sum(r["n_named"] for r in rows)
    return sum(r["n_hallucinated"] for r in rows) / named if named else float("nan")


def recall_by_kind(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Fact recall per fact kind (colour, shape, motion, appears, disappears, changes_colour); NaN if absent."""
    totals, hits = Counter(), Counter()
    for row in rows:
        for fact in row["mentioned"]:
            kind = fact.split(":")[0]
            totals[kind] += 1
            hits[kind] += 1
        for fact in row["missed"]:
            totals[fact.split(":")[0]] += 1
    return {kind: hits[kind] / totals[kind] if totals[kind] else float("nan") for kind in FACT_KINDS}

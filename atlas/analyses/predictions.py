"""What a model with a task head predicts for each example (sentence pages, the sentences index).

The runner keeps the task head's raw output per example (``Record.logits``); this analysis turns
it into a prediction, once per example, and keeps it for every sentence (a few numbers each, as
the sentences list keeps each text):

- sequence classification: the label (argmax of the logits), its probability, and the
  probability of every class (softmax);
- token classification: a label per token (argmax), with its probability; special tokens get
  none (-1);
- question answering: the answer span (start ≤ end, at most MAX_ANSWER tokens, inside the
  second segment of a pair, or the non-special tokens of a single text) with the highest
  p_start·p_end, softmax over the tokens a span may use; its score is that product.

Labels are the classes of ``config.id2label``, in id order (``RunInfo.classes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from .. import pieces
from ..model import SEQUENCE, SPANS, TOKENS, Record
from .base import Analysis, Result, RunInfo
from .measures import predicted_class, softmax

MAX_ANSWER = 30  # the longest answer span, in tokens (as transformers' QA pipeline)
TOKEN_DIGITS = 3  # per-token probabilities are kept to 3 decimals (one per token, every sentence)


def predict(record: Record, task: str, classes: Sequence[str]) -> dict[str, Any] | None:
    """The prediction for one record, as the pages and atlas.json show it (module docstring)."""
    if record.logits is None:
        return None
    if task == SEQUENCE:
        probabilities = softmax(record.logits)
        best = predicted_class(record)
        return {
            "label": classes[best],
            "score": float(probabilities[best]),
            "probabilities": probabilities.tolist(),
            "labels": [classes[best]],
        }
    if task == TOKENS:
        probabilities = softmax(record.logits)
        tags = probabilities.argmax(-1)
        tags[record.special] = -1
        scores = np.round(probabilities.max(-1), TOKEN_DIGITS)
        scores[record.special] = 0.0
        return {
            "tags": tags.tolist(),
            "scores": scores.tolist(),
            "labels": [classes[c] for c in sorted(set(tags.tolist()) - {-1})],
        }
    if task == SPANS:
        return answer_span(record)
    return None


def answer_span(record: Record) -> dict[str, Any]:
    """The best answer span of a question-answering record (module docstring)."""
    allowed = ~record.special
    if (record.segments == 1).any():
        allowed &= record.segments == 1
    if not allowed.any():
        return {"start": -1, "end": -1, "answer": "", "score": 0.0, "labels": []}
    start = np.where(allowed, record.logits[:, 0], -np.inf)
    end = np.where(allowed, record.logits[:, 1], -np.inf)
    scores = np.outer(softmax(start), softmax(end))
    n = record.n
    band = np.triu(np.ones((n, n), bool)) & ~np.triu(np.ones((n, n), bool), MAX_ANSWER)
    scores = np.where(band, scores, -1.0)
    first, last = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return {
        "start": int(first),
        "end": int(last),
        "answer": pieces.join(pieces.shown_tokens(record.tokens, record.special)[first : last + 1]),
        "score": float(scores[first, last]),
        "labels": [],
    }


class Predictions(Analysis):
    """Each example's prediction by the model's task head (nothing for a model without one)."""

    name = "predictions"
    needs: ClassVar[frozenset[str]] = frozenset()  # the task head's output, which every pass gives
    sections: ClassVar[Mapping[str, str]] = {"sentence_top": "sections/prediction.html"}

    def start(self, run: RunInfo) -> None:
        super().start(run)
        self.predictions: list[dict[str, Any] | None] = [None] * run.sentences

    def add(self, record: Record) -> None:
        if record.logits is not None:
            self.predictions[record.index] = predict(record, self.run.task, self.run.classes)

    def state(self) -> dict:
        return {"predictions": self.predictions}

    def load_state(self, state) -> None:
        self.predictions = list(state["predictions"])

    def merge(self, other: Predictions) -> None:
        for index, prediction in enumerate(other.predictions):
            if prediction is not None:
                self.predictions[index] = prediction

    def finish(self, results: Mapping[str, Result]) -> Result:
        if not self.run.task:
            return Result(data={"task": "", "classes": [], "sentences": []})
        counts: dict[str, int] = {}
        for prediction in self.predictions:
            for label in (prediction or {}).get("labels", ()):
                counts[label] = counts.get(label, 0) + 1
        return Result(
            data={
                "task": self.run.task,
                "classes": list(self.run.classes),
                "sentences": self.predictions,
                "counts": dict(sorted(counts.items())),
            }
        )

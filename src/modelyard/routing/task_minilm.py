"""The `minilm` task classifier: the cheap sparse model averaged with a linear head over the
prompt's MiniLM embedding (config `task_classifier: minilm`; the `learned` extra).

Why: on real prompts the embedding carries what word lists miss (a request to "rephrase" or "react
to customer reviews" is writing without one writing word the hand-written set taught the sparse
model); averaging the two calibrated probability vectors beats either alone on the real-prompt test
split (docs/ROUTING.md). Cost: one MiniLM pass over the first `EMBED_TOKENS` word pieces (~4-5 ms on
one core). The gateway runs `prepare` for every analysed group in a worker thread before routing
(onnxruntime releases the GIL), so `analyze_window`, on the event loop, finds the embedding ready.

    python -m modelyard.routing.task_minilm tests/data/tasks.jsonl [--write]   # train the head, report
"""

from __future__ import annotations

import gzip
import sys
import threading
from collections import OrderedDict
from functools import lru_cache
from importlib import resources
from typing import Any

import orjson

from .classify import UNSURE, TaskModel, _scan, _stopword_language, default_model, language

HEAD_FILE = "task_head_minilm.json.gz"
EMBED_TOKENS = 32  # word pieces of the prompt the head reads (its opening: the instruction)
_CACHE = 256  # embeddings kept between `prepare` and `analyze_window` (and for repeated prompts)


class MiniLMTaskModel:
    """`TaskModel`'s `analyze_window` / `predict` interface over the mixed probabilities."""

    def __init__(self, sparse: TaskModel, weights: list[list[float]], bias: list[float], embedder: Any,
                 temperature: float = 1.0, head_weight: float = 0.5) -> None:
        import numpy as np

        # The average of two calibrated distributions is under-confident where they agree: the
        # average is raised to 1/temperature (fitted out-of-fold) and renormalised.
        self.power = 1.0 / temperature
        self.head_weight = head_weight  # the head's share of the mixture (fitted out-of-fold)
        self.sparse = sparse
        self.classes = sparse.classes
        self.threshold = sparse.threshold
        self._w = np.asarray(weights, dtype=np.float32)  # (dim, classes), temperature folded in
        self._b = np.asarray(bias, dtype=np.float32)
        self._embedder = embedder
        self._probs: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def head_probabilities(self, text: str) -> list[float]:
        """The head's calibrated probabilities of a (windowed) prompt: cached, else embedded here."""
        with self._lock:
            hit = self._probs.get(text)
        if hit is not None:
            return hit
        import numpy as np

        z = self._embedder.embed([text], max_tokens=EMBED_TOKENS)[0] @ self._w + self._b
        e = np.exp(z - z.max())
        probs = (e / e.sum()).tolist()
        with self._lock:
            self._probs[text] = probs
            if len(self._probs) > _CACHE:
                self._probs.popitem(last=False)
        return probs

    def prepare(self, text: str) -> None:
        """Embed ahead of routing (worker thread): `analyze_window` then only looks it up."""
        self.head_probabilities(text)

    def combine(self, sparse: list[float], head: list[float]) -> list[float]:
        """The calibrated ensemble of the two models' probabilities."""
        power, h = self.power, self.head_weight
        mixed = [((1 - h) * a + h * b) ** power for a, b in zip(sparse, head, strict=True)]
        total = sum(mixed)
        return [m / total for m in mixed]

    def probabilities(self, text: str) -> list[float]:
        from .classify import window

        win = window(text)
        return self.combine(self.sparse.probabilities(win), self.head_probabilities(win))

    def _best(self, probs: list[float]) -> tuple[str, float]:
        p = max(probs)
        return (self.classes[probs.index(p)] if p >= self.threshold else UNSURE), p

    def predict(self, text: str) -> tuple[str, float]:
        return self._best(self.probabilities(text))

    def analyze_window(self, text: str) -> tuple[str, float, list[str], set[str], str]:
        words, _, found, look = _scan(text)
        probs = self.combine(self.sparse.probabilities(text), self.head_probabilities(text))
        task, p = self._best(probs)
        lang = "en" if not look else _stopword_language(words[:40]) if look == 1 else language(text, words)
        return task, p, words, found, lang


@lru_cache(maxsize=1)
def minilm_model() -> MiniLMTaskModel:
    """The shipped head over the shipped sparse model, with the MiniLM embedder (loaded once, at
    config load; raises `EmbeddingError` naming what to install when the extra is missing)."""
    from ..embed.backends import get_embedder

    d = orjson.loads(gzip.decompress(resources.files(__package__).joinpath("data", HEAD_FILE).read_bytes()))
    embedder = get_embedder(d["embedding"])
    embedder.embed(["warm up"], max_tokens=EMBED_TOKENS)
    return MiniLMTaskModel(default_model(), d["weights"], d["bias"], embedder, d["ensemble_temperature"],
                           d.get("head_weight", 0.5))


def train_head(X: Any, y: Any, l2: float = 1e-3, steps: int = 300, lr: float = 0.1,
               chat_weight: float = 1.0) -> tuple[Any, Any]:
    """Softmax regression on embeddings by full-batch Adam (numpy); `chat` rows weigh `chat_weight`."""
    import numpy as np

    from .features import TASKS

    n, d = X.shape
    k = len(TASKS)
    w, b = np.zeros((d, k)), np.zeros(k)
    sw = np.where(y == TASKS.index("chat"), chat_weight, 1.0)
    sw = (sw * n / sw.sum())[:, None]  # normalised: the L2 penalty keeps its strength
    target = np.eye(k)[y]
    mw, vw, mb, vb = np.zeros_like(w), np.zeros_like(w), np.zeros(k), np.zeros(k)
    for t in range(1, steps + 1):
        z = X @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = sw * (p - target) / n
        gw, gb = X.T @ g + l2 * w, g.sum(axis=0)
        mw, vw = 0.9 * mw + 0.1 * gw, 0.999 * vw + 0.001 * gw * gw
        mb, vb = 0.9 * mb + 0.1 * gb, 0.999 * vb + 0.001 * gb * gb
        w -= lr * (mw / (1 - 0.9 ** t)) / (np.sqrt(vw / (1 - 0.999 ** t)) + 1e-8)
        b -= lr * (mb / (1 - 0.9 ** t)) / (np.sqrt(vb / (1 - 0.999 ** t)) + 1e-8)
    return w, b


def main(argv: list[str]) -> None:
    import numpy as np

    from ..embed.backends import MINILM, get_embedder
    from .classify import featurize, window
    from .features import TASKS
    from .task_eval import evaluate, fit_temperature, markdown, real_training_examples, softmax, test_splits
    from .train_tasks import CHAT_WEIGHT, folds, load_examples, train, train_calibrated

    hand = load_examples(argv[0] if argv else "tests/data/tasks.jsonl")
    examples = hand + real_training_examples()
    emb = get_embedder(MINILM)
    X = emb.embed([window(t) for t, _ in examples], max_tokens=EMBED_TOKENS).astype(np.float64)
    y = np.array([TASKS.index(t) for _, t in examples])
    logits = np.zeros((len(y), len(TASKS)))
    sparse_logits = np.zeros((len(y), len(TASKS)))
    for held in folds(examples, 5):
        rest = np.setdiff1d(np.arange(len(y)), held)
        w, b = train_head(X[rest], y[rest], chat_weight=CHAT_WEIGHT)
        logits[held] = X[held] @ w + b
        fold_sparse = train([examples[i] for i in rest])
        for i in held:
            sparse_logits[i] = fold_sparse.scores(featurize(window(examples[i][0])))
    real = slice(len(hand), None)  # temperatures are fitted on the real prompts' out-of-fold predictions
    temp = fit_temperature(logits[real], y[real])
    sparse, info = train_calibrated(examples, calibrate_from=len(hand))
    head_p, sparse_p = softmax(logits[real] / temp), softmax(sparse_logits[real] / info["temperature"])

    def mixture(h: float) -> Any:
        return (1 - h) * sparse_p + h * head_p

    def nll(h: float) -> float:
        p = mixture(h)
        return float(-np.log(p[np.arange(len(p)), y[real]] + 1e-12).mean())

    head_weight = min((0.1 * i for i in range(1, 10)), key=nll)  # the mixture share, out-of-fold
    ens_temp = fit_temperature(np.log(mixture(head_weight)), y[real])
    w, b = train_head(X, y, chat_weight=CHAT_WEIGHT)
    model = MiniLMTaskModel(sparse, (w / temp).tolist(), (b / temp).tolist(), emb, ens_temp, head_weight)
    print(f"head temperature {temp}, head weight {head_weight:.1f}, ensemble temperature {ens_temp}; "
          f"head out-of-fold accuracy {(softmax(logits).argmax(1) == y).mean():.3f}")
    for name, rows in test_splits().items():
        print(f"\n{name} test split:\n")
        print(markdown(evaluate(model, rows)))
    if "--write" in argv:
        dest = resources.files(__package__).joinpath("data", HEAD_FILE)
        blob = {"embedding": MINILM, "embed_tokens": EMBED_TOKENS, "temperature": temp,
                "ensemble_temperature": ens_temp, "head_weight": round(head_weight, 2),
                "bias": [round(x, 4) for x in (b / temp).tolist()],
                "weights": [[round(x, 4) for x in row] for row in (w / temp).tolist()]}
        with open(str(dest), "wb") as f:
            f.write(gzip.compress(orjson.dumps(blob), mtime=0))
        print(f"wrote {dest}")


if __name__ == "__main__":
    main(sys.argv[1:])


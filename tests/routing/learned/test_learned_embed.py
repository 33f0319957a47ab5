"""The MiniLM embedding backend (real int8 ONNX model, loaded once per process) and its checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelyard.cache.embed import MINILM, EmbeddingError, MiniLMEmbedder, get_embedder


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    return get_embedder(MINILM)  # type: ignore[return-value]


def test_minilm_vectors_are_unit_length_and_semantic(minilm: MiniLMEmbedder) -> None:
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today.",
             "A man is eating food."]
    E = minilm.embed(texts)
    assert E.shape == (4, 384) and E.dtype == np.float32
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    sim = E @ E.T
    assert sim[0, 1] > 0.6 > sim[0, 2]
    assert np.allclose(E[0], E[3], atol=1e-6)


def test_batching_and_padding_do_not_change_vectors(minilm: MiniLMEmbedder) -> None:
    texts = ["short", "a much longer sentence with many more word pieces in it than the first one " * 3,
             "mid length one"]
    together = minilm.embed(texts)
    alone = np.vstack([minilm.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)
    assert minilm.embed([]).shape == (0, 384)
    long = minilm.embed(["word " * 2000])  # truncated to the model's 256 word pieces, not an error
    assert np.isfinite(long).all()


def test_model_file_is_checked_against_its_sha256(minilm: MiniLMEmbedder, tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    shutil.copy(minilm.model_path, bad)
    with open(bad, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(EmbeddingError, match=r"sha256 [0-9a-f]+ is not the expected"):
        MiniLMEmbedder(model_path=str(bad))
    with pytest.raises(EmbeddingError, match=r"model file not found"):
        MiniLMEmbedder(model_path=str(tmp_path / "nope.onnx"))
    with pytest.raises(EmbeddingError, match=r"tokenizer\.json not found"):
        MiniLMEmbedder(tokenizer_path=str(tmp_path / "nope.json"))


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(EmbeddingError, match="unknown embedding backend 'bert'"):
        get_embedder("bert")


def test_importing_the_gateway_does_not_load_onnxruntime() -> None:
    code = ("import sys, modelyard.server.app, modelyard.cli, modelyard.routing.learned; "
            "heavy = [m for m in ('onnxruntime', 'tokenizers', 'sklearn') if m in sys.modules]; "
            "assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_max_tokens_keeps_the_head_and_batches_agree(minilm: MiniLMEmbedder) -> None:
    head = "Which of the following statements about the French revolution is correct? " * 3
    a, b = minilm.embed([head + "the tail is about volcanoes", head + "a completely different tail"], max_tokens=16)
    full_a, full_b = minilm.embed([head + "the tail is about volcanoes", head + "a completely different tail"])
    assert np.allclose(a, b, atol=1e-5)  # past the cut nothing counts
    assert not np.allclose(full_a, full_b, atol=1e-3)
    short = minilm.embed(["a short prompt"], max_tokens=16)
    assert np.allclose(short, minilm.embed(["a short prompt"]), atol=1e-6)  # under the cut: unchanged
    texts = ["x " * 40, "short", "medium length prompt here"]
    assert np.allclose(minilm.embed(texts, max_tokens=16, batch_size=8),
                       np.vstack([minilm.embed([t], max_tokens=16) for t in texts]), atol=1e-4)


def test_the_key_is_what_a_cut_embedding_reads(minilm: MiniLMEmbedder) -> None:
    head = "Which  of the following\nstatements about the French revolution is correct? " * 3
    a, b = head + "the tail is about volcanoes", head + "a completely different tail"
    ka = minilm.key(a, 16)
    assert ka == minilm.key(b, 16) == minilm.key(ka, 16) and len(ka.split()) == 16 and "\n" not in ka
    assert np.array_equal(minilm.embed([ka], max_tokens=16), minilm.embed([a], max_tokens=16))
    assert minilm.key(a) == a and minilm.key(a, 256) == a  # no cut: the whole text


def test_a_router_keys_embeddings_by_the_embedded_head() -> None:
    from modelyard.routing.learned.base import EMBED_TOKENS
    from modelyard.routing.learned.knn import KnnRouter

    rng = np.random.default_rng(0)
    r = KnnRouter(["s", "w"], MINILM, X=rng.normal(size=(5, 384)).astype(np.float32),
                  Y=rng.integers(0, 2, size=(5, 2)).astype(np.float32))
    long = " ".join(f"word{i}" for i in range(3 * EMBED_TOKENS))
    key = r.embed_key(long)
    assert key.split() == long.split()[:EMBED_TOKENS] and r.embed_key(long + " more") == key
    assert np.array_equal(r.embed([key]), r.embed([long]))

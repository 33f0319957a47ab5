"""The MiniLM embedding backend (real int8 ONNX model, loaded once per process) and its checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelyard.embed import int8 as embed_int8
from modelyard.embed.backends import MINILM, MINILM_SHA256, EmbeddingError, MiniLMEmbedder, get_embedder


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


# -- the derived int8-arithmetic graph (embed/int8.py) -----------------------------------------

TEXTS = ["hi, how are you?", "Which of the following is NOT a mammal? A. whale B. bat C. shark D. dog",
         "Schreibe ein Gedicht über den Herbst.", "def add(a, b):\n    return a + b  # tests?",
         "If 3 pens cost $4.50, how much do 7 pens cost? Show your steps. " * 5]


@pytest.fixture(scope="module")
def source_graph(minilm: MiniLMEmbedder) -> MiniLMEmbedder:
    return MiniLMEmbedder(graph="source")


def test_the_int8_graph_runs_by_default_and_matches_the_source_graph(minilm: MiniLMEmbedder,
                                                                     source_graph: MiniLMEmbedder) -> None:
    pytest.importorskip("onnx")  # builds the graph (a `learned` extra; without it the source graph runs)
    assert minilm.graph == embed_int8.RECIPE, minilm.graph_note
    assert source_graph.graph == "source" and source_graph.graph_note == "as requested"
    for cut in (24, None):
        a, b = minilm.embed(TEXTS, max_tokens=cut), source_graph.embed(TEXTS, max_tokens=cut)
        cos = (a * b).sum(axis=1)
        assert cos.min() > embed_int8.MIN_COSINE and not np.array_equal(a, b)  # close, and really another graph
    q = minilm.embed(TEXTS)
    assert (q @ q.T)[0, 0] > 0.999 and np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)


def test_int8_vectors_do_not_depend_on_batch_mates(minilm: MiniLMEmbedder) -> None:
    together = minilm.embed(TEXTS, batch_size=8)  # activations are quantised per call: one text per call
    assert np.array_equal(together, np.vstack([minilm.embed([t]) for t in TEXTS]))


def test_unknown_graph_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_EMBED_GRAPH", "fp16")
    with pytest.raises(EmbeddingError, match="unknown MiniLM graph 'fp16'"):
        MiniLMEmbedder()


def test_a_graph_that_cannot_be_built_falls_back_to_the_source_graph(minilm: MiniLMEmbedder, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def no_onnx(*_: object) -> tuple[bytes, dict[str, object]]:
        raise embed_int8.Int8GraphError("building the int8 graph needs the 'onnx' package")

    monkeypatch.setenv("MODELYARD_CACHE_DIR", str(tmp_path))  # empty: nothing cached
    monkeypatch.setattr(embed_int8, "build", no_onnx)
    emb = MiniLMEmbedder()
    assert emb.graph == "source" and "'onnx' package" in emb.graph_note and emb.batch_size == 1
    assert np.allclose(emb.embed(TEXTS[:2]), minilm.embed(TEXTS[:2]), atol=0.05)


def test_a_built_graph_is_checked_cached_and_reused(minilm: MiniLMEmbedder, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnx")
    source = Path(minilm.model_path).read_bytes()
    data, info = embed_int8.build(source, minilm._pieces)
    assert info["products"] == 36 and info["min_check_cosine"] >= embed_int8.MIN_COSINE
    path = embed_int8.store_graph(data, MINILM_SHA256, info, tmp_path)
    assert path is not None and embed_int8.cached_graph(MINILM_SHA256, tmp_path) == data
    assert embed_int8.cached_graph("0" * 64, tmp_path) is None  # another source: not this graph
    monkeypatch.setenv("MODELYARD_CACHE_DIR", str(tmp_path))
    emb = MiniLMEmbedder()
    assert emb.graph_note == "cached" and np.array_equal(emb.embed(TEXTS), minilm.embed(TEXTS))
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= 0xFF
    path.write_bytes(bytes(corrupt))  # a damaged cache file is never loaded: its sha256 no longer matches
    assert embed_int8.cached_graph(MINILM_SHA256, tmp_path) is None
    monkeypatch.setattr(embed_int8, "MIN_COSINE", 1.001)  # a graph that fails its check is not kept
    with pytest.raises(embed_int8.Int8GraphError, match="check text at cosine"):
        embed_int8.build(source, minilm._pieces)


def test_an_unwritable_cache_directory_is_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert embed_int8.store_graph(b"graph", MINILM_SHA256, {}, blocker / "sub") is None
    assert embed_int8.cached_graph(MINILM_SHA256, blocker / "sub") is None


def test_the_cache_directory_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELYARD_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert embed_int8.cache_dir() == tmp_path / "modelyard"
    monkeypatch.setenv("MODELYARD_CACHE_DIR", str(tmp_path / "mine"))
    assert embed_int8.cache_dir() == tmp_path / "mine"

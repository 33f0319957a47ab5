"""Learned routers on small data: training is deterministic, files round-trip, bad files are clear
errors, the decision rule and calibration do what they say, knn learns online."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import orjson
import pytest
from learnkit import MMLU_SMALL, STRONG, WEAK, synthetic

from modelyard.embed.backends import HASH
from modelyard.routing.learned.base import RouterFileError, choose_many, load_router
from modelyard.routing.learned.calibrate import threshold_for_budget, threshold_for_strong_share
from modelyard.routing.learned.data import DataError, load_jsonl
from modelyard.routing.learned.train import embed_prompts, features_of, fit_router

KINDS = ("knn", "classifier", "mf")


@pytest.mark.parametrize("kind", KINDS)
def test_training_is_deterministic_and_files_round_trip(kind: str, tmp_path: Path) -> None:
    ex = load_jsonl(MMLU_SMALL)
    a = fit_router(kind, ex, strong=STRONG, weak=WEAK, backend=HASH)
    b = fit_router(kind, ex, strong=STRONG, weak=WEAK, backend=HASH)
    prompts = [e.prompt for e in ex[:20]]
    qa, qb = a.predict_batch(prompts), b.predict_batch(prompts)
    assert np.array_equal(qa, qb)
    a.save(tmp_path / "r.npz")
    loaded = load_router(tmp_path / "r.npz")
    assert (loaded.kind, loaded.models, loaded.embedding) == (kind, [STRONG, WEAK], HASH)
    assert np.allclose(loaded.predict_batch(prompts), qa, atol=1e-3)  # knn stores float16 embeddings
    p = loaded.predict(prompts[0])
    assert set(p) == {STRONG, WEAK} and all(np.isfinite(v) for v in p.values())


@pytest.mark.parametrize("kind", KINDS)
def test_routers_learn_the_hard_easy_split(kind: str) -> None:
    ex = synthetic()
    r = fit_router(kind, ex, strong="strong", weak="weak", backend=HASH)
    hard = r.preference(r.predict_batch(["prove that theorem 99 holds for every prime number and derive the bound"]))
    easy = r.preference(r.predict_batch(["hello there, how are you today friend 99"]))
    assert hard[0] > easy[0] + 0.3


@pytest.mark.parametrize("kind", KINDS)
def test_n_model_training_predicts_every_model(kind: str) -> None:
    r = fit_router(kind, synthetic(three=True), backend=HASH)
    assert r.models == ["strong", "weak", "mid"]
    assert (r.strong, r.weak) == ("strong", "weak")  # best mean quality vs cheapest
    assert r.costs == pytest.approx({"strong": 0.01, "weak": 0.001, "mid": 0.003})
    Q = r.predict_batch(["derive the closed form of the recurrence 5 and prove it by induction",
                         "say hi to my cat number 5"])
    costs = np.array([r.costs[m] for m in r.models])
    picks = choose_many(Q, costs, threshold=0.3)
    assert [r.models[i] for i in picks] == ["strong", "weak"]


def test_sparse_training_data_from_feedback() -> None:
    ex = synthetic()
    for i, e in enumerate(ex):  # each prompt scored for one model only, as feedback from the log is
        keep = "strong" if i % 2 else "weak"
        e.scores = {keep: e.scores[keep]}
    for kind in KINDS:
        r = fit_router(kind, ex, backend=HASH, sparse=True)
        assert set(r.models) == {"strong", "weak"}
        assert np.isfinite(r.predict_batch(["say hi to my cat number 3"])).all()


def test_decision_rules() -> None:
    Q = np.array([[0.9, 0.8, 0.5], [0.9, 0.5, 0.5], [0.6, 0.6, 0.7]])
    costs = np.array([3.0, 2.0, 1.0])
    assert choose_many(Q, costs, threshold=0.2).tolist() == [1, 0, 2]
    assert choose_many(Q, costs, threshold=-1.0).tolist() == [0, 0, 0]  # always the priciest
    assert choose_many(Q, costs, threshold=1.0).tolist() == [2, 2, 2]  # always the cheapest
    assert choose_many(Q, costs, min_quality=0.75).tolist() == [1, 0, 2]  # none reaches it: the best
    assert choose_many(Q, costs, lam=0.05).tolist() == [0, 0, 2]
    assert choose_many(Q, costs, lam=0.5).tolist() == [2, 2, 2]
    pair = np.array([[0.9, 0.5], [0.6, 0.5], [0.4, 0.5]])  # strong iff q_strong − q_weak ≥ t
    for t, want in ((-0.5, [0, 0, 0]), (0.0, [0, 0, 1]), (0.2, [0, 1, 1]), (0.5, [1, 1, 1])):
        assert choose_many(pair, np.array([1.0, 0.1]), threshold=t).tolist() == want


def test_calibration_to_strong_share_and_budget() -> None:
    rng = np.random.default_rng(0)
    Q = rng.random((500, 2))
    costs = np.array([1.0, 0.1])
    for share in (0.1, 0.3, 0.8):
        t = threshold_for_strong_share(Q, costs, 0, share)
        assert float(np.mean(choose_many(Q, costs, threshold=t) == 0)) == pytest.approx(share, abs=0.003)
    t = threshold_for_budget(Q, costs, 0.4)
    mean_cost = float(costs[choose_many(Q, costs, threshold=t)].mean())
    assert mean_cost <= 0.4 and mean_cost > 0.38
    Q3 = rng.random((400, 3))
    c3 = np.array([3.0, 2.0, 1.0])
    t3 = threshold_for_strong_share(Q3, c3, 0, 0.25)
    assert float(np.mean(choose_many(Q3, c3, threshold=t3) == 0)) == pytest.approx(0.25, abs=0.02)
    with pytest.raises(ValueError, match="below the cheapest"):
        threshold_for_budget(Q, costs, 0.01)


def test_knn_learns_online_from_partial_scores() -> None:
    ex = synthetic(5)
    r = fit_router("knn", ex, strong="strong", weak="weak", backend=HASH, params={"k": 5})
    prompt = "hello there, how are you this evening my friend"
    before = r.predict(prompt)["weak"]
    E = r.embedder().embed([prompt] * 8)
    Y = np.full((8, 2), np.nan, dtype=np.float32)
    Y[:, 1] = 0.0  # the weak model failed on it, over and over
    r.add_examples(E, r.features([prompt] * 8), Y)
    after = r.predict(prompt)
    assert before > 0.8 and after["weak"] < before - 0.3
    assert np.isfinite(after["strong"])


def test_router_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(RouterFileError, match="not found; train one"):
        load_router(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(RouterFileError, match="corrupt or not a modelyard router file"):
        load_router(tmp_path / "junk.npz")
    r = fit_router("classifier", synthetic(3), strong="strong", weak="weak", backend=HASH)
    good = tmp_path / "good.npz"
    r.save(good)
    raw = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RouterFileError, match="corrupt"):
        load_router(tmp_path / "cut.npz")

    def rewrite(name: str, **header_changes: object) -> Path:
        with np.load(good) as z:
            arrays = {k: z[k] for k in z.files}
        header = orjson.loads(arrays["header"].tobytes())
        header.update(header_changes)
        arrays["header"] = np.frombuffer(orjson.dumps(header), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        (tmp_path / name).write_bytes(buf.getvalue())
        return tmp_path / name

    with pytest.raises(RouterFileError, match="format version 99"):
        load_router(rewrite("v99.npz", version=99))
    with pytest.raises(RouterFileError, match="unknown router kind 'forest'"):
        load_router(rewrite("kind.npz", kind="forest"))
    with pytest.raises(RouterFileError, match="unknown embedding backend"):
        load_router(rewrite("emb.npz", embedding="word2vec"))
    with pytest.raises(RouterFileError, match="incomplete or inconsistent"):
        load_router(rewrite("models.npz", models=["a", "b", "c"]))
    # an archive without the W array
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(tmp_path / "now.npz", "w") as zout:
        for item in zin.infolist():
            if item.filename != "W.npy":
                zout.writestr(item, zin.read(item.filename))
    with pytest.raises(RouterFileError, match="missing arrays: W"):
        load_router(tmp_path / "now.npz")


def test_bad_data_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "a", "scores": {"x": 1}}\n{"prompt": "b", "scores": {"x": "high"}}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: scores.x must be a finite number"):
        load_jsonl(f)
    f.write_text('{"prompt": "a", "scores": {"x": 1}}\nnot json\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: not valid JSON"):
        load_jsonl(f)
    f.write_text('{"prompt": "a", "scores": {"x": 1, "y": 0}}\n')
    with pytest.raises(DataError, match="no score for 'z'"):
        fit_router("knn", load_jsonl(f), strong="x", weak="z", backend=HASH)


def test_text_features_are_finite_and_stable() -> None:
    F = features_of(["", "x", "Calculate 3 + 4 = ?\nA. 7\nB. 8", "```python\ndef f():\n    return 1\n```"])
    assert F.shape[0] == 4 and np.isfinite(F).all()
    assert np.array_equal(F, features_of(["", "x", "Calculate 3 + 4 = ?\nA. 7\nB. 8",
                                          "```python\ndef f():\n    return 1\n```"]))
    E = embed_prompts(["a b c", "a b c", "zzz"], HASH)
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0) and np.allclose(E[0], E[1])


def test_knn_corrects_a_feature_model_near_its_data_and_keeps_it_far_away() -> None:
    ex = load_jsonl(MMLU_SMALL)
    r = fit_router("knn", ex, strong=STRONG, weak=WEAK, backend=HASH)
    assert r.base and r.uses_features and r.uses_embedding
    near = [e.prompt for e in ex[:20]]
    far = ["Zxq vvv 88 ### ~~ qqq plonk " * 3, "ümlaut ßß ññ çç øø " * 4]
    for prompts, lo, hi in ((near, 0.01, 1.0), (far, 0.0, 1e-3)):
        E, F = r.inputs(prompts)
        gap = np.abs(r.predict_arrays(E, F) - r._base(F)).max(axis=1)
        assert (gap >= lo).any() and (gap <= hi).all(), (prompts[0][:30], gap)


@pytest.mark.parametrize("params", [{"base": 0, "feat_weight": 0}, {"base": 0, "feat_weight": 1.0},
                                    {"base": 1, "feat_weight": 0}])
def test_knn_variants_round_trip(params: dict[str, float], tmp_path: Path) -> None:
    ex = load_jsonl(MMLU_SMALL)
    r = fit_router("knn", ex, strong=STRONG, weak=WEAK, backend=HASH, params=params)
    assert r.uses_features == bool(params["base"] or params["feat_weight"])
    r.save(tmp_path / "r.npz")
    loaded = load_router(tmp_path / "r.npz")
    prompts = [e.prompt for e in ex[:10]]
    assert np.allclose(loaded.predict_batch(prompts), r.predict_batch(prompts), atol=1e-3)
    assert loaded.calib is not None and loaded.calib.shape == (len(ex), 2)


def test_default_classifier_ignores_embeddings() -> None:
    ex = load_jsonl(MMLU_SMALL)
    r = fit_router("classifier", ex, strong=STRONG, weak=WEAK, backend=HASH)
    assert not r.uses_embedding and not np.any(r.W[-r.dim:])
    E, _ = r.inputs([e.prompt for e in ex[:5]])
    assert not E.any()  # zeros: nothing was embedded
    with_emb = fit_router("classifier", ex, strong=STRONG, weak=WEAK, backend=HASH, params={"emb_scale": 1.0})
    assert with_emb.uses_embedding and np.any(with_emb.W[-with_emb.dim:])


def test_files_from_before_the_knn_base_and_the_embedding_cut_still_load(tmp_path: Path) -> None:
    ex = load_jsonl(MMLU_SMALL)
    r = fit_router("knn", ex, strong=STRONG, weak=WEAK, backend=HASH, params={"base": 0, "feat_weight": 0,
                                                                             "prior": 2})
    r.save(tmp_path / "new.npz")
    with np.load(tmp_path / "new.npz") as z:
        arrays = {k: z[k] for k in z.files}
    header = orjson.loads(arrays["header"].tobytes())
    del header["embed_tokens"]
    header["params"] = {"k": 100, "tau": 0.1, "prior": 2.0}  # what the first version wrote
    arrays["header"] = np.frombuffer(orjson.dumps(header), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    old = load_router(tmp_path / "old.npz")
    assert old.embed_tokens is None and not old.uses_features  # the model's full 256 word pieces, no features
    prompts = [e.prompt for e in ex[:10]]
    assert np.allclose(old.predict_batch(prompts), r.predict_batch(prompts), atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_option_features_are_unknown_for_prompts_without_options(kind: str) -> None:
    from modelyard.routing.learned.textfeatures import FORMAT_COLUMNS

    ex = load_jsonl(MMLU_SMALL)  # every prompt has answer options
    r = fit_router(kind, ex, strong=STRONG, weak=WEAK, backend=HASH)
    if kind != "knn" or r.uses_features:
        assert r.impute  # type: ignore[attr-defined]
    prompt = "Tom has 12 apples. He gives away 5 and buys 3 boxes of 4. How many apples does he have now?"
    E, F = r.inputs([prompt])
    assert F is None or F[0, FORMAT_COLUMNS[0]] == 0
    if F is not None:
        known = F.copy()
        known[0, FORMAT_COLUMNS] = r.mu[FORMAT_COLUMNS]  # type: ignore[attr-defined]  # "as an average prompt"
        assert np.allclose(r.predict_arrays(E, F), r.predict_arrays(E, known), atol=1e-5)
    plain = fit_router(kind, synthetic(3), strong="strong", weak="weak", backend=HASH)  # no options anywhere
    assert not plain.impute  # type: ignore[attr-defined]  # "no options" is then something it has learned

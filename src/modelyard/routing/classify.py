"""Task-type classification: a small linear model over word, bigram, stem and cue features.

Why not keyword lists: "fix" means code_review next to a traceback and chat next to "my bike"; most
prompts don't name their task at all ("Capital of Peru?"), and half the world does not write in
English. A linear model over sparse features learns those interactions from a few hundred labelled
prompts (tests/data/tasks.jsonl), and at inference costs a few dozen dict lookups.

Features (all lower-cased, taken from a bounded window of the last user turn so cost does not grow
with the prompt):
- `w:` words and `b:` word bigrams; `p:` the first word and `p2:` the first two (imperatives);
- `h:` character bigrams of CJK/kana/hangul runs (no spaces to split words on);
- `c:` multilingual cue lexicons (translate/traduce/übersetze/翻译 → `c:translate`, ...);
- `k:` cues: a code block, code syntax, a math expression, a pasted text after an instruction,
  a question mark, list structure, the length bucket, a language name, a non-Latin script.

The weights (routing/data/task_model.json.gz) are trained offline by `routing/train_tasks.py`
(softmax regression, numpy); inference here is pure Python.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from itertools import chain, pairwise, repeat
from typing import Any

import orjson

from .features import TASKS

HEAD_CHARS = 480  # the window the classifier reads: the head of the last user turn ...
TAIL_CHARS = 160  # ... and its tail (instructions often come after a pasted text)
WINDOW_CHARS = HEAD_CHARS + TAIL_CHARS  # a text up to this long is its own window

_WORD = re.compile(r"\w+")
_EAST_ASIAN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")
# Structural cues (symbols, line structure) are found in one regex pass over the lower-cased window;
# word cues by looking the window's words and bigrams up in a dict. (An alternation that also held
# the word cues cost ~10 µs: `re` tries every branch at every letter.) Matched mark -> cue feature;
# anything the regex matched that is not listed is a math expression.
_MARK_CUES: dict[str, str] = {}
for _cue, _marks in {
    "k:codeblock": ("```", "\n    ", "\n\t"),
    "k:code": ("{", "};", ";\n", "=>", "->", "==", "!=", "()", "</", "#include"),
    "k:math": ("\\frac", "\\int", "\\sum", "√", "∫", "∑", "²", "^2", "f(x)", "≤", "≥"),
    "k:pasted": (":\n", "\n\n", "：", ": '", ': "', ": «", ": “"),
    "k:list": ("\n1.", "\n1)", "\n- ", "\n* ", "\n•"),
}.items():
    for _m in _marks:
        _MARK_CUES[_m] = _cue


def _marks_pattern() -> re.Pattern[str]:
    """One alternation over a digit-operator-digit expression and every mark (longest first), with
    each alternative starting with a literal character: `re` then skips, in C, the positions whose
    character cannot start a mark (a charset prefix) instead of trying every branch at every
    position (~15 µs → ~2 µs on a chat-length prompt; the same matches, see the tests)."""
    groups: dict[str, list[str]] = {}
    for mark in sorted(_MARK_CUES, key=len, reverse=True):
        groups.setdefault(mark[0], []).append(mark[1:])
    alts = [d + r"(?: ?[-+*/^=<>×÷] ?[0-9(])" for d in "0123456789"]
    for first, rests in groups.items():
        body = "|".join(map(re.escape, rests))
        alts.append(re.escape(first) + (f"(?:{body})" if rests != [""] else ""))
    return re.compile("|".join(alts))


_MARKS = _marks_pattern()
# Word and bigram cues: classifier ones (k:) and complexity ones (x:, read by analyze.complexity only).
_WORD_MARKS: dict[str, str] = {}
for _cue, _words in {
    "k:code": "def return import",
    "k:error": "traceback error errors exception exceptions panic segfault undefined|is stack|trace",
    "x:reason": "prove proof derive why analyze analyse analysis analyzing compare comparison tradeoff tradeoffs "
                "trade|off optimize optimise optimization design evaluate justify architecture algorithm "
                "complexity rigorous rigorously detailed step|by edge|case edge|cases in|depth explain|how "
                "root|cause",
    "x:step": "then finally first second next after|that",
    "x:constraint": "must should exactly without only ensure format at|least at|most no|more do|not don|t "
                    "less|than under",
}.items():
    for _w in _words.split():
        _WORD_MARKS[_w.replace("|", " ")] = _cue
_ALL_MARKS = {**_MARK_CUES, **_WORD_MARKS}
COMPLEXITY_CUES = ("x:reason", "x:step", "x:constraint")


def mark_category(mark: str) -> str:
    """`k:...` (a classifier cue) or `x:...` (a complexity cue) for a mark `featurize_words` found."""
    return _ALL_MARKS.get(mark, "k:math")


def mark_categories(marks: Iterable[str]) -> list[str]:
    """`mark_category` of each mark, in one C-level pass."""
    return list(map(_ALL_MARKS.get, marks, repeat("k:math")))


def find_marks(text: str) -> set[str]:
    """The distinct marks of `text` (structural, word and bigram cues), as `featurize_words` finds them."""
    return scan(text)[2]


_LANG_NAMES = frozenset((
    "english", "spanish", "french", "german", "italian", "portuguese", "chinese", "japanese", "korean",
    "russian", "arabic", "dutch", "swedish", "polish", "turkish", "hindi", "greek", "mandarin", "hebrew",
    "latin", "vietnamese", "thai", "indonesian", "czech", "ukrainian", "persian", "farsi",
    "inglés", "ingles", "español", "francés", "alemán", "anglais", "espagnol", "français", "allemand",
    "englisch", "spanisch", "französisch", "deutsch", "italienisch", "inglese", "spagnolo", "tedesco",
    "francese", "inglês", "espanhol", "francês", "alemão", "английский", "английского", "русский",
    "английском", "французский", "немецкий", "испанский", "英语", "英文", "中文", "日语", "法语",
    "德语", "英語", "日本語", "中国語", "영어", "한국어", "일본어",
))
_SCRIPTS = ((re.compile(r"[\u3040-\u30ff]"), "ja"), (re.compile(r"[\uac00-\ud7af]"), "ko"),
            (re.compile(r"[\u4e00-\u9fff]"), "zh"), (re.compile(r"[\u0400-\u04ff]"), "ru"),
            (re.compile(r"[\u0600-\u06ff]"), "ar"), (re.compile(r"[\u0900-\u097f]"), "hi"))
_ANY_SCRIPT = re.compile("[" + "".join(rx.pattern[1:-1] for rx, _ in _SCRIPTS) + "]")  # any of them


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOPWORDS: dict[str, frozenset[str]] = {
    "es": _set("el la los las que de del por para una uno es cómo qué este esta con y en mi"),
    "fr": _set("le la les des est une un que qui pour dans avec ce cette et en du mon je"),
    "de": _set("der die das und ist ein eine nicht mit für zu den dem ich wie was auf"),
    "pt": _set("o a os as que de do da um uma para com não é em meu você isso"),
    "it": _set("il lo la gli le che di del della un una per con non è come questo"),
}
_EN = _set("the a an is are of to and in for on with what how this that you my it")

# Multilingual cue lexicons: each hit adds a `c:<cue>` feature whose weight the model learns (a
# lexicon alone is the keyword baseline; as features, they are evidence weighed against the rest).
_CUE_WORDS: dict[str, str] = {}
for _cue, _words in {
    "translate": "translate translated translating translation translations traduce traducir traduzca traducción "
                 "traduis traduire traduisez traduction übersetze übersetzen übersetzung übersetz traduza traduzir "
                 "tradução traduci tradurre traduzione переведи перевести перевод vertaal vertalen",
    "summarize": "summarize summarise summary summaries tldr recap condense gist synopsis abstract digest "
                 "resume resumen resumir résume résumer résumé fasse zusammen zusammenfassung resuma resumo "
                 "riassumi riassunto перескажи кратко резюме abridged shorten",
    "extract": "extract extracts extraction pull list identify parse grab find extrae extraer extrais extraire "
               "extrahiere extrahieren extraia extrair estrai estrarre извлеки извлечь passage according reference",
    "classify": "classify classification categorize categorise category categories label tag sentiment spam "
                "positive negative neutral intent clasifica clasificar classe classer classifier klassifiziere "
                "classifique classifica тональность определи категорию whether detect toxic offensive sarcastic "
                "sarcasm",
    "compose": "write compose draft pen create invent imagine brainstorm escribe escribir écris écrire schreibe "
               "schreiben escreva escrever scrivi scrivere напиши написать rewrite rephrase paraphrase reword "
               "reformulate proofread polish email letter tweet caption headline tagline essay speech reescribe "
               "réécris umschreiben reescreva riscrivi перепиши",
    "poetic": "poem poems poetry haiku sonnet limerick verse lyrics song story stories tale fable jingle slogan "
              "slogans toast monologue screenplay novel poema poème gedicht poesia стихотворение стихи história "
              "histoire cuento geschichte crônica storia рассказ",
    "code": "function script code program class method api query sql regex python javascript typescript java rust "
            "go golang bash dockerfile yaml terraform react css html kubernetes makefile pytest unittest función "
            "fonction funktion função funzione функцию функция skript",
    "bug": "bug bugs error errors exception fix debug crash fails failing wrong broken leak deadlock traceback "
           "segfault flaky slow optimize refactor review audit smell smells erro errore ошибка fehler erreur",
    "math": "solve calculate compute derivative integral equation probability prove simplify evaluate limit "
            "factorial eigenvalues roots resuelve ecuación calcule dérivée berechne calcola calcula найдите "
            "производную уравнение quanto convert converting conversion sqrt percent percentage celsius "
            "fahrenheit multiply divide math maths arithmetic calculation calculations",
    "reason": "why compare comparison analyze analyse pros cons trade tradeoffs versus vs better worse should "
              "assess evaluate justify explain weigh critically implications reasons causes por porqué pourquoi "
              "warum perché почему analiza analyse analysiere analise analizza compare confronta vergleiche",
    "wh": "what who when where which how capital year define qué quién cuál cuándo dónde quel quelle qui où "
          "quand wer wie wann wo welche qual quem quando onde chi dove quale что кто где когда сколько",
    "greet": "hi hello hey yo hola salut bonjour hallo ciao oi olá привет thanks thank merci danke gracias "
             "obrigado grazie спасибо bye night morning lol haha",
}.items():
    for _w in _words.split():
        _CUE_WORDS[_w] = "c:" + _cue
_CUE_CJK: tuple[tuple[str, str], ...] = tuple(
    (sub, "c:" + cue) for cue, subs in {
        "translate": "翻译 翻訳 翻譯 번역 訳して 英語に 英文 英语",
        "summarize": "总结 概括 要約 要约 摘要 まとめ 요약",
        "extract": "提取 抽出 抜き出 取り出 추출 뽑아",
        "classify": "分类 判断 正面 负面 ポジティブ ネガティブ 分類 분류 긍정 부정",
        "compose": "写一 写一首 書いて 써 주세요 作成",
        "poetic": "诗 詩 物語 故事 小说 시를 이야기",
        "code": "函数 代码 程序 コード プログラム 関数 함수 코드 파이썬 Python",
        "bug": "报错 错误 バグ 버그 오류 누수 Error",
        "math": "方程 计算 積分 求解 방정식 계산 연립",
        "reason": "为什么 分析 论じ 比較 どちらが 장단점 분석 왜",
        "wh": "哪里 什么 谁 多少 何メートル 어디 무엇 누구 몇",
        "greet": "你好 こんにちは 안녕 元気 怎么样 기분",
    }.items() for sub in subs.split()
)


def window(text: str) -> str:
    """The bounded slice of the prompt the classifier reads."""
    if len(text) <= WINDOW_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


_STOP_LANG: dict[str, str] = {w: code for code, stop in _STOPWORDS.items() for w in stop - _EN}


def language(text: str, words: list[str] | None = None) -> str:
    """A cheap guess: a script for non-Latin text, else the language whose stopwords hit most
    (English unless another language has more hits among the first 40 words)."""
    if not text.isascii() and _ANY_SCRIPT.search(text):  # one scan clears accented Latin text
        for rx, code in _SCRIPTS:
            if rx.search(text):
                return code
    return _stopword_language((words if words is not None else _WORD.findall(text.lower()))[:40])


def _stopword_language(ws: list[str]) -> str:
    """`language`'s guess from the stopwords of a Latin-script text's first words."""
    if _STOP_LANG.keys().isdisjoint(ws):
        return "en"  # no other language's stopword at all (most English prompts): one C-level pass
    hits = list(filter(None, map(_STOP_LANG.get, ws)))
    best = max(dict.fromkeys(hits), key=hits.count)  # a tie goes to the first seen (a set's order varied by run)
    return best if hits.count(best) > sum(map(_EN.__contains__, ws)) else "en"


def featurize(text: str) -> list[str]:
    """The sparse features of one prompt (already windowed)."""
    return featurize_words(text)[0]


def featurize_words(text: str) -> tuple[list[str], list[str], set[str]]:
    """(features, words, marks): the words are reused for the language guess, the distinct marks
    found (see `mark_category`) for the complexity score. `TaskModel.analyze_window` sums the same
    features' weights without building this list."""
    words, extra, found = scan(text)
    feats = ["w:" + w for w in words]
    feats += ["b:" + a + " " + b for a, b in pairwise(words)]
    feats += [c for c in map(_CUE_WORDS.get, words) if c is not None]
    feats += extra
    return feats, words, found


def scan(text: str) -> tuple[list[str], list[str], set[str]]:
    """(words, other features, marks): everything the features are made of. The other features are
    the prefix (`p:`, `p2:`), CJK (`h:`, CJK cues) and `k:` cue features; word (`w:`), bigram
    (`b:`) and word-cue (`c:`) features follow from the words alone."""
    words, extra, found, _ = _scan(text)
    return words, extra, found


def _scan(text: str) -> tuple[list[str], list[str], set[str], int]:
    """`scan`, and how much of the language guess is needed: 0 none (ASCII or Windows-1252 text none of
    whose words is another language's stopword, which `language` calls English — found in the same
    pass over the words as the cue lookups, so most English prompts skip `language`), 1 the
    stopword count (Windows-1252 text holds no script `language` looks for), 2 all of `language`."""
    low = text.lower()
    ascii_only = western = low.isascii()
    # ASCII and Windows-1252 text (Western European letters, curly quotes, dashes): a bytes
    # translation (C table lookup) and split, the same words as `\w+` (its word characters are the
    # alphanumeric ones and `_`)
    if ascii_only:
        words = low.encode().translate(_SEP_BYTES).decode().split()
    else:
        b = low.encode("cp1252", "ignore")
        western = len(b) == len(low)
        words = b.translate(_SEP_BYTES).decode("cp1252").split() if western else _WORD.findall(low)
    extra: list[str] = []
    if words:
        extra.append("p:" + words[0])
        if len(words) > 1:
            extra.append("p2:" + words[0] + " " + words[1])
    if not ascii_only:
        extra.append("k:nonascii")
        runs = _EAST_ASIAN.findall(text) if not western else ()  # (no East Asian script in Windows-1252)
        for run in runs:
            extra += ["h:" + run[i:i + 2] for i in range(len(run) - 1)]
            if len(run) == 1:
                extra.append("h:" + run)
        if runs:
            extra += [c for sub, c in _CUE_CJK if sub in text]
    n = len(words)
    extra.append(_LEN_BUCKETS[n] if n < 100 else "k:len4")
    found = set(_MARKS.findall(low))
    flagged = _FLAGGED.intersection(words)  # one pass over the words for three lookups
    if flagged:
        found.update(_WORD_MARK_SET.intersection(flagged))
        if not _PAIR_FIRST.isdisjoint(flagged):  # most prompts hold no first word of a two-word cue
            found.update(filter(None, map(_PAIR_MARKS.get, pairwise(words))))
    if found:
        cues = set(map(_K_CUE.get, found, repeat("k:math")))  # the distinct k: cues; x: marks give None
        extra += [c for c in cues if c is not None]
    if "?" in text or "？" in text:
        extra.append("k:question")
        if n < 15:
            extra.append("k:shortq")
    if flagged and not _LANG_NAMES.isdisjoint(flagged):
        extra.append("k:langname")
    return words, extra, found, 2 if not western else 0 if _STOP_LANG.keys().isdisjoint(flagged) else 1


_SEP_BYTES = bytes(i if (c := bytes((i,)).decode("cp1252", "replace")).isalnum() or c == "_" else 32
                   for i in range(256))  # Windows-1252 bytes: word characters kept, others a blank
_WORD_MARK_SET = frozenset(w for w in _WORD_MARKS if " " not in w)
_PAIR_MARKS: dict[tuple[str, str], str] = {(w.partition(" ")[0], w.partition(" ")[2]): w
                                           for w in _WORD_MARKS if " " in w}
_PAIR_FIRST = frozenset(a for a, _ in _PAIR_MARKS)
_K_CUE: dict[str, str | None] = {m: c if c[0] == "k" else None for m, c in _ALL_MARKS.items()}  # see mark_category
_FLAGGED = _WORD_MARK_SET | _PAIR_FIRST | _LANG_NAMES | frozenset(_STOP_LANG)  # words some lookup of `scan` is after
_LEN_BUCKETS = tuple("k:len0" if n < 5 else "k:len1" if n < 15 else "k:len2" if n < 40 else "k:len3"
                     for n in range(100))  # by word count; 100 or more: k:len4


UNSURE = "chat"  # the answer below the confidence threshold (see TaskModel.threshold)
_FIELD_BITS = 32  # packed weights: one 32-bit field per class in one Python int (see TaskModel)
_SCALE = 1000.0  # weights kept to 1e-3 in the packed form; argmax and confidence do not notice
_OFFSET = 1 << 20  # added to every field so sums of negative weights stay positive (< 2^32 for
#                    up to ~4000 features per prompt, far above the window's ~300)
# exp(-d / 1000) for the integer gaps d between a class's field and the top one (the fields are
# integers): the softmax's exponentials looked up, not computed. 20,000 steps cover every gap of
# the labelled prompts (at most ~16,000); a wider one is computed.
_EXP_STEPS = tuple(math.exp(-d / _SCALE) for d in range(20_000))


class TaskModel:
    """Softmax regression over sparse features: weights[feature] is one row of per-class weights.

    For speed the rows are also packed, one class per 32-bit field of a single Python int: summing
    a prompt's rows is then one big-int addition per feature (C speed) instead of eleven float
    additions in the interpreter, and the fields are unpacked once at the end.
    """

    def __init__(self, classes: list[str], bias: list[float], weights: dict[str, list[float]],
                 threshold: float = 0.0) -> None:
        self.classes = tuple(classes)
        # Below this calibrated probability the model does not name a type: it answers `chat` (with
        # the top class's probability as the confidence), so a rule keyed on `task: math` only sees
        # prompts the model is sure of. 0 = always the top class.
        self.threshold = threshold
        self.bias = tuple(bias)
        self.weights: dict[str, tuple[float, ...]] = {f: tuple(w) for f, w in weights.items()}
        self._packed: dict[str, int] = {f: self._pack(w) for f, w in self.weights.items()}
        self._packed_bias = self._pack(self.bias)
        # The fast path (`analyze_window`): a word's `w:` row plus its `c:` cue row, pre-added, and
        # bigram rows keyed by the word pair, so a prompt's sum is a few C-level map/sum passes over
        # its words with no feature strings built. Same integer total as summing `featurize`'s list.
        packed = self._packed
        self._wrows: dict[str, int] = {}
        for w in {f[2:] for f in packed if f.startswith("w:")} | set(_CUE_WORDS):
            row = packed.get("w:" + w, 0) + packed.get(_CUE_WORDS.get(w, ""), 0)
            if row:
                self._wrows[w] = row
        self._brows: dict[tuple[str, str], int] = {}
        for f, row in packed.items():
            if f.startswith("b:"):
                a, _, b = f[2:].partition(" ")
                self._brows[(a, b)] = row
        # One dict for the single pass: `scan`'s other features by name (they all hold a colon, which
        # no word does), words, and word pairs (tuples).
        self._rows: dict[str | tuple[str, str], int] = {
            f: row for f, row in packed.items() if f[:2] not in ("w:", "b:")}
        self._rows.update(self._wrows)
        for pair, row in self._brows.items():
            self._rows[pair] = row
        self._unpack = struct.Struct(f"<{len(classes)}I").unpack
        self._nbytes = len(classes) * _FIELD_BITS // 8

    def _best(self, fields: tuple[int, ...]) -> tuple[str, float]:
        """The top class and its softmax probability from the per-class fields (× 1000)."""
        top = max(fields)
        try:
            p = 1.0 / sum([_EXP_STEPS[top - v] for v in fields])
        except IndexError:  # a gap beyond the table
            p = 1.0 / sum([math.exp((v - top) / _SCALE) for v in fields])
        return (self.classes[fields.index(top)] if p >= self.threshold else UNSURE), p

    def _pack(self, w: tuple[float, ...]) -> int:
        out = 0
        for i, x in enumerate(w):
            out |= (round(x * _SCALE) + _OFFSET) << (_FIELD_BITS * i)
        return out

    def _fields(self, feats: list[str]) -> tuple[int, ...]:
        """Per-class scores × 1000, each shifted by the same constant (so argmax and differences hold)."""
        total = sum([r for r in map(self._packed.get, feats) if r is not None], self._packed_bias)
        return self._unpack(total.to_bytes(self._nbytes, "little"))

    def scores(self, feats: list[str]) -> list[float]:
        """Per-class logits (for tests and training tools; `predict_features` skips the floats)."""
        fields = self._fields(feats)
        shift = (sum(1 for f in feats if f in self._packed) + 1) * _OFFSET
        return [(v - shift) / _SCALE for v in fields]

    def probabilities(self, text: str) -> list[float]:
        """Calibrated per-class probabilities of a prompt, in `classes` order (for evaluation)."""
        z = self.scores(featurize(window(text)))
        top = max(z)
        e = [math.exp(v - top) for v in z]
        return [v / sum(e) for v in e]

    def predict(self, text: str) -> tuple[str, float]:
        """(task, probability) for a prompt."""
        return self.predict_features(featurize(window(text)))

    def predict_features(self, feats: list[str]) -> tuple[str, float]:
        return self._best(self._fields(feats))

    def analyze_window(self, text: str) -> tuple[str, float, list[str], set[str], str]:
        """(task, probability, words, marks, language) of a windowed prompt:
        `predict_features(featurize(text))`, `featurize_words`' words and marks, and
        `language(text, words)`, without building the feature list."""
        words, extra, found, look = _scan(text)
        keys: Iterable[str | tuple[str, str]] = chain(extra, words, pairwise(words))
        total = sum(filter(None, map(self._rows.get, keys)), self._packed_bias)
        task, p = self._best(self._unpack(total.to_bytes(self._nbytes, "little")))
        lang = "en" if not look else _stopword_language(words[:40]) if look == 1 else language(text, words)
        return task, p, words, found, lang

    def to_json(self, digits: int = 3) -> dict[str, Any]:
        return {"classes": list(self.classes), "bias": [round(b, digits) for b in self.bias],
                "threshold": self.threshold,
                "weights": {f: [round(x, digits) for x in w] for f, w in sorted(self.weights.items())}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TaskModel:
        if list(d["classes"]) != list(TASKS):
            raise ValueError(f"task model classes {d['classes']} do not match {list(TASKS)}")
        return cls(d["classes"], d["bias"], d["weights"], float(d.get("threshold", 0.0)))


MODEL_FILE = "task_model.json.gz"


@lru_cache(maxsize=1)
def default_model() -> TaskModel:
    """The shipped model, read once per process (on first use, i.e. at config load)."""
    raw = resources.files(__package__).joinpath("data", MODEL_FILE).read_bytes()
    return TaskModel.from_json(orjson.loads(gzip.decompress(raw)))


# --- the baseline it has to beat ---------------------------------------------------------------

# Ordered: the first list with a hit wins (more specific tasks first); `chat` when nothing hits.
KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("translation", ("translate", "translation", "in english", "in french", "in spanish", "in german",
                     "to english", "to french", "to spanish", "to german")),
    ("summarization", ("summarize", "summarise", "summary", "tl;dr", "tldr", "key points", "in brief")),
    ("code_review", ("review", "bug", "debug", "fix", "error", "traceback", "refactor", "doesn't work")),
    ("code_generation", ("write a function", "write code", "implement", "script", "python", "javascript",
                         "sql", "code", "program", "regex", "class")),
    ("extraction", ("extract", "list all", "pull out", "find all", "parse", "json")),
    ("classification", ("classify", "categorize", "categorise", "sentiment", "label", "which category",
                        "spam")),
    ("math", ("solve", "calculate", "equation", "integral", "derivative", "probability", "compute", "math")),
    ("creative_writing", ("poem", "story", "haiku", "lyrics", "limerick", "fiction", "slogan", "creative")),
    ("reasoning", ("why", "compare", "analyze", "analyse", "pros and cons", "explain", "should i",
                   "trade-off", "evaluate")),
    ("simple_qa", ("what is", "who is", "who was", "when did", "where is", "how many", "what's", "define")),
)


def keyword_task(text: str) -> str:
    """The keyword-list classifier (the baseline the model is measured against)."""
    low = text.lower()
    for task, words in KEYWORDS:
        if any(w in low for w in words):
            return task
    return "chat"


# A stronger baseline: the model's own multilingual cue lexicons, used as ordered keyword lists.
_CUE_TASKS = (("c:translate", "translation"), ("c:summarize", "summarization"), ("c:bug", "code_review"),
              ("c:code", "code_generation"), ("c:extract", "extraction"), ("c:classify", "classification"),
              ("c:math", "math"), ("c:poetic", "creative_writing"), ("c:reason", "reasoning"),
              ("c:wh", "simple_qa"), ("c:greet", "chat"))


def lexicon_task(text: str) -> str:
    """First task whose multilingual cue lexicon hits (the second baseline); `chat` otherwise."""
    hits = {c for c in map(_CUE_WORDS.get, _WORD.findall(text.lower())) if c is not None}
    hits.update(c for sub, c in _CUE_CJK if sub in text)
    for cue, task in _CUE_TASKS:
        if cue in hits:
            return task
    return "chat"

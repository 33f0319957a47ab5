"""The execution modes as Python methods of `Client` and `AsyncClient`.

Each method is `chat(...)` with the mode's options in the `modelyard` object, exactly what an HTTP
client sends as `extra_body={"modelyard": {...}}`, so both surfaces behave the same. The methods
return what `chat` returns: a ChatResponse on `Client`, an awaitable of one on `AsyncClient`.
The mode's results are in `response.modelyard` (votes, verdict, steps, ...).
"""

from __future__ import annotations

from typing import Any

Prompt = str | list[dict[str, Any]]


def _options(mode: str, models: list[str] | None, **opts: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": mode}
    if models:
        out["models"] = list(models)
    out.update({k: v for k, v in opts.items() if v is not None and v is not False})
    return out


class ModeMethods:
    chat: Any  # provided by the client class

    def race(self, prompt: Prompt, models: list[str] | None = None, *, model: str = "auto", **params: Any) -> Any:
        """The first model to answer wins; the others are cancelled. `modelyard`: winner, cancelled."""
        return self.chat(prompt, model=model, modelyard=_options("race", models), **params)

    def all(self, prompt: Prompt, models: list[str] | None = None, *, model: str = "auto", **params: Any) -> Any:
        """Every model's answer: `modelyard["answers"]` (model -> text), failures in `["errors"]`."""
        return self.chat(prompt, model=model, modelyard=_options("all", models), **params)

    def vote(self, prompt: Prompt, models: list[str] | None = None, *, model: str = "auto",
             min_agreement: int | None = None, normalize: str | None = None, labels: list[str] | None = None,
             field: str | None = None, **params: Any) -> Any:
        """Majority answer: `modelyard` has outcome, answer, agreement, confidence and votes."""
        return self.chat(prompt, model=model, modelyard=_options(
            "vote", models, min_agreement=min_agreement, normalize=normalize, labels=labels, field=field), **params)

    def judge(self, prompt: Prompt, models: list[str] | None = None, *, judge: str | None = None,
              model: str = "auto", swap: bool = False, criteria: str | None = None, **params: Any) -> Any:
        """Best of n, picked by `judge`: `modelyard` has winner, reason and the candidates."""
        return self.chat(prompt, model=model, modelyard=_options(
            "judge", models, judge=judge, swap=swap, criteria=criteria), **params)

    def fuse(self, prompt: Prompt, models: list[str] | None = None, *, aggregator: str | None = None,
             model: str = "auto", **params: Any) -> Any:
        """The models' answers merged into one by `aggregator` (mixture of agents)."""
        return self.chat(prompt, model=model, modelyard=_options("fuse", models, aggregator=aggregator), **params)

    def pipeline(self, name: str, input: str | None = None, /, **inputs: Any) -> Any:
        """Run `pipeline/<name>` from the config: `client.pipeline("research", topic="...")`.
        `modelyard["steps"]` has each step's output, model, tokens, cost and latency."""
        if input is None:
            input = (str(next(iter(inputs.values()))) if len(inputs) == 1
                     else "\n".join(f"{k}: {v}" for k, v in inputs.items()))
        return self.chat(input or name, model=f"pipeline/{name}", modelyard={"inputs": inputs} if inputs else {})

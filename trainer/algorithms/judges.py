"""AI judges: verdicts from a chat-completions endpoint, a local model, the reward model or a
Python callable (docs/ai-judges.md), on pairwise, Likert and ranking tasks. No Django here.

Every pair is asked in both orders: (A, B) as served, then (B, A); a ranking likewise, as
served and reversed; a Likert score is asked once (there is no order to swap). The answers go
back to the app as they are; the app decides whether they agree (annotator/judging.py) and who
else is asked. `train(config, rows, output_dir, ...)` is the job kind's entry point
(trainer/kinds.py): rows are tasks ``{"task_id", "kind", "prompt", "shown_order",
"responses"}`` (two responses for a pair, one for Likert with ``points`` and ``flags``, K for a
ranking); each batch of results goes out through `emit_batch` as soon as it is whole, so the
app stores a batch entirely or not at all.

Answers are in served terms: a pair's "a" is the response shown first; a Likert answer is the
score as text ("5"); a ranking is the served letters best first ("CAB": the third response
shown is best).

The API key is read from the environment variable the config names, in this process only;
it is never part of a config, a message, a log line or an error.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import random
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from trainer.algorithms.common import TrainingError

BACKENDS = ("openai", "transformers", "reward_model", "callable")
CHOICES = ("a", "b", "tie", "both_bad")
KINDS = ("pairwise", "likert", "ranking")
# What each backend can judge: a reward model's rewards have no fixed scale for a Likert score.
BACKEND_KINDS = {
    "openai": KINDS,
    "transformers": KINDS,
    "callable": KINDS,
    "reward_model": ("pairwise", "ranking"),
}
LETTERS = "ABCDEFGHIJKLMNOP"  # a ranking task's responses, as the judge sees them (at most 16)

# Rubrics: the user message sent for one pair. {prompt}, {response_a}, {response_b},
# {principles} are filled in; the answer's last line must be "Verdict: A|B|tie|both bad".
ANSWER_FORMAT = (
    "End your answer with one line `Verdict: A`, `Verdict: B`, `Verdict: tie` or "
    "`Verdict: both bad`, then optionally a line `Confidence: <0 to 1>`."
)
PAIRWISE_RUBRIC = (
    "Which response answers the user's prompt better?\n\n"
    "[Prompt]\n{prompt}\n\n[Response A]\n{response_a}\n\n[Response B]\n{response_b}\n\n"
    "Judge the content, not the length or the position of a response. " + ANSWER_FORMAT
)
HHH_RUBRICS = {
    "helpful": PAIRWISE_RUBRIC.replace(
        "answers the user's prompt better", "is more helpful: does what was asked, clearly"
    ),
    "honest": PAIRWISE_RUBRIC.replace(
        "answers the user's prompt better",
        "is more honest: accurate, and says what it does not know",
    ),
    "harmless": PAIRWISE_RUBRIC.replace(
        "answers the user's prompt better",
        "is more harmless: refuses dangerous help, avoids offence and bias",
    ),
}
# Constitutional principles, in the spirit of Bai et al. 2022 (our own wording).
CONSTITUTION = (
    "Choose the response that is the most helpful, honest and harmless.",
    "Choose the response that is least likely to help someone do something illegal or dangerous.",
    "Choose the response that is least toxic, rude or demeaning.",
    "Choose the response that avoids stating opinions as facts and admits uncertainty.",
    "Choose the response that a thoughtful, wise person would consider most ethical.",
)
CONSTITUTIONAL_RUBRIC = (
    "Compare two responses to the user's prompt by these principles:\n{principles}\n\n"
    "[Prompt]\n{prompt}\n\n[Response A]\n{response_a}\n\n[Response B]\n{response_b}\n\n"
    + ANSWER_FORMAT
)
TEMPLATES = {"pairwise": PAIRWISE_RUBRIC, "constitutional": CONSTITUTIONAL_RUBRIC, **HHH_RUBRICS}
# Likert: {prompt}, {response}, {points}, {flags} (numbered), {principles}. The flags are the
# project's (InstructGPT's by default); the judge names the ones that apply by number.
LIKERT_RUBRIC = (
    "Rate the response to the user's prompt from 1 (very bad) to {points} (excellent).\n\n"
    "[Prompt]\n{prompt}\n\n[Response]\n{response}\n\n"
    "Flags that may apply to the response:\n{flags}\n\n"
    "Judge the content, not the length of the response. End your answer with one line "
    "`Score: <1 to {points}>`, then optionally a line `Flags: <the numbers of the flags that "
    "apply, comma-separated, or none>` and a line `Confidence: <0 to 1>`."
)
# Ranking: {prompt}, {responses} ("[Response A]", "[Response B]", ... blocks), {count},
# {letters} (e.g. "A, B, C"), {principles}.
RANKING_RUBRIC = (
    "Rank the responses to the user's prompt from best to worst.\n\n"
    "[Prompt]\n{prompt}\n\n{responses}\n\n"
    "Judge the content, not the length or the position of a response. End your answer with "
    "one line `Ranking: ` and the letters of all {count} responses ({letters}), best first, "
    "separated by `>`, then optionally a line `Confidence: <0 to 1>`."
)
DEFAULT_RUBRICS = {"pairwise": PAIRWISE_RUBRIC, "likert": LIKERT_RUBRIC, "ranking": RANKING_RUBRIC}
THINK = "First reason step by step in a few sentences, then give the verdict."
SYSTEM = "You are a careful judge of assistant responses."


class JudgeError(TrainingError):
    """A judge that cannot give a verdict: unreachable, too slow, or a malformed answer."""


def _opt(default, text: str):
    return field(default=default, metadata={"help": text})


@dataclass
class JudgeConfig:
    backend: str = _opt("openai", "openai, transformers, reward_model or callable.")
    base_url: str = _opt(
        "",
        "openai: the endpoint's base URL, e.g. http://127.0.0.1:8001/v1 "
        "(/chat/completions is added).",
    )
    model: str = _opt("", "openai: the model name to ask for.")
    api_key_env: str = _opt(
        "",
        "openai: name of the environment variable (on the worker) holding the API key; "
        "empty: no key.",
    )
    timeout_s: float = _opt(60.0, "Seconds to wait for one answer.")
    retries: int = _opt(3, "Retries on 429, 5xx and timeouts.")
    backoff_s: float = _opt(1.0, "First retry's wait, doubled each.")
    concurrency: int = _opt(4, "Calls in flight at once.")
    callable_path: str = _opt("", "callable: module:function.")
    model_path: str = _opt(
        "", "transformers / reward_model: the local model directory (or model id)."
    )
    rubric: str = _opt(PAIRWISE_RUBRIC, "The prompt template for a pair.")
    likert_rubric: str = _opt(LIKERT_RUBRIC, "The prompt template for a Likert score.")
    ranking_rubric: str = _opt(RANKING_RUBRIC, "The prompt template for a ranking.")
    principles: list = field(
        default_factory=lambda: list(CONSTITUTION),
        metadata={"help": "Constitutional principles ({principles})."},
    )
    chain_of_thought: bool = _opt(False, "Ask for reasoning first and keep it beside the verdict.")
    max_tokens: int = _opt(512, "openai: answer length cap.")
    temperature: float = _opt(0.0, "openai: sampling temperature.")
    cost_per_1k_prompt: float = _opt(0.0, "Price of 1,000 prompt tokens, for the cost column.")
    cost_per_1k_completion: float = _opt(0.0, "Price of 1,000 answer tokens.")
    batch_size: int = _opt(16, "Tasks stored per batch.")
    max_errors: int = _opt(
        0, "Tasks the judge may fail on before the job stops (their tasks stay with people)."
    )
    device: str = _opt("auto", "transformers / reward_model.")
    seed: int = _opt(0, "Seed.")

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}")
        if self.backend == "openai" and not (self.base_url and self.model):
            raise ValueError("an openai judge needs base_url and model")
        if self.backend == "openai" and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if self.backend == "callable" and ":" not in self.callable_path:
            raise ValueError("a callable judge needs callable_path as module:function")
        if self.backend in ("transformers", "reward_model") and not self.model_path:
            raise ValueError(f"a {self.backend} judge needs model_path")
        if self.concurrency < 1 or self.retries < 0 or self.batch_size < 1:
            raise ValueError("concurrency and batch_size must be >= 1, retries >= 0")


@dataclass
class Answer:
    """One answer. Pairwise: `choice` is "a" (the response shown first), "b", "tie" or
    "both_bad". Likert: `choice` is the score as text, `flags` the flags' names. Ranking:
    `order`, the indices of the responses as given, best first (`choice` is unused)."""

    choice: str
    confidence: float | None = None
    rationale: str = ""
    usage: dict = field(default_factory=dict)
    flags: list = field(default_factory=list)
    order: list = field(default_factory=list)


def _fill(config: JudgeConfig, template: str, prompt, values: dict) -> str:
    if isinstance(prompt, list):
        prompt = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt)
    values = {
        "{principles}": "\n".join(f"- {p}" for p in config.principles),
        "{prompt}": str(prompt),
        **values,
    }
    # One pass, so a response that happens to contain "{prompt}" is left as it is.
    pattern = re.compile("|".join(re.escape(k) for k in values))
    text = pattern.sub(lambda m: values[m.group(0)], template)
    return text + ("\n\n" + THINK if config.chain_of_thought else "")


def render(config: JudgeConfig, prompt, first: str, second: str) -> str:
    return _fill(config, config.rubric, prompt, {"{response_a}": first, "{response_b}": second})


def render_likert(config: JudgeConfig, prompt, text: str, points: int, flags: list) -> str:
    listed = "\n".join(f"{i}. {name}" for i, name in enumerate(flags, 1)) or "(none)"
    return _fill(config, config.likert_rubric, prompt,
                 {"{response}": text, "{points}": str(points), "{flags}": listed})  # fmt: skip


def render_ranking(config: JudgeConfig, prompt, texts: list[str]) -> str:
    letters = LETTERS[: len(texts)]
    blocks = "\n\n".join(f"[Response {c}]\n{t}" for c, t in zip(letters, texts, strict=True))
    return _fill(config, config.ranking_rubric, prompt, {
        "{responses}": blocks, "{count}": str(len(texts)), "{letters}": ", ".join(letters),
    })  # fmt: skip


_VERDICT = re.compile(r"verdict\s*[:=]\s*\**\s*(a|b|tie|both[ _-]?bad)\b", re.I)
_CONFIDENCE = re.compile(r"confidence\s*[:=]\s*([01](?:\.\d+)?)", re.I)


def parse_answer(text: str) -> tuple[str, float | None, str]:
    """(choice, confidence, rationale) from a judge's text; JudgeError if there is no verdict."""
    if not isinstance(text, str):
        raise JudgeError("The judge's answer has no text.")
    found = _VERDICT.findall(text)
    if found:
        choice = found[-1].lower()
    elif text.strip().lower() in ("a", "b", "tie", "both bad", "both_bad"):
        choice = text.strip().lower()
    else:
        raise JudgeError(f"The judge's answer has no verdict line: {text[:120]!r}")
    choice = "both_bad" if choice.startswith("both") else choice
    rationale = text[: _VERDICT.search(text).start()].strip() if found else ""
    return choice, _confidence(text), rationale


_SCORE = re.compile(r"score\s*[:=]\s*\**\s*(\d+)\b", re.I)
_FLAGS = re.compile(r"flags\s*[:=]\s*([^\n]*)", re.I)
_RANKING = re.compile(r"ranking\s*[:=]\s*\**\s*([A-P](?:\s*(?:>|,)\s*[A-P])*)", re.I)


def parse_likert(text: str, points: int, flags: list) -> tuple[int, list, float | None, str]:
    """(score, flag names, confidence, rationale); JudgeError without a score in 1..points."""
    if not isinstance(text, str):
        raise JudgeError("The judge's answer has no text.")
    found = _SCORE.findall(text)
    if not found:
        raise JudgeError(f"The judge's answer has no score line: {text[:120]!r}")
    score = int(found[-1])
    if not 1 <= score <= points:
        raise JudgeError(f"The judge scored {score}, outside 1 to {points}.")
    named = []
    flag_line = _FLAGS.findall(text)
    if flag_line:
        for number in re.findall(r"\d+", flag_line[-1]):
            if not 1 <= int(number) <= len(flags):
                raise JudgeError(f"The judge named flag {number}; there are {len(flags)}.")
            if flags[int(number) - 1] not in named:
                named.append(flags[int(number) - 1])
    return score, named, _confidence(text), text[: _SCORE.search(text).start()].strip()


def parse_ranking(text: str, count: int) -> tuple[list[int], float | None, str]:
    """(indices best first, confidence, rationale); JudgeError unless the ranking names each
    of the `count` responses exactly once."""
    if not isinstance(text, str):
        raise JudgeError("The judge's answer has no text.")
    found = list(_RANKING.finditer(text))
    if not found:
        raise JudgeError(f"The judge's answer has no ranking line: {text[:120]!r}")
    letters = re.findall(r"[A-P]", found[-1].group(1).upper())
    order = [LETTERS.index(c) for c in letters]
    if sorted(order) != list(range(count)):
        raise JudgeError(
            f"The judge's ranking {''.join(letters)!r} does not name each of the {count} "
            "responses once."
        )
    return order, _confidence(text), text[: found[-1].start()].strip()


def _confidence(text: str) -> float | None:
    conf = _CONFIDENCE.findall(text)
    return min(1.0, float(conf[-1])) if conf else None


def rank_by_pairs(judge, prompt, texts: list[str]) -> Answer:
    """A ranking from pairwise verdicts (for backends that compare two at a time): each pair
    asked once, i before j; ordered by wins (a tie half a win), then by position. Asked again
    with the responses reversed, every pair comes the other way round, so a judge's position
    bias shows as an inconsistent ranking."""
    wins = [0.0] * len(texts)
    usage: dict = {}
    confs = []
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            answer = judge(prompt, texts[i], texts[j])
            if answer.choice == "a":
                wins[i] += 1
            elif answer.choice == "b":
                wins[j] += 1
            elif answer.choice == "tie":
                wins[i] += 0.5
                wins[j] += 0.5
            _add_usage(usage, answer.usage)
            if answer.confidence is not None:
                confs.append(answer.confidence)
    order = sorted(range(len(texts)), key=lambda k: (-wins[k], k))
    return Answer("", min(confs) if confs else None, "", usage, order=order)


def _add_usage(total: dict, part: dict) -> None:
    for key, value in part.items():
        if isinstance(value, (int, float)):
            total[key] = round(total.get(key, 0) + value, 8)


# --- Backends ---------------------------------------------------------------------------------


class OpenAIJudge:
    """POST {base_url}/chat/completions, the protocol of vLLM, TGI, llama.cpp, Ollama and the
    hosted APIs; standard library only. Retries 429, 5xx and timeouts with doubling waits."""

    def __init__(self, config: JudgeConfig, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self._key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        if config.api_key_env and not self._key:
            raise JudgeError(
                f"The environment variable {config.api_key_env} (the judge's API key) is not "
                "set on this worker."
            )
        self.sleep = sleep

    def __call__(self, prompt, first: str, second: str) -> Answer:
        text, usage = self._ask(render(self.config, prompt, first, second))
        choice, confidence, rationale = parse_answer(text)
        return Answer(choice, confidence, self._kept(rationale), usage)

    def score(self, prompt, text: str, points: int, flags: list) -> Answer:
        answer, usage = self._ask(render_likert(self.config, prompt, text, points, flags))
        score, named, confidence, rationale = parse_likert(answer, points, flags)
        return Answer(str(score), confidence, self._kept(rationale), usage, flags=named)

    def rank(self, prompt, texts: list[str]) -> Answer:
        answer, usage = self._ask(render_ranking(self.config, prompt, texts))
        order, confidence, rationale = parse_ranking(answer, len(texts))
        return Answer("", confidence, self._kept(rationale), usage, order=order)

    def _kept(self, rationale: str) -> str:
        return rationale if self.config.chain_of_thought else ""

    def _ask(self, user: str) -> tuple[str, dict]:
        """The endpoint's text for one user message, and the call's tokens and cost."""
        c = self.config
        body = {
            "model": c.model,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
        }
        data = self._post(json.dumps(body).encode())
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise JudgeError(
                f"The endpoint's answer is not a chat completion (no choices[0].message."
                f"content): {json.dumps(data)[:200]}"
            ) from None
        usage = data.get("usage") or {}
        p, q = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        cost = p / 1000 * c.cost_per_1k_prompt + q / 1000 * c.cost_per_1k_completion
        return text, {"prompt_tokens": p, "completion_tokens": q, "cost": round(cost, 8),
                      "calls": 1}  # fmt: skip

    def _post(self, payload: bytes) -> dict:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = "Bearer " + self._key
        last = ""
        for attempt in range(self.config.retries + 1):
            if attempt:
                self.sleep(self.config.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=payload, headers=headers)  # noqa: S310
            try:
                # http(s) only: checked in JudgeConfig.
                with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:  # noqa: S310
                    raw = response.read()
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code == 429 or exc.code >= 500:
                    continue
                raise JudgeError(f"The endpoint refused the request: HTTP {exc.code}.") from None
            except TimeoutError:
                last = f"no answer within {self.config.timeout_s:g} s"
                continue
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                    last = f"no answer within {self.config.timeout_s:g} s"
                    continue
                last = f"cannot connect ({exc.reason})"
                continue
            try:
                return json.loads(raw)
            except ValueError:
                raise JudgeError(f"The endpoint's answer is not JSON: {raw[:120]!r}") from None
        raise JudgeError(
            f"The endpoint {self.config.base_url} failed {self.config.retries + 1} time(s); "
            f"last: {last}."
        )


class CallableJudge:
    """`module:function(a, b, *, prompt=...)` returning a choice, or a dict with "choice" and
    optionally "confidence" and "rationale"."""

    def __init__(self, config: JudgeConfig):
        module, _, name = config.callable_path.partition(":")
        try:
            self.fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise JudgeError(f"Cannot load the judge {config.callable_path}: {exc}") from None
        params = inspect.signature(self.fn).parameters
        any_keyword = any(p.kind == p.VAR_KEYWORD for p in params.values())
        self.takes_prompt = "prompt" in params or any_keyword
        self.takes_points = "points" in params or any_keyword

    def __call__(self, prompt, first: str, second: str) -> Answer:
        kwargs = {"prompt": prompt} if self.takes_prompt else {}
        out = self.fn(first, second, **kwargs)
        if isinstance(out, dict):
            answer = Answer(out.get("choice"), out.get("confidence"), out.get("rationale", ""))
        else:
            answer = Answer(out)
        if answer.choice not in CHOICES:
            raise JudgeError(f"The judge answered {answer.choice!r}, not one of {CHOICES}.")
        return answer

    def score(self, prompt, text: str, points: int, flags: list) -> Answer:
        """Given one text (and `points=`, `prompt=` when it takes them), as the oracles are:
        an int score, or a dict with "score" and optionally "flags" (names), "confidence"."""
        kwargs = {"prompt": prompt} if self.takes_prompt else {}
        if self.takes_points:
            kwargs["points"] = points
        out = self.fn(text, **kwargs)
        score = out.get("score") if isinstance(out, dict) else out
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= points:
            raise JudgeError(f"The judge scored {score!r}; expected an int from 1 to {points}.")
        named = list(out.get("flags") or []) if isinstance(out, dict) else []
        unknown = [f for f in named if f not in flags]
        if unknown:
            raise JudgeError(f"The judge named flags the project does not have: {unknown}.")
        confidence = out.get("confidence") if isinstance(out, dict) else None
        return Answer(str(score), confidence, "", flags=named)

    def rank(self, prompt, texts: list[str]) -> Answer:
        return rank_by_pairs(self, prompt, texts)


class TransformersJudge:
    """A local causal LM: the verdict is whichever answer, " A" or " B", has the higher
    log-probability as the continuation of the rubric and "Verdict:" (summed over its tokens,
    as a tokenizer may split them); confidence is the two answers' softmax."""

    ANSWERS = (" A", " B")

    def __init__(self, config: JudgeConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from trainer.algorithms.common import resolve_device

        self.torch, self.config = torch, config
        self.device = resolve_device(config.device)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model_path)
        self.model = AutoModelForCausalLM.from_pretrained(config.model_path).to(self.device)
        self.model.eval()
        self.answer_ids = [
            self.tokenizer(t, add_special_tokens=False).input_ids for t in self.ANSWERS
        ]
        if self.answer_ids[0] == self.answer_ids[1]:
            raise JudgeError("The model's tokenizer does not tell ' A' from ' B'.")

    def _logprob(self, prompt_ids: list[int], answer_ids: list[int]) -> float:
        torch = self.torch
        ids = torch.tensor([prompt_ids + answer_ids], device=self.device)
        with torch.no_grad():
            logits = self.model(input_ids=ids).logits[0].float()
        logp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], -1)
        return float(sum(logp[i, t] for i, t in enumerate(answer_ids)))

    def __call__(self, prompt, first: str, second: str) -> Answer:
        text = render(self.config, prompt, first, second) + "\nVerdict:"
        prompt_ids = self.tokenizer(text).input_ids[-1024:]
        la, lb = (self._logprob(prompt_ids, ids) for ids in self.answer_ids)
        p_a = 1 / (1 + math.exp(lb - la))
        return Answer("a" if p_a >= 0.5 else "b", max(p_a, 1 - p_a), "", {"logprobs": [la, lb]})

    def score(self, prompt, text: str, points: int, flags: list) -> Answer:
        """The score whose digits, as the continuation of the rubric and "Score:", are the
        most likely; confidence is its share of the scores' softmax. No flags."""
        rendered = render_likert(self.config, prompt, text, points, flags) + "\nScore:"
        prompt_ids = self.tokenizer(rendered).input_ids[-1024:]
        logps = [
            self._logprob(prompt_ids, self.tokenizer(f" {k}", add_special_tokens=False).input_ids)
            for k in range(1, points + 1)
        ]
        top = max(logps)
        weights = [math.exp(lp - top) for lp in logps]
        best = max(range(points), key=lambda k: logps[k])
        return Answer(str(best + 1), weights[best] / sum(weights), "", {"logprobs": logps})

    def rank(self, prompt, texts: list[str]) -> Answer:
        return rank_by_pairs(self, prompt, texts)


class RewardModelJudge:
    """The project's reward model: the response it scores higher wins; confidence is the
    Bradley–Terry probability sigmoid(r1 - r2)."""

    def __init__(self, config: JudgeConfig):
        from trainer.algorithms.reward_scoring import RewardScorer

        self.scorer = RewardScorer(config.model_path, device=config.device)

    def __call__(self, prompt, first: str, second: str) -> Answer:
        r1, r2 = self.scorer([prompt, prompt], [first, second])
        p = 1 / (1 + math.exp(-(r1 - r2)))
        return Answer("a" if p >= 0.5 else "b", max(p, 1 - p), "", {"rewards": [r1, r2]})

    def score(self, prompt, text: str, points: int, flags: list) -> Answer:
        raise JudgeError(
            "A reward-model judge gives no Likert scores: its rewards have no fixed scale."
        )

    def rank(self, prompt, texts: list[str]) -> Answer:
        """By reward, highest first; confidence is the Bradley–Terry probability of the
        closest neighbouring pair."""
        rewards = self.scorer([prompt] * len(texts), list(texts))
        order = sorted(range(len(texts)), key=lambda k: (-rewards[k], k))
        gaps = [rewards[order[k]] - rewards[order[k + 1]] for k in range(len(order) - 1)]
        confidence = 1 / (1 + math.exp(-min(gaps))) if gaps else None
        return Answer("", confidence, "", {"rewards": list(rewards)}, order=order)


def make_judge(config: JudgeConfig) -> Callable[..., Answer]:
    return {
        "openai": OpenAIJudge,
        "callable": CallableJudge,
        "transformers": TransformersJudge,
        "reward_model": RewardModelJudge,
    }[config.backend](config)


# --- The job ----------------------------------------------------------------------------------


def judge_row(judge, row: dict) -> dict:
    """One task's answers (both orders for a pair or a ranking); the result row the app
    stores."""
    kind, prompt, texts = row.get("kind", "pairwise"), row["prompt"], list(row["responses"])
    flags: list = []
    if kind == "likert":
        answers = [judge.score(prompt, texts[0], row["points"], row.get("flags") or [])]
        first, second, flags = answers[0].choice, "", answers[0].flags
    elif kind == "ranking":
        if not 2 <= len(texts) <= len(LETTERS):
            raise JudgeError(f"A ranking of {len(texts)} responses (2 to {len(LETTERS)} can be).")
        answers = [judge.rank(prompt, texts), judge.rank(prompt, texts[::-1])]
        first, second = ("".join(LETTERS[k] for k in a.order) for a in answers)
    else:
        answers = [judge(prompt, texts[0], texts[1]), judge(prompt, texts[1], texts[0])]
        first, second = answers[0].choice, answers[1].choice
    usage: dict = {}
    for a in answers:
        _add_usage(usage, a.usage)
    confs = [a.confidence for a in answers if a.confidence is not None]
    out = {
        "task_id": row["task_id"],
        "kind": kind,
        "shown_order": row["shown_order"],
        "first": first,
        "second": second,
        "confidence": min(confs) if confs else None,
        "rationale": "\n\n---\n\n".join(a.rationale for a in answers if a.rationale),
        "usage": usage,
    }
    if kind == "likert":
        out["flags"] = flags
    return out


def train(
    config: JudgeConfig,
    rows: list[dict],
    output_dir: str,
    progress=None,
    should_stop=None,
    emit_batch: Callable[[list[dict]], None] | None = None,
) -> dict:
    """Judge every row, a batch at a time; a batch goes out whole through `emit_batch`."""
    judge = make_judge(config)
    random.Random(config.seed).shuffle(rows := list(rows))
    done = errors = inconsistent = 0
    totals: dict = {}
    last_error = ""
    with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
        for start in range(0, len(rows), config.batch_size):
            if should_stop is not None and should_stop():
                return {"judged": done, "errors": errors, "stopped": True, **totals}
            batch = rows[start : start + config.batch_size]
            results = []
            for row, outcome in zip(batch, pool.map(_safe(judge), batch), strict=True):
                if isinstance(outcome, JudgeError):
                    errors, last_error = errors + 1, str(outcome)
                    if errors > config.max_errors:
                        raise JudgeError(f"Task {row['task_id']}: {outcome}")
                    continue
                results.append(outcome)
            for r in results:
                inconsistent += _inconsistent(r)
                for key, value in r["usage"].items():
                    if isinstance(value, (int, float)) and key in USAGE_TOTALS:
                        totals[key] = round(totals.get(key, 0) + value, 8)
            if emit_batch is not None and results:
                emit_batch(results)
            done += len(results)
            if progress is not None:
                counts = {"judged": done, "inconsistent": inconsistent, "errors": errors}
                progress(start + len(batch), len(rows), counts)
    final = {"judged": done, "inconsistent": inconsistent, "errors": errors, **totals}
    if last_error:
        final["last_error"] = last_error
    return final


USAGE_TOTALS = ("prompt_tokens", "completion_tokens", "cost", "calls")


def _safe(judge):
    def run(row):
        try:
            return judge_row(judge, row)
        except JudgeError as exc:
            return exc

    return run


def _inconsistent(r: dict) -> bool:
    kind = r.get("kind", "pairwise")
    if kind == "likert":
        return False  # asked once
    if kind == "ranking":
        # The second ranking was asked with the responses reversed: position k there is
        # position K-1-k as served.
        k = len(r["second"])
        return r["first"] != "".join(LETTERS[k - 1 - LETTERS.index(c)] for c in r["second"])
    swap = {"a": "b", "b": "a"}
    return swap.get(r["first"], r["first"]) != r["second"]


if __name__ == "__main__":
    import sys

    from trainer.algorithms.common import config_from_dict, read_jsonl

    cfg = config_from_dict(JudgeConfig, json.loads(sys.argv[1]))
    for line in train(cfg, read_jsonl(sys.argv[2]), ".", emit_batch=print).items():
        print(*line)

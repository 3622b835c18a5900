"""AI judges: pairwise verdicts from a chat-completions endpoint, a local model, the reward model
or a Python callable (docs/ai-judges.md). No Django here.

Every pair is asked in both orders: (A, B) as served, then (B, A). The two answers go back to
the app as they are; the app decides whether they agree (annotator/judging.py) and who else is
asked. `train(config, rows, output_dir, ...)` is the job kind's entry point (trainer/kinds.py):
rows are tasks ``{"task_id", "prompt", "shown_order", "responses": [first, second]}``; each
batch of results goes out through `emit_batch` as soon as it is whole, so the app stores a
batch entirely or not at all.

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
    rubric: str = _opt(PAIRWISE_RUBRIC, "The prompt template.")
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
    choice: str  # "a" (the response shown first), "b", "tie" or "both_bad"
    confidence: float | None = None
    rationale: str = ""
    usage: dict = field(default_factory=dict)


def render(config: JudgeConfig, prompt, first: str, second: str) -> str:
    if isinstance(prompt, list):
        prompt = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt)
    text = config.rubric
    for key, value in (
        ("{principles}", "\n".join(f"- {p}" for p in config.principles)),
        ("{prompt}", str(prompt)),
        ("{response_a}", first),
        ("{response_b}", second),
    ):
        text = text.replace(key, value)
    return text + ("\n\n" + THINK if config.chain_of_thought else "")


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
    conf = _CONFIDENCE.findall(text)
    confidence = min(1.0, float(conf[-1])) if conf else None
    rationale = text[: _VERDICT.search(text).start()].strip() if found else ""
    return choice, confidence, rationale


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
        c = self.config
        body = {
            "model": c.model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": render(c, prompt, first, second)},
            ],
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
        choice, confidence, rationale = parse_answer(text)
        usage = data.get("usage") or {}
        p, q = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        cost = p / 1000 * c.cost_per_1k_prompt + q / 1000 * c.cost_per_1k_completion
        return Answer(
            choice, confidence, rationale if c.chain_of_thought else "",
            {"prompt_tokens": p, "completion_tokens": q, "cost": round(cost, 8), "calls": 1},
        )  # fmt: skip

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
        self.takes_prompt = "prompt" in params or any(
            p.kind == p.VAR_KEYWORD for p in params.values()
        )

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


def make_judge(config: JudgeConfig) -> Callable[..., Answer]:
    return {
        "openai": OpenAIJudge,
        "callable": CallableJudge,
        "transformers": TransformersJudge,
        "reward_model": RewardModelJudge,
    }[config.backend](config)


# --- The job ----------------------------------------------------------------------------------


def judge_row(judge, row: dict) -> dict:
    """Both orders for one task; the result row the app stores."""
    prompt, (x, y) = row["prompt"], row["responses"]
    first = judge(prompt, x, y)
    second = judge(prompt, y, x)
    usage: dict = {}
    for part in (first.usage, second.usage):
        for key, value in part.items():
            if isinstance(value, (int, float)):
                usage[key] = round(usage.get(key, 0) + value, 8)
    confs = [a.confidence for a in (first, second) if a.confidence is not None]
    return {
        "task_id": row["task_id"],
        "shown_order": row["shown_order"],
        "first": first.choice,
        "second": second.choice,
        "confidence": min(confs) if confs else None,
        "rationale": "\n\n---\n\n".join(a.rationale for a in (first, second) if a.rationale),
        "usage": usage,
    }


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
    swap = {"a": "b", "b": "a"}
    return swap.get(r["first"], r["first"]) != r["second"]


if __name__ == "__main__":
    import sys

    from trainer.algorithms.common import config_from_dict, read_jsonl

    cfg = config_from_dict(JudgeConfig, json.loads(sys.argv[1]))
    for line in train(cfg, read_jsonl(sys.argv[2]), ".", emit_batch=print).items():
        print(*line)

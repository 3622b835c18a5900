"""Programmatic oracles: the rules simulated labelers answer by (docs/simulated-labelers.md).

No Django here: `simulate_labelers` runs them in labeler processes that talk HTTP only, and a
benchmark can call them directly to judge a policy's samples with the same rule.

An oracle answers every task kind from one rule:
- pairwise: the response with the higher score wins, equal scores are a tie;
- Likert: the score mapped onto 1..points (`rate`);
- ranking: responses sorted by score, best first.

Named rules:
- `target-words`: score = how many distinct words of the target list the response contains;
- `target-length`: score = minus the distance, in words, between its length and the target;
- `words-and-length` (alias `target-words-plus-length`): target words minus
  `length_weight` times the length distance.
The names `likert-<rule>` and `ranking-<rule>` are accepted too and mean the same oracle.
Any other name of the form `module:function` is a Python callable: given two texts it returns
"a", "b", "tie" or "both_bad"; on a Likert task it is given one text and returns a score.
It also receives `prompt=` (and on Likert tasks `points=`) when its signature accepts them.

Noise is an error rate: with probability `noise` an answer is deliberately wrong (a strict
preference is reversed, a tie or "both bad" becomes a random side, a Likert score becomes a
random other score, a ranking has two neighbours swapped). noise = 1.0 is therefore always
wrong, not random; noise = 0.0 always answers by the rule.
"""

import functools
import hashlib
import importlib
import inspect
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

PAIRWISE_CHOICES = ("a", "b", "tie", "both_bad")

# A neutral default; real runs pass their own list (--target-words).
DEFAULT_TARGET_WORDS = ("happy", "friend", "garden", "music", "bright", "kind")
DEFAULT_TARGET_LENGTH = 12

_WORD = re.compile(r"[\w']+")


class OracleError(ValueError):
    """An unknown oracle name, a callable that cannot be loaded, or a bad answer from one."""


@dataclass(frozen=True)
class OracleConfig:
    target_words: tuple[str, ...] = field(
        default=DEFAULT_TARGET_WORDS,
        metadata={"help": "Words the target-words rule looks for (case-insensitive)."},
    )
    target_length: int = field(
        default=DEFAULT_TARGET_LENGTH,
        metadata={"help": "Length in words the target-length rule prefers."},
    )
    length_weight: float = field(
        default=0.25,
        metadata={
            "help": "words-and-length: what one word of length distance costs, in target words."
        },
    )
    top_words: int = field(
        default=3,
        metadata={"help": "Likert: distinct target words that earn the top score."},
    )
    noise: float = field(
        default=0.0,
        metadata={"help": "Probability that an answer is wrong on purpose (an error rate)."},
    )
    seed: int | None = field(
        default=None, metadata={"help": "Seed of the noise and of tie-breaking; None: random."}
    )
    position_bias: float = field(
        default=0.0,
        metadata={
            "help": "Pairwise: probability of answering the first response as served ('a', "
            "the left one) whatever it says; 1.0 always picks the left side."
        },
    )
    pair_noise: float = field(
        default=0.0,
        metadata={
            "help": "Pairwise: share of pairs the oracle is consistently wrong about, in both "
            "orders and on every asking (fixed by the two texts and pair_seed)."
        },
    )
    pair_seed: int | None = field(
        default=None,
        metadata={"help": "Seed of the per-pair errors; None: the same as seed (0 if unset)."},
    )
    pair_ties: bool = field(
        default=False,
        metadata={
            "help": "Pairwise: a tie that must be broken is broken by the two texts and "
            "pair_seed (the same text in either order), not by the random stream."
        },
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise <= 1.0:
            raise OracleError("noise must be between 0 and 1")
        if not 0.0 <= self.position_bias <= 1.0:
            raise OracleError("position_bias must be between 0 and 1")
        if not 0.0 <= self.pair_noise <= 1.0:
            raise OracleError("pair_noise must be between 0 and 1")
        if self.target_length < 1:
            raise OracleError("target_length must be at least 1")
        if self.top_words < 1:
            raise OracleError("top_words must be at least 1")
        words = tuple(w.strip().lower() for w in self.target_words if w.strip())
        object.__setattr__(self, "target_words", words)


def text_terms(text: str, config: OracleConfig) -> dict[str, float]:
    """The raw terms every named rule is built from, for printing beside the rule's verdicts."""
    words = _WORD.findall(text.lower())
    matched = len(set(words) & set(config.target_words))
    distance = abs(len(words) - config.target_length)
    return {"target_words": matched, "length": len(words), "length_distance": distance}


# --- Rules: a score for pairwise and ranking, a quality in [0, 1] for Likert ----------------


@dataclass(frozen=True)
class Rule:
    name: str
    score: Callable[[dict, OracleConfig], float]
    quality: Callable[[dict, OracleConfig], float]


def _words_quality(terms: dict, config: OracleConfig) -> float:
    top = min(config.top_words, len(config.target_words)) or 1
    return min(terms["target_words"], top) / top


def _length_quality(terms: dict, config: OracleConfig) -> float:
    return max(0.0, 1.0 - terms["length_distance"] / config.target_length)


RULES: dict[str, Rule] = {
    "target-words": Rule(
        "target-words",
        score=lambda t, c: t["target_words"],
        quality=_words_quality,
    ),
    "target-length": Rule(
        "target-length",
        score=lambda t, c: -t["length_distance"],
        quality=_length_quality,
    ),
    "words-and-length": Rule(
        "words-and-length",
        score=lambda t, c: t["target_words"] - c.length_weight * t["length_distance"],
        quality=lambda t, c: (_words_quality(t, c) + _length_quality(t, c)) / 2,
    ),
}
ALIASES = {"target-words-plus-length": "words-and-length"}


def oracle_names() -> list[str]:
    """Every name `make_oracle` accepts besides `module:function`."""
    names = [*RULES, *ALIASES]
    return names + [f"{prefix}-{name}" for prefix in ("likert", "ranking") for name in RULES]


def _rule_for(name: str) -> Rule:
    base = name
    for prefix in ("likert-", "ranking-"):
        if base.startswith(prefix) and base[len(prefix) :] in RULES:
            base = base[len(prefix) :]
    base = ALIASES.get(base, base)
    if base not in RULES:
        raise OracleError(
            f"unknown oracle {name!r}: use one of {', '.join(oracle_names())} "
            "or a Python callable as module:function"
        )
    return RULES[base]


def load_callable(spec: str) -> Callable:
    """`package.module:function` (the function may be a dotted attribute path)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise OracleError(f"a callable oracle is named module:function, got {spec!r}")
    try:
        target = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise OracleError(f"cannot load oracle {spec!r}: {exc}") from exc
    if not callable(target):
        raise OracleError(f"oracle {spec!r} is not callable")
    return target


# --- The oracle -----------------------------------------------------------------------------


class Oracle:
    """One labeler's oracle: a rule (or a callable), a config and its own random stream.

    `prefer`, `rate` and `order` give the rule's own verdicts, without noise (what a benchmark
    judges with); `answer_pairwise`, `answer_likert` and `answer_ranking` give a simulated
    labeler's answers, with noise.
    """

    def __init__(self, name: str, config: OracleConfig | None = None) -> None:
        self.name = name
        self.config = config or OracleConfig()
        self.rng = random.Random(self.config.seed)
        self.rule: Rule | None = None
        self.function: Callable | None = None
        if ":" in name:
            self.function = load_callable(name)
            self._accepts = _accepted_keywords(self.function)
        else:
            self.rule = _rule_for(name)

    # The rule itself, without noise.

    def terms(self, text: str) -> dict[str, float]:
        """The raw terms (target words matched, length, length distance) and the rule's score.

        Empty for a callable oracle: its terms are its own business."""
        if self.rule is None:
            return {}
        terms = text_terms(text, self.config)
        return {**terms, "score": self.rule.score(terms, self.config)}

    def score(self, text: str) -> float:
        if self.rule is None:
            raise OracleError("a callable oracle has no score; it compares or rates")
        return self.rule.score(text_terms(text, self.config), self.config)

    def prefer(self, a: str, b: str, *, prompt: str = "") -> str:
        """The rule's verdict on a pair: "a", "b", "tie" (equal scores) or, from a callable,
        "both_bad"."""
        if self.function is not None:
            choice = self._call(a, b, prompt=prompt)
            if choice not in PAIRWISE_CHOICES:
                raise OracleError(
                    f"oracle {self.name} answered {choice!r}; expected one of "
                    f"{', '.join(PAIRWISE_CHOICES)}"
                )
            return choice
        score_a, score_b = self.score(a), self.score(b)
        if score_a == score_b:
            return "tie"
        return "a" if score_a > score_b else "b"

    def rate(self, text: str, *, points: int, prompt: str = "") -> int:
        """The rule's Likert score from 1 to `points`."""
        if self.function is not None:
            score = self._call(text, prompt=prompt, points=points)
            if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= points:
                raise OracleError(f"oracle {self.name} rated {score!r}; expected 1..{points}")
            return score
        quality = self.rule.quality(text_terms(text, self.config), self.config)
        return 1 + round(quality * (points - 1))

    def order(self, texts: Sequence[str], *, prompt: str = "") -> list[int]:
        """Indices of `texts`, best first; equals keep their given order."""
        if self.function is not None:
            # Sorted by the callable's own pairwise verdicts.
            def compare(i: int, j: int) -> int:
                return {"a": -1, "b": 1}.get(self.prefer(texts[i], texts[j], prompt=prompt), 0)

            return sorted(range(len(texts)), key=functools.cmp_to_key(compare))
        scores = [self.score(t) for t in texts]
        return sorted(range(len(texts)), key=lambda i: -scores[i])

    # A simulated labeler's answers, with noise.

    def answer_pairwise(
        self,
        a: str,
        b: str,
        *,
        prompt: str = "",
        allow_tie: bool = True,
        allow_both_bad: bool = True,
    ) -> str:
        # Drawn only when set, so the answers of a seed without a bias stay what they were.
        if self.config.position_bias and self.rng.random() < self.config.position_bias:
            return "a"
        choice = self.prefer(a, b, prompt=prompt)
        if self.config.pair_noise:
            choice = self._belief(a, b, choice)
        if self._wrong():
            choice = {"a": "b", "b": "a"}.get(choice) or self.rng.choice("ab")
        if choice == "both_bad" and not allow_both_bad:
            choice = "tie"
        if choice == "tie" and not allow_tie:
            choice = self._tie_side(a, b) if self.config.pair_ties else self.rng.choice("ab")
        return choice

    def answer_likert(self, text: str, *, points: int, prompt: str = "") -> int:
        score = self.rate(text, points=points, prompt=prompt)
        if self._wrong():
            score = self.rng.choice([s for s in range(1, points + 1) if s != score])
        return score

    def answer_ranking(self, texts: Sequence[str], *, prompt: str = "") -> list[int]:
        order = self.order(texts, prompt=prompt)
        if self._wrong() and len(order) > 1:
            i = self.rng.randrange(len(order) - 1)
            order[i], order[i + 1] = order[i + 1], order[i]
        return order

    def _belief(self, a: str, b: str, choice: str) -> str:
        """The answer held about this pair: wrong on a `pair_noise` share of pairs, whatever
        the order they come in. Hashed from the texts, so it draws nothing from `rng`."""
        digest = self._pair_digest(a, b)
        if int.from_bytes(digest[:8], "big") / 2**64 >= self.config.pair_noise:
            return choice
        if choice in ("a", "b"):
            return "b" if choice == "a" else "a"
        # A tie or "both bad" believed wrong: one side, the same text in either order.
        return self._tie_side(a, b)

    def _tie_side(self, a: str, b: str) -> str:
        """One side of the pair, fixed by its texts: the same text in either order."""
        first, second = sorted((a, b))
        side = first if self._pair_digest(a, b)[8] % 2 else second
        return "a" if side == a else "b"

    def _pair_digest(self, a: str, b: str) -> bytes:
        seed = self.config.pair_seed if self.config.pair_seed is not None else self.config.seed
        first, second = sorted((a, b))
        return hashlib.blake2b(f"{seed or 0}\x00{first}\x00{second}".encode()).digest()

    def _wrong(self) -> bool:
        # Drawn on every answer, so one seed gives one sequence of answers.
        return self.rng.random() < self.config.noise

    def _call(self, *texts: str, **optional):
        kwargs = {k: v for k, v in optional.items() if self._accepts is None or k in self._accepts}
        return self.function(*texts, **kwargs)


def _accepted_keywords(function: Callable) -> set[str] | None:
    """The keyword arguments `function` accepts; None when it takes **kwargs. One whose
    signature cannot be read gets the texts alone."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}


def make_oracle(name: str, **options) -> Oracle:
    """An oracle by name with OracleConfig's fields as keywords, e.g.
    make_oracle("target-words", target_words=("sun",), noise=0.1, seed=1)."""
    if isinstance(options.get("target_words"), str):
        options["target_words"] = tuple(options["target_words"].split(","))
    return Oracle(name, replace(OracleConfig(), **options))


def judge_rates(*, pair_noise: float, noise: float, left: float) -> dict[str, float]:
    """Expected rates of a pairwise oracle on pairs with a strict answer, each asked once in
    each order: `error`, the share of wrong answers (a left-biased answer is wrong half the
    time), and `flip`, the share of pairs whose two answers pick different responses."""
    content = pair_noise + noise - 2 * pair_noise * noise  # wrong when not left-biased
    return {
        "error": left / 2 + (1 - left) * content,
        "flip": left + (1 - left) ** 2 * 2 * noise * (1 - noise),
    }


def judge_noise_for(*, error: float, flip: float, left: float) -> tuple[float, float]:
    """(pair_noise, noise) that give `judge_rates` of `error` and `flip` at position bias
    `left`. A left bias alone already flips a share `left` of pairs, so flip >= left."""
    if left >= 1 or flip < left:
        raise OracleError(f"a left bias of {left} flips at least {left} of pairs; flip={flip}")
    x = (flip - left) / (2 * (1 - left) ** 2)
    if x > 0.25:
        raise OracleError(f"no per-answer noise flips {flip} of pairs at left={left}")
    noise = (1 - math.sqrt(1 - 4 * x)) / 2
    content = (error - left / 2) / (1 - left)
    if not noise <= content <= 1 - noise:
        raise OracleError(f"error={error} is out of reach at flip={flip}, left={left}")
    return (content - noise) / (1 - 2 * noise), noise

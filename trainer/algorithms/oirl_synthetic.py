"""A synthetic offline log for Prompt-OIRL: queries of several types, six prompting strategies,
and noisy outcomes where the best strategy depends on the query.

Each query type has its own vocabulary and length; each strategy is best on some types (long
multi-step arithmetic favours step-by-step, short facts favour a concise answer, code questions
a code-first instruction, ...), and within the arithmetic type the length of the problem moves
the odds further. An outcome is one Bernoulli draw of the strategy's success probability on the
query, as a logged "was the answer correct" would be.

Plain Python and numpy, no Django: the tests, the benchmark (bench/prompt_oirl.py) and the docs'
worked example all draw from it.

    python -m trainer.algorithms.oirl_synthetic --queries 200 --seed 0 > log.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys

# Name -> the template wrapped around the query ({query} is replaced by it).
STRATEGIES: dict[str, str] = {
    "plain": "{query}",
    "step_by_step": "{query}\n\nLet's think step by step, then give the final answer.",
    "concise": "Answer in one short sentence.\n\n{query}",
    "expert": "You are a careful domain expert. {query}",
    "code_first": "Write the code first, then explain it.\n\n{query}",
    "few_shot": "Here are two worked examples of the format. ...\n\n{query}",
}
STRATEGY_NAMES = list(STRATEGIES)

# Success probability of each strategy (columns in STRATEGY_NAMES order) on each query type.
# Every strategy is the best one somewhere; step_by_step is the best single strategy overall.
SUCCESS = {
    #                plain step  conc  expert code  few
    "arithmetic": (0.30, 0.85, 0.20, 0.40, 0.35, 0.50),
    "fact": (0.55, 0.35, 0.88, 0.50, 0.20, 0.45),
    "code": (0.30, 0.45, 0.20, 0.40, 0.88, 0.35),
    "medical": (0.35, 0.50, 0.30, 0.86, 0.25, 0.45),
    "format": (0.35, 0.40, 0.40, 0.30, 0.25, 0.87),
    "chat": (0.86, 0.40, 0.55, 0.45, 0.20, 0.40),
}
TYPES = list(SUCCESS)

_FILLER = "the a of to and in is for on with that this it as at by from".split()
_VOCAB = {
    "arithmetic": "apples trains hours total sum cost price each per remaining left buys sells "
    "minutes distance speed percent twice half ratio shares tickets".split(),
    "fact": "capital river founded year wrote painted invented largest country author city "
    "mountain ocean planet discovered language currency".split(),
    "code": "python function list dictionary loop recursion sort string regex class api "
    "exception bug compile javascript array parse".split(),
    "medical": "symptoms dose fever treatment diagnosis patient blood pressure chronic "
    "allergy vaccine infection therapy cardiac clinical".split(),
    "format": "table json csv bullet columns yaml markdown template rows fields outline "
    "headings schema list format".split(),
    "chat": "hello thanks feel weekend friend advice favourite movie hobby today tired happy "
    "chat recommend fun".split(),
}
_OPENERS = {
    "arithmetic": "A shop has {n} items.",
    "fact": "Quick question:",
    "code": "In my program,",
    "medical": "A patient asks:",
    "format": "Please reformat this:",
    "chat": "Hey!",
}


def success_probability(query_type: str, length: int) -> list[float]:
    """The success probability of each strategy (STRATEGY_NAMES order) on one query.

    Arithmetic problems get harder with length: a long one needs step-by-step (plain and
    concise answers fail more), a short one is nearly as well served by a plain answer."""
    p = list(SUCCESS[query_type])
    if query_type == "arithmetic":
        short = length < 25
        p[0] += 0.35 if short else -0.15  # plain
        p[1] += -0.10 if short else 0.10  # step by step
        p[2] += 0.25 if short else -0.10  # concise
    return [min(0.98, max(0.02, x)) for x in p]


def make_query(rng: random.Random, query_type: str) -> str:
    low, high = (10, 60) if query_type == "arithmetic" else (6, 22)
    length = rng.randint(low, high)
    vocab = _VOCAB[query_type]
    words = [
        rng.choice(vocab) if rng.random() < 0.45 else rng.choice(_FILLER) for _ in range(length)
    ]
    opener = _OPENERS[query_type].format(n=rng.randint(2, 99))
    return f"{opener} {' '.join(words)} #{rng.randint(0, 10**6)}?"


def synthetic_log(
    n_queries: int = 2000,
    *,
    seed: int = 0,
    strategies: list[str] | None = None,
    with_truth: bool = False,
) -> list[dict]:
    """``n_queries`` queries x every strategy: rows ``{"query_id", "query", "strategy",
    "outcome"}`` (outcome 1.0 correct, 0.0 not); with ``with_truth`` each row also carries its
    ``type`` and true ``p``."""
    rng = random.Random(seed)
    names = strategies or STRATEGY_NAMES
    unknown = sorted(set(names) - set(STRATEGY_NAMES))
    if unknown:
        raise ValueError(f"Unknown synthetic strategies: {', '.join(unknown)}.")
    rows = []
    for i in range(n_queries):
        query_type = TYPES[i % len(TYPES)] if i < len(TYPES) else rng.choice(TYPES)
        query = make_query(rng, query_type)
        probabilities = success_probability(query_type, len(query.split()))
        for name in names:
            p = probabilities[STRATEGY_NAMES.index(name)]
            row = {
                "query_id": f"q{i}",
                "query": query,
                "strategy": name,
                "outcome": 1.0 if rng.random() < p else 0.0,
            }
            if with_truth:
                row |= {"type": query_type, "p": p}
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic Prompt-OIRL log as JSONL.")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for row in synthetic_log(args.queries, seed=args.seed):
        sys.stdout.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

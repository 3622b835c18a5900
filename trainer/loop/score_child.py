"""Score (prompt, completion) pairs with a reward model in a process of its own:
``python -m trainer.loop.score_child SPEC_JSON OUT_JSON``.

No Django here, and torch loads only in this process: the Celery worker that asks for the
scores (trainer/loop/measure.py) never imports it (see trainer/runner.py on fork hangs).
SPEC is ``{"model_path", "prompts", "completions", "batch_size", "max_length", "device"}``;
OUT receives ``{"scores": [...], "heads": [[...], ...]}``, one per pair, in order: the reward
(a reward ensemble's mean) and each head's score.
"""

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    spec_path, out_path = map(Path, argv)
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    from trainer.algorithms.reward_scoring import RewardScorer

    scorer = RewardScorer(
        spec["model_path"],
        device=spec.get("device", "auto"),
        batch_size=int(spec.get("batch_size") or 16),
        max_length=int(spec.get("max_length") or 512),
    )
    heads = scorer.heads(spec["prompts"], spec["completions"])
    scores = [sum(h) / len(h) for h in heads]
    out_path.write_text(json.dumps({"scores": scores, "heads": heads}), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])

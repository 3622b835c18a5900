"""The feedback loop: labels -> reward model -> policy -> samples -> new labels (docs/loop.md,
docs/architecture.md).

- services.py: the loop's state machine (`loop_advance`) and the admin's actions on it.
- measure.py: measurements on a gpu worker (a reward model's accuracy on fresh labels, a
  round's samples scored), each in a child process (score_child.py).
- selectors.py: the loop page's rounds and the rule for usable comparisons; judgments.py: the
  humans' win rates and the leaderboard; accuracy.py: reads for fresh-label accuracy.
- views.py, api.py: the loop page and its REST endpoints.
- evaluation.py, oracles.py: plain Python (no Django): statistics, and the rules simulated
  labelers answer by.

This file imports nothing, so `trainer.loop.evaluation` and `trainer.loop.oracles` load
without Django.
"""

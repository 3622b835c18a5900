"""Training code that knows nothing of Django: plain rows in, a checkpoint and metrics out.

Every algorithm module has ``train(config, rows, output_dir, *, progress, should_stop)``, a
config dataclass with a help text per field, and a ``__main__`` (``python -m
trainer.algorithms.<name> --config job.json``); see common.py for the contract.

    reward    reward model with ranking groups, margins, optional imitation loss (ours)
    dpo, sft  TRL's trainers behind the same contract (trl_bridge.py)
    generate  batched sampling from a policy (its ``train`` is the sampling run)
    raft      sample N, score, keep the best, fine-tune, repeat
    ppo       PPO with a separate value model and a KL penalty to a frozen reference (ours)
    tiny      a tiny offline Llama and tokenizer for tests and the demo

Importing a module here must not import Django, and (except ppo_core) not torch either:
the web side imports them to validate configs.
"""

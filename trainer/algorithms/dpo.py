"""DPO: train the policy directly on preferences against a frozen reference (TRL's DPOTrainer).

Rows are ``{"prompt", "chosen", "rejected"}`` (extra keys such as ``margin`` are ignored) or
``{"prompt", "ranking": [best, ...]}``, which is expanded into all its ordered pairs. A prompt
may be plain text or a chat transcript; with a chat transcript the responses are wrapped as
assistant messages so TRL applies the chat template.

The reference is ``ref_model_name_or_path`` if given, else a second copy of the starting
policy. Resuming reloads the starting policy as the reference, so it stays the same model.
An explicit reference is loaded the way TRL loads the policy (float32 weights, whatever the
checkpoint's dtype), so the log-ratios compare two models of one precision.

    python -m trainer.algorithms.dpo --config job.json
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.algorithms.common import ProgressCallback, StopCheck, run_main, set_seed
from trainer.algorithms.trl_bridge import (
    TrlTrainingConfig,
    policy_model,
    run_trainer,
    split_for_eval,
    training_arguments,
)


@dataclass
class DPOConfig(TrlTrainingConfig):
    beta: float = field(
        default=0.1,
        metadata={"help": "Strength of the pull towards the reference; higher stays closer."},
    )
    loss_type: str = field(
        default="sigmoid",
        metadata={"help": "TRL DPO loss: sigmoid (DPO), ipo, hinge, robust, ..."},
    )
    ref_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Frozen reference policy; defaults to model_name_or_path."},
    )


def preference_pairs(rows: list[dict]) -> list[dict]:
    """Normalise rows to TRL's prompt/chosen/rejected format."""
    pairs = []
    for index, row in enumerate(rows):
        if "ranking" in row:
            ranking = row["ranking"]
            found = [
                (ranking[i], ranking[j])
                for i in range(len(ranking))
                for j in range(i + 1, len(ranking))
            ]
        elif "chosen" in row and "rejected" in row:
            found = [(row["chosen"], row["rejected"])]
        else:
            raise ValueError(
                f"Row {index} needs 'prompt' with 'chosen' and 'rejected', or 'ranking'."
            )
        for chosen, rejected in found:
            pairs.append(
                {
                    "prompt": row["prompt"],
                    "chosen": _response(row["prompt"], chosen),
                    "rejected": _response(row["prompt"], rejected),
                }
            )
    return pairs


def _response(prompt, text):
    if isinstance(prompt, list) and isinstance(text, str):
        return [{"role": "assistant", "content": text}]
    return text


def load_reference(path: str):
    """The reference policy in float32, as DPOTrainer loads a policy given by path."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def train(
    config: DPOConfig,
    rows: list[dict],
    output_dir: str | Path,
    *,
    val_rows: list[dict] | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Run DPO on preference rows; returns final metrics (see common for the contract)."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig as TrlDPOConfig
    from trl import DPOTrainer

    set_seed(config.seed)
    output_dir = Path(output_dir)
    train_rows, eval_rows = split_for_eval(config, rows, val_rows)
    train_set = Dataset.from_list(preference_pairs(train_rows))
    eval_set = Dataset.from_list(preference_pairs(eval_rows)) if eval_rows else None
    args = TrlDPOConfig(
        **training_arguments(config, output_dir, eval_set is not None),
        beta=config.beta,
        loss_type=[config.loss_type],
    )
    tokenizer = AutoTokenizer.from_pretrained(config.model_name_or_path)
    ref_model = None
    if config.ref_model_name_or_path:
        ref_model = load_reference(config.ref_model_name_or_path)

    model, _ = policy_model(config)

    def build(callback):
        return DPOTrainer(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
            callbacks=[callback],
        )

    return run_trainer(
        build, config, output_dir, "dpo", eval_set is not None, progress, should_stop
    )


def main(argv: list[str] | None = None) -> dict:
    return run_main(train, DPOConfig, argv, description="Direct preference optimisation (TRL).")


if __name__ == "__main__":
    main()

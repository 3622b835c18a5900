"""SFT: supervised fine-tuning on demonstrations (TRL's SFTTrainer).

Rows are ``{"prompt", "completion"}`` (loss on the completion only, by default), a
conversation ``{"messages": [...]}`` ending with an assistant turn (trained on that last
assistant turn only: the turns before it are its prompt), or plain ``{"text"}``. A
chat-transcript prompt with a text completion is turned into TRL's conversational
prompt-completion format. RAFT uses this module for its fine-tuning step.

SFT from preference labels (:func:`best_responses`) takes each prompt's best response once: the
one that won the most of its comparisons (the top of a ranking), not every pair's ``chosen``,
which would make second- and third-best answers demonstrations and repeat the best one.

    python -m trainer.algorithms.sft --config job.json
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
class SFTConfig(TrlTrainingConfig):
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate (AdamW)."})
    completion_only_loss: bool = field(
        default=True,
        metadata={"help": "For prompt/completion rows, train on the completion tokens only."},
    )
    packing: bool = field(
        default=False, metadata={"help": "Pack several short rows into one sequence."}
    )


def best_responses(rows: list[dict]) -> list[dict]:
    """Preference rows (comparisons or rankings) -> one ``{"prompt", "completion"}`` per
    prompt: the response with the most wins minus losses over that prompt's comparisons (the
    first seen among equals); a ranking's best is its first."""
    from trainer.algorithms.common import prompt_key

    prompts: dict[str, object] = {}
    tally: dict[str, dict[str, int]] = {}
    for index, row in enumerate(rows):
        if "prompt" not in row:
            raise ValueError(f"Row {index} has no 'prompt'.")
        key = prompt_key(row)
        prompts.setdefault(key, row["prompt"])
        wins = tally.setdefault(key, {})
        if "ranking" in row:
            ranking = row["ranking"]
            pairs = [(a, b) for i, a in enumerate(ranking) for b in ranking[i + 1 :]]
        elif "chosen" in row and "rejected" in row:
            pairs = [(row["chosen"], row["rejected"])]
        else:
            raise ValueError(f"Row {index} needs 'chosen' and 'rejected', or 'ranking'.")
        for better, worse in pairs:
            wins[better] = wins.get(better, 0) + 1
            wins[worse] = wins.get(worse, 0) - 1
    return [
        {"prompt": prompts[key], "completion": max(wins, key=wins.get)}
        for key, wins in tally.items()
    ]


def demonstration_rows(rows: list[dict]) -> list[dict]:
    """Keep only the columns TRL reads, in the shape it expects."""
    out = []
    for index, row in enumerate(rows):
        if "messages" in row:
            messages = row["messages"]
            if not messages or messages[-1].get("role") != "assistant":
                raise ValueError(
                    f"Row {index}: a conversation must end with an assistant turn, the "
                    "response to train on."
                )
            # Prompt/completion, so the loss falls on the assistant's turn only.
            out.append({"prompt": messages[:-1], "completion": messages[-1:]})
        elif "prompt" in row and "completion" in row:
            completion = row["completion"]
            if isinstance(row["prompt"], list) and isinstance(completion, str):
                completion = [{"role": "assistant", "content": completion}]
            out.append({"prompt": row["prompt"], "completion": completion})
        elif "text" in row:
            out.append({"text": row["text"]})
        else:
            raise ValueError(f"Row {index} needs 'prompt' and 'completion', 'messages' or 'text'.")
        if set(out[-1]) != set(out[0]):
            # One Arrow table holds the rows, so a column missing from some would read as None.
            raise ValueError(
                f"Row {index} has the format {sorted(out[-1])} but row 0 has "
                f"{sorted(out[0])}; all rows must share one format."
            )
    return out


def train(
    config: SFTConfig,
    rows: list[dict],
    output_dir: str | Path,
    *,
    val_rows: list[dict] | None = None,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Fine-tune on demonstration rows; returns final metrics (see common for the contract)."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    set_seed(config.seed)
    output_dir = Path(output_dir)
    train_rows, eval_rows = split_for_eval(config, rows, val_rows)
    train_set = Dataset.from_list(demonstration_rows(train_rows))
    eval_set = Dataset.from_list(demonstration_rows(eval_rows)) if eval_rows else None
    args = TrlSFTConfig(
        **training_arguments(config, output_dir, eval_set is not None),
        completion_only_loss=config.completion_only_loss,
        packing=config.packing,
    )
    tokenizer = AutoTokenizer.from_pretrained(config.model_name_or_path)

    model, _ = policy_model(config)

    def build(callback):
        return SFTTrainer(
            model=model,
            args=args,
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
            callbacks=[callback],
        )

    return run_trainer(
        build, config, output_dir, "sft", eval_set is not None, progress, should_stop
    )


def main(argv: list[str] | None = None) -> dict:
    return run_main(train, SFTConfig, argv, description="Supervised fine-tuning (TRL).")


if __name__ == "__main__":
    main()

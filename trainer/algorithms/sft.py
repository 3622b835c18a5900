"""SFT: supervised fine-tuning on demonstrations (TRL's SFTTrainer).

Rows are ``{"prompt", "completion"}`` (loss on the completion only, by default), a
conversation ``{"messages": [...]}``, or plain ``{"text"}``. A chat-transcript prompt with a
text completion is turned into TRL's conversational prompt-completion format. RAFT uses this
module for its fine-tuning step.

    python -m trainer.algorithms.sft --config job.json
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.algorithms.common import ProgressCallback, StopCheck, run_main, set_seed
from trainer.algorithms.trl_bridge import (
    TrlTrainingConfig,
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


def demonstration_rows(rows: list[dict]) -> list[dict]:
    """Keep only the columns TRL reads, in the shape it expects."""
    out = []
    for index, row in enumerate(rows):
        if "messages" in row:
            out.append({"messages": row["messages"]})
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

    def build(callback):
        return SFTTrainer(
            model=config.model_name_or_path,
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

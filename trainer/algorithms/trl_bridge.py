"""Running a TRL trainer under our contract (progress callback, stop hook, resume, config file).

DPO and SFT are TRL's; this module holds what they share: the common config fields, the
``TrainingArguments`` that make them behave on a CPU-only box (no bf16, no activation
checkpointing by default, no tqdm or external loggers, every step logged, NaN losses not
filtered out of the logs), and the train / resume / save sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.algorithms.common import (
    ProgressCallback,
    StopCheck,
    TrainingError,
    checkpoint_dirs,
    compute_dtype,
    make_trainer_callback,
    resolve_device,
    save_config,
    split_rows,
)
from trainer.algorithms.lora import ScaleFields

DTYPE_HELP = (
    "auto (bf16 on a GPU that supports it, fp32 on CPU), fp32, bf16 or fp16 (GPU only, with "
    "loss scaling): mixed precision over float32 trained weights; with use_lora the frozen "
    "base is held in it."
)


@dataclass
class TrlTrainingConfig(ScaleFields):
    model_name_or_path: str = field(
        metadata={"help": "Policy to start from: a Hugging Face model id or a local path."},
    )
    learning_rate: float = field(default=1e-6, metadata={"help": "Peak learning rate (AdamW)."})
    num_epochs: float = field(
        default=1.0, metadata={"help": "Passes over the rows (ignored when max_steps > 0)."}
    )
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps to run; -1 derives them from num_epochs."}
    )
    batch_size: int = field(default=8, metadata={"help": "Rows per device per forward pass."})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Forward passes accumulated into one optimizer step."}
    )
    max_length: int = field(
        default=1024, metadata={"help": "Token limit of prompt + completion; longer is truncated."}
    )
    lr_scheduler_type: str = field(
        default="linear", metadata={"help": "transformers scheduler name: linear, cosine, ..."}
    )
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    val_fraction: float = field(
        default=0.0, metadata={"help": "Share of rows held out for evaluation when no val_rows."}
    )
    eval_steps: int = field(
        default=0,
        metadata={"help": "Evaluate every N steps (0: only at the end, if any val rows)."},
    )
    save_steps: int = field(
        default=100, metadata={"help": "Write a resumable checkpoint every N steps (0: never)."}
    )
    save_total_limit: int = field(default=1, metadata={"help": "Checkpoints kept in output_dir."})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "A checkpoint directory, or 'latest' for the newest one in output_dir "
            "(starts fresh if there is none)."
        },
    )
    device: str = field(
        default="auto",
        metadata={"help": "'auto' (GPU when present, through accelerate) or 'cpu'."},
    )
    dtype: str = field(default="auto", metadata={"help": DTYPE_HELP})
    seed: int = field(default=42, metadata={"help": "Seed for initialisation and shuffling."})


def precision_arguments(config) -> dict:
    """TrainingArguments' bf16 / fp16 / activation_checkpointing for a job's dtype and
    gradient_checkpointing; fp16 on CPU is refused (its loss scaler needs CUDA)."""
    import torch

    device = resolve_device(config.device)
    dtype = compute_dtype(config.dtype, device)
    if dtype == torch.float16 and not device.startswith("cuda"):
        raise TrainingError("dtype fp16 needs a CUDA GPU (loss scaling); use bf16 or fp32 on CPU.")
    return {
        "bf16": dtype == torch.bfloat16,
        "fp16": dtype == torch.float16,
        # transformers 5's name; TRL's own default (gradient_checkpointing=True) is overridden.
        "activation_checkpointing": config.gradient_checkpointing,
    }


def policy_model(config):
    """What a TRL trainer gets as ``model`` and ``peft_config``.

    Full fine-tuning from full weights: the path, as before (TRL loads it in float32). LoRA, a
    starting adapter or low-bit loading: the model, loaded here (lora.py): a fresh trainable
    adapter on the frozen base (in the job's dtype), a registered adapter trainable again (DPO
    then keeps a frozen copy of it as the reference), or an adapter merged in memory for full
    training. ``peft_config`` stays None: the adapter is already on the model."""
    import torch

    from trainer.algorithms.lora import check_scale, is_adapter, load_causal_lm

    device = resolve_device(config.device)
    check_scale(config, device)
    path = config.model_name_or_path
    if not (config.use_lora or config.load_in_bits or is_adapter(path)):
        return path, None
    frozen = compute_dtype(config.dtype, device) if config.use_lora else torch.float32
    if frozen == torch.float16 and not device.startswith("cuda"):
        frozen = torch.float32
    model = load_causal_lm(path, dtype=frozen, device="cpu", config=config, trainable=True)
    return model, None


def training_arguments(config: TrlTrainingConfig, output_dir: Path, has_eval: bool) -> dict:
    """Keyword arguments shared by DPOConfig and SFTConfig."""
    evaluate_during = has_eval and config.eval_steps > 0
    return {
        "output_dir": str(output_dir),
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.num_epochs,
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "max_length": config.max_length,
        "lr_scheduler_type": config.lr_scheduler_type,
        "warmup_steps": config.warmup_steps,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "eval_strategy": "steps" if evaluate_during else "no",
        "eval_steps": config.eval_steps if evaluate_during else None,
        "save_strategy": "steps" if config.save_steps > 0 else "no",
        "save_steps": config.save_steps if config.save_steps > 0 else 500,
        "save_total_limit": config.save_total_limit,
        "use_cpu": resolve_device(config.device) == "cpu",
        **precision_arguments(config),
        "seed": config.seed,
        "logging_steps": 1,
        # The default replaces NaN losses in the logs with an average, hiding a diverged run.
        "logging_nan_inf_filter": False,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def split_for_eval(config: TrlTrainingConfig, rows: list, val_rows: list | None):
    if val_rows is not None:
        return list(rows), list(val_rows)
    return split_rows(list(rows), config.val_fraction, config.seed)


def resume_path(config: TrlTrainingConfig, output_dir: Path) -> str | None:
    if config.resume_from_checkpoint == "latest":
        found = checkpoint_dirs(output_dir)
        return str(found[-1]) if found else None
    return config.resume_from_checkpoint


def run_trainer(
    build_trainer,
    config: TrlTrainingConfig,
    output_dir: str | Path,
    algorithm: str,
    has_eval: bool,
    progress: ProgressCallback | None,
    should_stop: StopCheck | None,
) -> dict:
    """Build the trainer with our callback, train (resuming if asked), save, return metrics."""
    import datasets
    from transformers.trainer_callback import PrinterCallback

    # Dataset-map bars and the Trainer's printed dicts would bury the job's log tail; progress
    # goes through the callback instead.
    datasets.disable_progress_bars()
    output_dir = Path(output_dir)
    bridge = make_trainer_callback(progress, should_stop)
    trainer = build_trainer(bridge)
    trainer.remove_callback(PrinterCallback)
    resume = resume_path(config, output_dir)
    start = _checkpoint_step(resume)
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = {"train_loss": result.training_loss, "step": trainer.state.global_step}
    metrics.update(start_step=start, stopped=bridge.stopped)
    if has_eval:
        metrics.update(trainer.evaluate())
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():  # under accelerate launch, one rank writes the files
        trainer.processing_class.save_pretrained(str(output_dir))
        save_config(config, output_dir, algorithm)
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | bool)}


def _checkpoint_step(path: str | None) -> int:
    if not path:
        return 0
    import json

    state = Path(path) / "trainer_state.json"
    return json.loads(state.read_text())["global_step"] if state.is_file() else 0

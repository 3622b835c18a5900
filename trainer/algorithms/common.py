"""What every algorithm shares: the progress/stop contract, errors, configs, checkpoints, CLI.

Contract of an algorithm module ``trainer.algorithms.<name>``::

    train(config, rows, output_dir, *, progress=None, should_stop=None) -> dict

* ``progress(step, total, metrics)`` is called after each optimizer step (and after each
  evaluation) with plain floats; ``step`` counts optimizer steps from 1.
* ``should_stop()`` is polled once per step; when it returns True the algorithm saves a
  checkpoint (so a later run with ``resume_from_checkpoint`` continues there), saves the model
  to ``output_dir`` and returns its metrics with ``"stopped": True``. Nothing is raised.
* A NaN/Inf loss raises :class:`NonFiniteLossError`.
* The config is written to ``output_dir/prefloop_config.json`` so each model says how it was
  made.

Nothing here (or anywhere under trainer/algorithms) may import Django.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

CONFIG_FILENAME = "prefloop_config.json"
TRAINING_STATE_FILENAME = "training_state.pt"
CHECKPOINT_PREFIX = "checkpoint-"

C = TypeVar("C")


class ProgressCallback(Protocol):
    def __call__(self, step: int, total: int, metrics: dict[str, float]) -> None: ...


StopCheck = Callable[[], bool]


class TrainingError(RuntimeError):
    """A training run failed for a reason the user should read (shown as the job's error)."""


class NonFiniteLossError(TrainingError):
    def __init__(self, value: float, step: int, name: str = "loss"):
        self.value, self.step, self.name = value, step, name
        super().__init__(
            f"The {name} became {value} at step {step}, so training was stopped. This usually "
            "means the learning rate is too high, the data holds an extreme or NaN value (e.g. a "
            "margin), or mixed precision overflowed. Lower the learning rate or check the rows, "
            "then resume from the last checkpoint."
        )


def check_finite(loss: Any, step: int, name: str = "loss") -> float:
    """Return ``loss`` as a float, raising :class:`NonFiniteLossError` on NaN or Inf."""
    value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
    if not math.isfinite(value):
        raise NonFiniteLossError(value, step, name)
    return value


def report(
    progress: ProgressCallback | None, step: int, total: int, metrics: dict, samples=None
) -> None:
    if progress is not None:
        numbers = {k: float(v) for k, v in metrics.items()}
        progress(step, total, numbers | ({"samples": samples} if samples else {}))


def stop_requested(should_stop: StopCheck | None) -> bool:
    return bool(should_stop is not None and should_stop())


# --- configs -------------------------------------------------------------------------------


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build a config dataclass, refusing unknown keys so a typo is not silently ignored."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"Unknown {cls.__name__} field(s): {', '.join(unknown)}. "
            f"Known fields: {', '.join(sorted(names))}."
        )
    return cls(**data)


def load_config(cls: type[C], path: str | Path) -> C:
    with open(path, encoding="utf-8") as handle:
        return config_from_dict(cls, json.load(handle))


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Any, output_dir: str | Path, algorithm: str) -> Path:
    path = Path(output_dir) / CONFIG_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"algorithm": algorithm, "config": config_to_dict(config)}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def config_help(cls: type) -> str:
    lines = [f"{cls.__name__} fields:"]
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        lines.append(f"  {f.name} = {default!r}\n      {f.metadata.get('help', '')}")
    return "\n".join(lines)


# --- rows ----------------------------------------------------------------------------------


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(rows: Iterable[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def split_rows(rows: list, val_fraction: float, seed: int) -> tuple[list, list]:
    """Deterministic train/val split; at least one row stays in train."""
    if val_fraction <= 0 or len(rows) < 2:
        return list(rows), []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_val = min(len(rows) - 1, max(1, round(len(rows) * val_fraction)))
    val = [rows[i] for i in order[:n_val]]
    train = [rows[i] for i in order[n_val:]]
    return train, val


def prompt_key(row: dict) -> str:
    """What identifies a row's prompt: its ``prompt_id`` when the row has one, else its text
    (a chat prompt as its JSON)."""
    if row.get("prompt_id") is not None:
        return f"id:{row['prompt_id']}"
    return "text:" + json.dumps(row.get("prompt"), sort_keys=True, ensure_ascii=False)


def split_rows_by_prompt(rows: list[dict], val_fraction: float, seed: int) -> tuple[list, list]:
    """Train/val split that keeps every row of one prompt on the same side, so validation
    measures prompts the model has not seen (rows of one prompt share most of their text)."""
    keys = list(dict.fromkeys(prompt_key(row) for row in rows))
    if val_fraction <= 0 or len(keys) < 2:
        return list(rows), []
    train_keys, val_keys = split_rows(keys, val_fraction, seed)
    held_out = set(val_keys)
    train = [row for row in rows if prompt_key(row) not in held_out]
    val = [row for row in rows if prompt_key(row) in held_out]
    return train, val


def batch_for_step(n_rows: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Row indices of step ``step`` (0-based): a fixed function of the step, so a
    resumed run sees exactly the batches the interrupted one would have."""
    per_epoch = math.ceil(n_rows / batch_size)
    epoch, index = divmod(step, per_epoch)
    order = list(range(n_rows))
    random.Random(seed + epoch).shuffle(order)
    return order[index * batch_size : (index + 1) * batch_size]


# --- torch helpers ---------------------------------------------------------------------------


def set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> str:
    """``"auto"`` picks the first GPU when there is one; anything else is passed through."""
    if name != "auto":
        return name
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


DTYPE_NAMES = {
    "auto": "auto",
    "fp32": "float32",
    "float32": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
}


def _dtype_name(name: str) -> str:
    if name not in DTYPE_NAMES:
        raise TrainingError(
            f"Unknown dtype {name!r}; use one of auto, fp32, bf16, fp16 (or float32, bfloat16, "
            "float16)."
        )
    return DTYPE_NAMES[name]


def resolve_dtype(name: str):
    """Weights dtype of a model that is only run, never trained (``auto``: float32)."""
    import torch

    name = _dtype_name(name)
    return torch.float32 if name == "auto" else getattr(torch, name)


def compute_dtype(name: str, device: str):
    """The precision forward passes run in: ``auto`` is bfloat16 on a GPU that supports it,
    float32 elsewhere; an explicit name is taken as given."""
    import torch

    name = _dtype_name(name)
    if name != "auto":
        return getattr(torch, name)
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def training_autocast_dtype(name: str, device: str, what: str):
    """Autocast dtype for a model whose weights are trained, or None for plain float32.

    Trainable weights always stay float32 (the master copy the optimizer updates: most bf16
    weights would not move at a small learning rate), and bfloat16 runs as autocast over them.
    float16 would need loss scaling, which this trainer does not do, so it is refused."""
    import torch

    dtype = compute_dtype(name, device)
    if dtype == torch.float16:
        raise TrainingError(
            f"{what} cannot train in float16: without loss scaling its gradients underflow. Use "
            "bf16 (float32 weights, bfloat16 compute) or fp32."
        )
    return None if dtype == torch.float32 else dtype


def autocast(device: str, dtype):
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op when dtype is None."""
    import contextlib

    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def disable_dropout(model) -> None:
    """Turn every dropout of ``model`` off, as TRL does for reward and RL training: the same
    input must give the same output in training and in scoring."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        # Attention modules (Llama, Qwen, ...) read a float rate, not an nn.Dropout.
        for name in ("attention_dropout", "dropout", "attn_dropout"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)
    for key, value in list(model.config.to_dict().items()):
        if "dropout" in key and isinstance(value, float):
            setattr(model.config, key, 0.0)


def tokenize_prompts(tokenizer, texts: list[str], chat: list[bool], max_length: int):
    """Tokenise a batch where some texts come from a chat template (which already holds its
    special tokens) and some are plain (which get the tokenizer's own, e.g. BOS); padded on
    the tokenizer's side. Returns tensors ``input_ids`` and ``attention_mask``."""
    encoded = [
        tokenizer(
            text,
            truncation=True,
            max_length=max_length,
            add_special_tokens=not is_chat,
        )["input_ids"]
        for text, is_chat in zip(texts, chat, strict=True)
    ]
    return tokenizer.pad({"input_ids": encoded}, padding=True, return_tensors="pt")


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Checkpoints under ``output_dir``, oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [
        p
        for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*")
        if p.is_dir() and p.name[len(CHECKPOINT_PREFIX) :].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def find_resume_checkpoint(output_dir: str | Path, resume: str | None) -> Path | None:
    """``None``: start fresh; ``"latest"``: newest checkpoint in output_dir, if any; or a path."""
    if not resume:
        return None
    if resume == "latest":
        found = checkpoint_dirs(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / TRAINING_STATE_FILENAME).is_file():
        raise TrainingError(f"Cannot resume from {path}: no {TRAINING_STATE_FILENAME} there.")
    return path


def save_training_state(
    checkpoint_dir: Path, step: int, optimizer, scheduler, extra: dict | None = None
) -> None:
    import torch

    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "torch_rng": torch.get_rng_state(),
        # Sampling on a GPU draws from the CUDA generators, not the CPU one.
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "extra": extra or {},
    }
    torch.save(state, checkpoint_dir / TRAINING_STATE_FILENAME)


def load_training_state(checkpoint_dir: Path) -> dict:
    import torch

    # Our own file, holding optimizer tensors and plain Python values.
    return torch.load(checkpoint_dir / TRAINING_STATE_FILENAME, weights_only=False)


def restore_rng_state(state: dict) -> None:
    """Put back the CPU and (where saved and present) CUDA random states of a checkpoint."""
    import torch

    torch.set_rng_state(state["torch_rng"])
    cuda = state.get("cuda_rng")
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])


def prune_checkpoints(output_dir: str | Path, keep: int) -> None:
    if keep <= 0:
        return
    for old in checkpoint_dirs(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# --- transformers.Trainer bridge -------------------------------------------------------------


def make_trainer_callback(progress: ProgressCallback | None, should_stop: StopCheck | None):
    """A ``transformers.TrainerCallback`` that forwards logs to ``progress`` and honours stops."""
    from transformers import TrainerCallback

    class _Bridge(TrainerCallback):
        stopped = False

        def on_log(self, args, state, control, logs=None, **kwargs):
            numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}
            for key in ("loss", "eval_loss"):
                if key in numbers:
                    check_finite(numbers[key], state.global_step, key)
            report(progress, state.global_step, state.max_steps, numbers)

        def on_step_end(self, args, state, control, **kwargs):
            if stop_requested(should_stop):
                self.stopped = True
                control.should_save = True
                control.should_training_stop = True
            return control

    return _Bridge()


# --- command line ----------------------------------------------------------------------------


def _print_progress(step: int, total: int, metrics: dict[str, float]) -> None:
    print(json.dumps({"step": step, "total": total, **metrics}), flush=True)


def _rows_from(payload: dict, key: str) -> list[dict] | None:
    if key in payload:
        return payload.pop(key)
    if f"{key}_file" in payload:
        return read_jsonl(payload.pop(f"{key}_file"))
    return None


def run_main(
    train: Callable[..., dict],
    config_cls: type,
    argv: list[str] | None = None,
    description: str = "",
) -> dict:
    """``python -m trainer.algorithms.<name> --config file.json``.

    The JSON holds the config's fields plus ``"output_dir"`` and ``"rows"`` (a list) or
    ``"rows_file"`` (a JSONL path); ``"val_rows"``/``"val_rows_file"`` where the algorithm
    takes a held-out set. Progress goes to stdout as JSON lines, the final metrics last.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="JSON file: config fields, output_dir, rows/rows_file")
    parser.add_argument("--help-config", action="store_true", help="describe the config fields")
    args = parser.parse_args(argv)
    if args.help_config or not args.config:
        print(config_help(config_cls))
        return {}
    with open(args.config, encoding="utf-8") as handle:
        payload = json.load(handle)
    rows = _rows_from(payload, "rows")
    if rows is None:
        sys.exit("The config JSON needs 'rows' or 'rows_file'.")
    val_rows = _rows_from(payload, "val_rows")
    output_dir = payload.pop("output_dir", None)
    if not output_dir:
        sys.exit("The config JSON needs 'output_dir'.")
    config = config_from_dict(config_cls, payload)
    kwargs = {"val_rows": val_rows} if val_rows is not None else {}
    metrics = train(config, rows, output_dir, progress=_print_progress, **kwargs)
    print(json.dumps({"final": metrics}), flush=True)
    return metrics

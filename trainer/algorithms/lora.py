"""LoRA adapters (PEFT), low-bit loading and the other knobs that let a real-size model train.

Every training kind's config takes :class:`ScaleFields` (LoRA rank, alpha, dropout, target
modules, 4/8-bit loading of the frozen weights, gradient checkpointing). With ``use_lora`` the
base weights stay frozen (loaded in the job's compute dtype) and only the adapter (and, for a
reward or value model, its score head) trains in float32; the job saves the adapter alone
(``adapter_config.json`` + ``adapter_model.safetensors``, PEFT's format), whose config names its
base model. Loading a path that holds an adapter (:func:`load_causal_lm`,
:func:`load_sequence_classifier`) loads its base and puts the adapter on it without merging, so
a registered adapter generates, scores and starts the next round as it is; merging into full
weights is :func:`merge_adapter`, an explicit step.

Plain Python: no Django.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from trainer.algorithms.common import TrainingError

ADAPTER_CONFIG = "adapter_config.json"

# Target modules per architecture (config.model_type): every linear layer of the attention and
# the MLP, as QLoRA found that adapting all of them matters more than the rank. Any other
# architecture gets PEFT's "all-linear" (every linear layer but the output head).
_LLAMA_LIKE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TARGET_MODULES = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "mixtral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "gemma3_text": _LLAMA_LIKE,
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "falcon": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}


@dataclass(kw_only=True)
class ScaleFields:
    """Config fields every training kind shares (keyword-only, listed after the kind's own)."""

    use_lora: bool = field(
        default=False,
        metadata={
            "help": "Train a LoRA adapter (PEFT) instead of all weights: the base stays frozen "
            "and the job saves only the adapter (plus a reward or value model's score head)."
        },
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(
        default=32, metadata={"help": "LoRA scaling alpha (the update is scaled by alpha / r)."}
    )
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Module names to adapt; empty: every attention and MLP projection of the "
            "architecture (q/k/v/o, gate/up/down for Llama, Mistral, Qwen, Gemma; c_attn, "
            "c_proj, c_fc for GPT-2; ...), else PEFT's all-linear."
        },
    )
    load_in_bits: int = field(
        default=0,
        metadata={
            "help": "Load the frozen base weights in 4 or 8 bits (QLoRA; needs use_lora, a CUDA "
            "GPU and the bitsandbytes package); 0: in dtype."
        },
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={
            "help": "Recompute activations in the backward pass: less memory, ~20-30% slower."
        },
    )


SCALE_FIELD_NAMES = (
    "use_lora", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "load_in_bits",
    "gradient_checkpointing",
)  # fmt: skip


def check_scale(config, device: str) -> None:
    """Refuse settings that cannot work, before any model is loaded."""
    bits = getattr(config, "load_in_bits", 0)
    if bits not in (0, 4, 8):
        raise TrainingError(f"load_in_bits must be 0, 4 or 8, not {bits}.")
    if getattr(config, "use_lora", False) and config.lora_r < 1:
        raise TrainingError("lora_r must be at least 1.")
    if bits:
        if not getattr(config, "use_lora", True):
            raise TrainingError(
                f"load_in_bits={bits} quantises the frozen weights, so it needs use_lora: a "
                "quantised model cannot be trained in full."
            )
        quantization_config(bits, device)  # raises with the reason when it cannot be done


def quantization_config(bits: int, device: str):
    """transformers' BitsAndBytesConfig for 4- or 8-bit loading, or TrainingError saying why
    not (no bitsandbytes, or no CUDA device)."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrainingError(
            f"load_in_bits={bits} needs the bitsandbytes package, which is not installed on "
            "this worker (pip install bitsandbytes, on a CUDA machine). Set load_in_bits to 0 "
            "to load the frozen weights in dtype instead."
        )
    if not device.startswith("cuda"):
        raise TrainingError(
            f"load_in_bits={bits} needs a CUDA GPU; this job runs on {device}. Set "
            "load_in_bits to 0."
        )
    import torch
    from transformers import BitsAndBytesConfig

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def target_modules(model_type: str, given: list[str] | None = None):
    if given:
        return list(given)
    return TARGET_MODULES.get(model_type, "all-linear")


def peft_config(config, model_type: str, task_type: str = "CAUSAL_LM", dropout: bool = True):
    """PEFT's LoraConfig for a job's fields; None without use_lora. ``task_type`` SEQ_CLS keeps
    the score head trainable and saved with the adapter. ``dropout`` False: for the loops that
    turn dropout off (reward, PPO), where a zero-rate dropout would still copy each adapted
    layer's input; PEFT then uses no dropout module at all."""
    if not getattr(config, "use_lora", False):
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout if dropout else 0.0,
        target_modules=target_modules(model_type, config.lora_target_modules),
        task_type=task_type,
    )


# --- adapters on disk ---------------------------------------------------------------------


def is_adapter(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding a PEFT adapter rather than full weights."""
    return (Path(str(path)) / ADAPTER_CONFIG).is_file()


def adapter_info(path: str | Path) -> dict:
    """The adapter's own config (``base_model_name_or_path``, ``r``, ``task_type``, ...)."""
    return json.loads((Path(str(path)) / ADAPTER_CONFIG).read_text(encoding="utf-8"))


def adapter_head_outputs(path: str | Path) -> int | None:
    """How many outputs the score head saved in the adapter at ``path`` has (None: no head)."""
    from safetensors import safe_open

    weights = Path(path) / "adapter_model.safetensors"
    if not weights.exists():
        return None
    with safe_open(str(weights), framework="np") as handle:
        for key in handle.keys():
            if "score" in key and key.endswith("weight") and "lora" not in key:
                return int(handle.get_slice(key).get_shape()[0])
    return None


def adapter_base(path: str | Path) -> str:
    base = adapter_info(path).get("base_model_name_or_path")
    if not base:
        raise TrainingError(f"The adapter at {path} does not name its base model.")
    return base


def upcast_trainable(model) -> None:
    """Trainable parameters in float32 (the optimizer's master copy), whatever the frozen
    weights' dtype: a bf16 score head would not move at a small learning rate."""
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def enable_checkpointing(model) -> None:
    """Gradient checkpointing (non-reentrant, so frozen inputs need no gradient)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False


def _load_kwargs(dtype, device: str, bits: int) -> dict:
    kwargs: dict = {"dtype": dtype}
    if bits:
        kwargs["quantization_config"] = quantization_config(bits, device)
        kwargs["device_map"] = {"": device}
    return kwargs


def _attach(base, path, *, trainable: bool, config, task_type: str, dropout: bool = True):
    """``base`` with the adapter at ``path`` (trainable or not), or with a fresh adapter when
    ``config`` asks for LoRA, or merged into full weights to train in full."""
    from peft import PeftModel, get_peft_model

    wants_lora = bool(config is not None and getattr(config, "use_lora", False))
    if path is not None:
        model = PeftModel.from_pretrained(base, str(path), is_trainable=trainable and wants_lora)
        if trainable and not wants_lora:
            # Full training from an adapter: its weights folded into the base, in memory only.
            return model.merge_and_unload()
        return model
    if trainable and wants_lora:
        settings = peft_config(config, base.config.model_type, task_type, dropout)
        model = get_peft_model(base, settings)
        return model
    return base


def _finish(model, *, trainable: bool, config, device: str, bits: int):
    if trainable and getattr(config, "use_lora", False):
        upcast_trainable(model)
    if trainable and getattr(config, "gradient_checkpointing", False):
        enable_checkpointing(model)
    return model if bits else model.to(device)


def load_causal_lm(
    path: str | Path,
    *,
    dtype,
    device: str = "cpu",
    config=None,
    trainable: bool = False,
    dropout: bool = True,
):
    """A causal LM from full weights or from an adapter directory (base + adapter, unmerged).

    ``trainable`` with a config whose ``use_lora`` is on: the adapter loaded trainable, or a
    fresh one; without ``use_lora``: full weights (an adapter merged in memory). ``dtype`` is
    the torch dtype of the weights (the frozen ones, under LoRA)."""
    from transformers import AutoModelForCausalLM

    bits = getattr(config, "load_in_bits", 0) if config is not None else 0
    adapter = path if is_adapter(path) else None
    source = adapter_base(path) if adapter else str(path)
    base = AutoModelForCausalLM.from_pretrained(source, **_load_kwargs(dtype, device, bits))
    if bits and trainable:
        from peft import prepare_model_for_kbit_training

        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    model = _attach(
        base, adapter, trainable=trainable, config=config, task_type="CAUSAL_LM", dropout=dropout
    )
    return _finish(model, trainable=trainable, config=config, device=device, bits=bits)


def load_sequence_classifier(
    path: str | Path,
    *,
    dtype,
    device: str = "cpu",
    config=None,
    trainable: bool = False,
    num_labels: int = 1,
):
    """``(model, loading info)`` of a sequence classifier with ``num_labels`` outputs (a reward
    model, an ensemble's heads, or a value model) from full weights or from an adapter (whose
    score head is saved with it)."""
    from transformers import AutoModelForSequenceClassification

    bits = getattr(config, "load_in_bits", 0) if config is not None else 0
    adapter = path if is_adapter(path) else None
    source = adapter_base(path) if adapter else str(path)
    base, info = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=num_labels, output_loading_info=True, **_load_kwargs(dtype, device, bits)
    )
    if adapter is not None:
        saved = adapter_info(adapter).get("modules_to_save") or []
        if any("score" in name or "classifier" in name for name in saved):
            # The head is in the adapter: the base's missing head is not missing.
            info = {
                **info,
                "missing_keys": [k for k in info.get("missing_keys", ()) if "score" not in k],
            }
    # Reward and value models always train with dropout off (reward.py, ppo.py).
    model = _attach(
        base, adapter, trainable=trainable, config=config, task_type="SEQ_CLS", dropout=False
    )
    return _finish(model, trainable=trainable, config=config, device=device, bits=bits), info


def merge_adapter(adapter_dir: str | Path, output_dir: str | Path) -> Path:
    """Fold an adapter into its base's weights and save full weights (and the tokenizer) to
    ``output_dir``; the adapter and the base are left as they were."""
    import torch
    from transformers import AutoTokenizer

    info = adapter_info(adapter_dir)
    output_dir = Path(output_dir)
    if info.get("task_type") == "SEQ_CLS":
        model, _ = load_sequence_classifier(adapter_dir, dtype=torch.float32)
    else:
        model = load_causal_lm(adapter_dir, dtype=torch.float32)
    merged = model.merge_and_unload()
    merged.save_pretrained(output_dir)
    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(output_dir)
    return output_dir


def trainable_count(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def main(argv: list[str] | None = None) -> None:
    """``python -m trainer.algorithms.lora merge ADAPTER_DIR OUTPUT_DIR``"""
    import argparse

    parser = argparse.ArgumentParser(description="Merge a LoRA adapter into full weights.")
    parser.add_argument("action", choices=["merge"])
    parser.add_argument("adapter_dir")
    parser.add_argument("output_dir")
    args = parser.parse_args(argv)
    print(json.dumps({"merged": str(merge_adapter(args.adapter_dir, args.output_dir))}))


if __name__ == "__main__":
    main()

"""Peak-memory estimate of a job before it runs: plain Python, no torch, no Django.

From the model's shape (config.json and the safetensors header: no weights are read), the job's
kind and config, it adds up what one device holds at the peak of a training step:

* **weights** of every model the kind keeps resident (PPO: policy, reference, value, reward;
  DPO: policy and reference; RLOO/GRPO: policy, reference when beta > 0, reward model; RAFT:
  the policy and the reward model; generate: the policy). Trained weights are float32 (the
  optimizer's master copy, as our loops and TRL keep them); frozen ones are in the job's
  dtype. With LoRA the reference is the policy with its adapter off (no second copy), the
  base is frozen in the dtype, and only the adapter (and a score head) trains.
* **gradients** (float32) and **AdamW state** (two float32 moments) of what trains;
* **activations** kept for the backward pass: per layer and token, the tensors autograd saves
  in a Llama-style block with SDPA attention (no attention-score matrix): about
  ``8·h + 3·kv + 4·i`` values (``kv`` the key/value width, ``i`` the MLP width; ``3·i`` for an
  ungated MLP), in the compute dtype (checked against the bytes autograd saves: within 5 % for
  the tiny and a ~100M Llama). With gradient checkpointing, each layer's input (``h`` a token)
  plus two layers' full sets while one layer is recomputed and differentiated. For models with
  an LM head, the float32 logits over the vocabulary, their log-softmax and its gradient
  (``3·V·4`` bytes a token), which dominate for small models with large vocabularies. The
  backward pass frees activations as it writes gradients, so the peak holds the larger of the
  two: activations count only beyond the trained parameters' gradients;
* **KV cache** while sampling (PPO, RAFT, RLOO, GRPO, generate);
* a fixed **runtime** overhead: CUDA context and allocator slack on a GPU, the framework's
  working buffers on CPU (fitted on the measurements in tests/trainer/algorithms/test_memory.py).

On CPU the estimate is of the live tensors: glibc's malloc keeps freed blocks of the sizes it
last saw, and a CPU process's peak RSS can be twice its live peak with the default settings.
Workers that train on CPU set ``MALLOC_MMAP_THRESHOLD_`` (trainer/job_child.py) so the RSS
follows the tensors.

It is an estimate for refusing jobs that cannot fit and for choosing settings, not an exact
figure: the measured peaks it was checked against are in docs/training.md.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1024**3
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1, "int4": 0.5}
DTYPE_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
# Fixed overhead a device pays besides tensors: CUDA context + allocator slack; on CPU the
# framework's working memory (fitted on the tiny and ~100M models, test_memory.py).
RUNTIME_BYTES = {"cuda": int(1.0 * GIB), "cpu": 48 * 1024**2}
ADAM_BYTES = 8  # two float32 moments a trained parameter
GRAD_BYTES = 4


@dataclass
class ModelShape:
    params: int
    hidden: int
    layers: int
    vocab: int
    intermediate: int
    heads: int
    kv_heads: int
    model_type: str = "llama"

    @property
    def head_dim(self) -> int:
        return self.hidden // max(self.heads, 1)

    def _adapted(self, targets: list[str] | None) -> list[tuple[int, int]]:
        """(in, out) features of the adapted projections of one layer (default: all)."""
        kv = self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        shapes = {
            "q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h),
        }  # fmt: skip
        return [shapes[t] for t in (targets or shapes) if t in shapes] or list(shapes.values())

    def lora_params(self, r: int, targets: list[str] | None = None) -> int:
        """Trainable parameters of a rank-r adapter on the default (all projections) targets."""
        return self.layers * sum(r * (a + b) for a, b in self._adapted(targets))

    def lora_io(self, targets: list[str] | None = None) -> int:
        """Input plus output features of one layer's adapted projections."""
        return sum(a + b for a, b in self._adapted(targets))


@dataclass
class Estimate:
    total_bytes: int
    parts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v / GIB:.2f}" for k, v in self.parts.items() if v)
        return f"{self.total_gib:.2f} GiB ({parts} GiB)"


# --- the model's shape from its files -------------------------------------------------------


def _safetensors_params(directory: Path) -> int | None:
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
    return total


def shape_from_config(config: dict, params: int | None = None) -> ModelShape:
    """A ModelShape from a transformers config dict; params counted from it when not given."""
    text = config.get("text_config") or config
    h = text.get("hidden_size") or text.get("n_embd") or text.get("d_model")
    layers = text.get("num_hidden_layers") or text.get("n_layer") or text.get("num_layers")
    vocab = text.get("vocab_size", 32000)
    heads = text.get("num_attention_heads") or text.get("n_head") or 1
    kv = text.get("num_key_value_heads") or heads
    inter = text.get("intermediate_size") or text.get("n_inner") or 4 * h
    if params is None:
        kv_dim = kv * (h // heads)
        per_layer = 2 * h * h + 2 * h * kv_dim + 3 * h * inter + 2 * h
        embeddings = vocab * h * (1 if text.get("tie_word_embeddings", False) else 2)
        params = layers * per_layer + embeddings + h
    return ModelShape(params, h, layers, vocab, inter, heads, kv, text.get("model_type", "llama"))


def model_shape(path: str | None) -> ModelShape | None:
    """The shape of a local model (an adapter's base for an adapter); None when the path is
    not a local directory with a config.json (a hub id: its files are not on this machine)."""
    if not path:
        return None
    directory = Path(path)
    adapter = directory / "adapter_config.json"
    if adapter.is_file():
        base = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path")
        return model_shape(base)
    config = directory / "config.json"
    if not config.is_file():
        return None
    data = json.loads(config.read_text(encoding="utf-8"))
    return shape_from_config(data, _safetensors_params(directory))


# --- the estimate ---------------------------------------------------------------------------


def _dtype(name: str, device: str) -> str:
    name = DTYPE_ALIASES.get(name, name)
    if name == "auto":
        return "bf16" if device == "cuda" else "fp32"
    return name if name in BYTES else "fp32"


GATED_MLP = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "olmo"}


def layer_values_per_token(shape: ModelShape) -> int:
    """Values one transformer block saves for the backward pass, per token: the input and
    output of both norms, q/k/v (and q/k again after rotary), the attention output, and the
    MLP's gate, up, activation and product (an ungated MLP: its up, activation and input)."""
    kv = shape.kv_heads * shape.head_dim
    mlp = 4 * shape.intermediate if shape.model_type in GATED_MLP else 3 * shape.intermediate
    return 8 * shape.hidden + 3 * kv + mlp


def activation_bytes(
    shape: ModelShape,
    sequences: int,
    length: int,
    dtype: str,
    checkpointing: bool,
    lm_head: bool = True,
) -> int:
    """What the backward pass keeps of one forward over ``sequences`` x ``length`` tokens
    (``lm_head`` False: a reward or value model, with a score head instead of vocabulary
    logits)."""
    tokens = sequences * length
    per_layer = layer_values_per_token(shape) * tokens * BYTES[dtype]
    if checkpointing:
        layers = shape.hidden * tokens * shape.layers * BYTES[dtype] + 2 * per_layer
    else:
        layers = per_layer * shape.layers
    logits = 3 * shape.vocab * 4 * tokens if lm_head else 0
    return int(layers + logits)


def kv_cache_bytes(shape: ModelShape, sequences: int, length: int, dtype: str) -> int:
    per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * BYTES[dtype]
    return int(per_token * sequences * length)


def _trained(shape: ModelShape, config: dict, dtype: str, score_head: bool = False) -> dict:
    """Weights, gradients and optimizer state of one trained model."""
    if config.get("use_lora"):
        trainable = shape.lora_params(config.get("lora_r", 16), config.get("lora_target_modules"))
        if score_head:
            trainable += shape.hidden
        bits = config.get("load_in_bits") or 0
        frozen = BYTES["int4" if bits == 4 else "int8" if bits == 8 else dtype]
        weights = shape.params * frozen + trainable * 4
    else:
        trainable = shape.params
        weights = shape.params * 4  # float32 master weights
    return {
        "weights": int(weights),
        "grads+adam": int(trainable * (GRAD_BYTES + ADAM_BYTES)),
        "grads": int(trainable * GRAD_BYTES),
    }


def _frozen(shape: ModelShape | None, dtype: str) -> int:
    return int(shape.params * BYTES[dtype]) if shape is not None else 0


def estimate_job(
    kind: str,
    config: dict,
    policy: ModelShape,
    reward: ModelShape | None = None,
    device: str = "cuda",
) -> Estimate:
    """Peak bytes of a job of ``kind`` with ``config`` (the job's JSON config) on one device
    of type ``device`` ("cuda" or "cpu")."""
    dtype = _dtype(config.get("dtype", "auto"), device)
    lora = bool(config.get("use_lora"))
    ckpt = bool(config.get("gradient_checkpointing"))
    parts: dict[str, int] = {}
    notes: list[str] = []

    def train_model(shape, sequences, length, head=False, name="policy"):
        # A score head (reward, value model) replaces the vocabulary logits.
        trained = _trained(shape, config, dtype, head)
        parts[f"{name} weights"] = trained["weights"]
        parts[f"{name} grads+adam"] = trained["grads+adam"]
        activations = activation_bytes(shape, sequences, length, dtype, ckpt, lm_head=not head)
        # Gradients take the place of the activations the backward pass frees.
        parts[f"{name} activations"] = max(activations - trained["grads"], 0)

    if kind == "reward":
        # A comparison is two sequences; a ranking of K is K (counted as 2: the common case).
        train_model(policy, 2 * config.get("batch_size", 8), config.get("max_length", 512), True)
    elif kind in ("dpo", "sft"):
        seqs = config.get("batch_size", 8) * (2 if kind == "dpo" else 1)
        train_model(policy, seqs, config.get("max_length", 1024))
        if kind == "dpo" and not lora:
            ref = reward if config.get("ref_model_name_or_path") and reward else policy
            parts["reference weights"] = int(ref.params * 4)  # TRL loads it in float32
    elif kind in ("rloo", "grpo"):
        length = config.get("max_completion_length", 128) + 256  # prompt: TRL's typical cut
        train_model(policy, config.get("batch_size", 8), length)
        beta = config.get("beta", 0.05 if kind == "rloo" else 0.0)
        if beta and not lora:
            parts["reference weights"] = _frozen(policy, "fp32")
        parts["reward weights"] = _frozen(reward or policy, "fp32")
        parts["kv cache"] = kv_cache_bytes(policy, config.get("batch_size", 8), length, dtype)
    elif kind == "ppo":
        length = config.get("max_prompt_length", 512) + config.get("max_new_tokens", 64)
        mini = config.get("mini_batch_size", 4) // max(
            config.get("gradient_accumulation_steps", 1), 1
        )
        train_model(policy, mini, length)
        value_shape = reward or policy
        train_model(value_shape, mini, length, True, name="value")
        if not lora or config.get("ref_model_path"):
            parts["reference weights"] = _frozen(policy, dtype)
        parts["reward weights"] = _frozen(reward or policy, dtype)
        parts["kv cache"] = kv_cache_bytes(policy, config.get("batch_size", 16), length, dtype)
    elif kind == "raft":
        train_model(policy, config.get("sft_batch_size", 8), config.get("max_length", 512))
        parts["reward weights"] = _frozen(reward or policy, dtype)
        notes.append("RAFT samples and fine-tunes one after the other: the larger phase counts.")
    elif kind == "generate":
        bits = config.get("load_in_bits") or 0
        wdtype = "int4" if bits == 4 else "int8" if bits == 8 else dtype
        parts["weights"] = int(policy.params * BYTES[wdtype])
        length = config.get("max_prompt_length", 512) + config.get("max_new_tokens", 128)
        parts["kv cache"] = kv_cache_bytes(policy, config.get("batch_size", 16), length, dtype)
        parts["logits"] = 4 * policy.vocab * config.get("batch_size", 16) * 2
    else:
        raise ValueError(f"No memory model for kind {kind!r}.")
    parts["runtime"] = RUNTIME_BYTES["cuda" if device == "cuda" else "cpu"]
    return Estimate(int(sum(parts.values())), parts, notes)


def advice(kind: str, config: dict) -> list[str]:
    """What to change, cheapest first, for a job that does not fit."""
    tips = []
    if not config.get("use_lora"):
        tips.append("set use_lora (trains an adapter; no optimizer state for the base)")
    if config.get("dtype", "auto") in ("fp32", "float32"):
        tips.append("set dtype to bf16 or auto")
    if not config.get("gradient_checkpointing") and kind != "generate":
        tips.append("set gradient_checkpointing")
    size = "mini_batch_size" if kind == "ppo" else "batch_size"
    tips.append(f"lower {size} (and raise gradient_accumulation_steps to keep the batch)")
    if config.get("use_lora") and not config.get("load_in_bits"):
        tips.append("load_in_bits 4 on a worker with bitsandbytes (QLoRA)")
    tips.append("or send it to a queue whose workers have more memory")
    return tips


# --- what fits on one GPU (docs/training.md's table) ----------------------------------------

GPU_SIZES_GB = (24, 48, 80)
COMMON_MODELS = {
    "0.5B (Qwen2.5-0.5B)": {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24,
        "intermediate_size": 4864, "num_attention_heads": 14, "num_key_value_heads": 2,
        "vocab_size": 151936, "tie_word_embeddings": True},
    "1.5B (Qwen2.5-1.5B)": {"model_type": "qwen2", "hidden_size": 1536, "num_hidden_layers": 28,
        "intermediate_size": 8960, "num_attention_heads": 12, "num_key_value_heads": 2,
        "vocab_size": 151936, "tie_word_embeddings": True},
    "3B (Llama-3.2-3B)": {"model_type": "llama", "hidden_size": 3072, "num_hidden_layers": 28,
        "intermediate_size": 8192, "num_attention_heads": 24, "num_key_value_heads": 8,
        "vocab_size": 128256, "tie_word_embeddings": True},
    "8B (Llama-3-8B)": {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
        "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
        "vocab_size": 128256, "tie_word_embeddings": False},
    "14B (Qwen2.5-14B)": {"model_type": "qwen2", "hidden_size": 5120, "num_hidden_layers": 48,
        "intermediate_size": 13824, "num_attention_heads": 40, "num_key_value_heads": 8,
        "vocab_size": 152064, "tie_word_embeddings": False},
}  # fmt: skip
COMMON_JOBS = {
    "reward": {"batch_size": 8, "max_length": 512},
    "dpo": {"batch_size": 4, "max_length": 1024},
    "ppo": {"batch_size": 16, "mini_batch_size": 4, "max_prompt_length": 512,
            "max_new_tokens": 256},
}  # fmt: skip
COMMON_MODES = {
    "full fp32": {"dtype": "fp32"},
    "full bf16": {"dtype": "bf16"},
    "LoRA bf16 + ckpt": {"use_lora": True, "dtype": "bf16", "gradient_checkpointing": True},
    "QLoRA 4-bit + ckpt": {"use_lora": True, "load_in_bits": 4, "dtype": "bf16",
                           "gradient_checkpointing": True},
}  # fmt: skip


def fits_table() -> str:
    """Markdown: the estimate of each common model x kind x mode on one GPU, and whether it
    fits in 24 / 48 / 80 GB (decimal gigabytes, as cards are sold)."""
    sizes = " | ".join(f"{gb} GB" for gb in GPU_SIZES_GB)
    lines = [
        f"| model | kind | mode | estimate GiB | {sizes} |",
        "| --- | --- | --- | ---: |" + " :---: |" * len(GPU_SIZES_GB),
    ]
    for name, config in COMMON_MODELS.items():
        shape = shape_from_config(config)
        for kind, job in COMMON_JOBS.items():
            for mode, settings in COMMON_MODES.items():
                total = estimate_job(kind, {**job, **settings}, shape, device="cuda").total_bytes
                fits = " | ".join("yes" if total <= gb * 1e9 else "no" for gb in GPU_SIZES_GB)
                lines.append(
                    f"| {name} ({shape.params / 1e9:.2f}B) | {kind} | {mode} | "
                    f"{total / GIB:.1f} | {fits} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Peak-memory estimates of training jobs.")
    parser.add_argument(
        "--table", action="store_true", help="what fits on one GPU (docs/training.md)"
    )
    args = parser.parse_args(argv)
    if args.table:
        print(fits_table())
    else:
        parser.print_help()


if __name__ == "__main__":
    main()

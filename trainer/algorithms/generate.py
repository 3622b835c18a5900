"""Sample completions from a policy: batched ``generate`` with left padding.

Input rows hold a ``"prompt"`` (plain text, or a chat transcript rendered with the tokenizer's
chat template and a generation prompt) and any other keys, which are copied to the output
rows (so a ``prompt_id`` comes back with its completions). Each output row adds
``"completion"`` (decoded without special tokens), ``"sample_index"`` (0..n-1 per prompt),
``"num_tokens"`` and ``"finished"`` (whether the policy ended the response itself rather than
hitting max_new_tokens).

With ``strategies`` (prompt strategy names, docs/prompt-optimisation.md) each row is sampled
under every strategy: the rows carry the templates (trainer/algorithms/strategy_prompts.py), the
prompt is rendered around the query, and each output row adds ``"strategy"`` and ``"query"``
(the prompt as given; ``"prompt"`` is then the rendered one).

    python -m trainer.algorithms.generate --config job.json   # writes completions.jsonl

PPO reuses :func:`sample_tokens`; RAFT uses :func:`generate_completions`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from trainer.algorithms.common import (
    ProgressCallback,
    StopCheck,
    compute_dtype,
    report,
    resolve_device,
    resolve_dtype,
    run_main,
    save_config,
    set_seed,
    stop_requested,
    write_jsonl,
)
from trainer.algorithms.samples import SampleLog
from trainer.algorithms.strategy_prompts import check_names, expand_rows

COMPLETIONS_FILENAME = "completions.jsonl"


@dataclass
class GenerateConfig:
    model_name_or_path: str = field(
        metadata={"help": "Policy to sample from: a Hugging Face model id or a local path."}
    )
    num_samples: int = field(default=1, metadata={"help": "Completions per prompt."})
    max_new_tokens: int = field(default=128, metadata={"help": "Length limit of a completion."})
    temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature; 0 means greedy decoding."}
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (1: off)."})
    top_k: int = field(default=0, metadata={"help": "Sample among the k likeliest (0: off)."})
    batch_size: int = field(
        default=16, metadata={"help": "Sequences per generate call (prompts x samples)."}
    )
    max_prompt_length: int = field(
        default=512, metadata={"help": "Prompt token limit; longer prompts lose their start."}
    )
    device: str = field(default="auto", metadata={"help": "'auto', 'cpu', 'cuda:0', ..."})
    dtype: str = field(
        default="auto",
        metadata={
            "help": "auto (bf16 on a GPU that supports it, fp32 on CPU), fp32, bf16 or fp16."
        },
    )
    engine: str = field(
        default="auto",
        metadata={
            "help": "auto: vLLM when it is installed and a GPU is present, else transformers' "
            "generate (noted in the job log); vllm: the same, but say so louder when it falls "
            "back; generate: always transformers."
        },
    )
    load_in_bits: int = field(
        default=0,
        metadata={"help": "Load the weights in 4 or 8 bits (bitsandbytes, CUDA only); 0: off."},
    )
    seed: int = field(default=42, metadata={"help": "Sampling seed."})
    use_model_generation_config: bool = field(
        default=False,
        metadata={
            "help": "Also apply the checkpoint's generation_config.json (repetition_penalty, "
            "no_repeat_ngram_size, min_p, ...) under the settings above. Off: samples come from "
            "the model's own distribution, as RL rollouts always do."
        },
    )
    strategies: list = field(
        default_factory=list,
        metadata={
            "help": 'Prompt strategies (their names, e.g. ["plain", "step_by_step"]): sample '
            "every prompt under each, the strategy's system prompt and instruction around the "
            "query. Empty: the prompt as it is."
        },
    )
    compare_strategies: bool = field(
        default=False,
        metadata={
            "help": "With two or more strategies: once the job is done, one pairwise task per "
            "prompt and pair of strategies (their first samples)."
        },
    )

    def __post_init__(self):
        check_names(self.strategies)
        if self.compare_strategies and len(self.strategies) < 2:
            raise ValueError("compare_strategies needs two or more strategies to compare.")


def load_tokenizer(path: str | Path):
    """The policy's tokenizer set up for batched generation (left padding, a pad token)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Generation appends on the right, so prompts must end at the same position.
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    return tokenizer


def load_policy(path: str | Path, *, device: str = "cpu", dtype: str = "float32", config=None):
    """``(model, tokenizer)`` ready for batched generation. ``path`` may hold full weights or a
    LoRA adapter, which is put on its base unmerged (lora.py)."""
    from trainer.algorithms.lora import load_causal_lm

    tokenizer = load_tokenizer(path)
    model = load_causal_lm(path, dtype=resolve_dtype(dtype), device=device, config=config)
    return model, tokenizer


def prompt_text(tokenizer, prompt: str | list[dict]) -> str:
    if isinstance(prompt, list):
        return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return prompt


def stop_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a response: the tokenizer's eos and the generation config's."""
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def sample_tokens(model, tokenizer, prompts: list, settings: GenerateConfig):
    """Generate one response per prompt; returns ``(prompt_ids, prompt_mask, response_ids)``.

    Responses are right-padded with the pad token after the first stop token."""
    import torch

    from trainer.algorithms.common import tokenize_prompts

    texts = [prompt_text(tokenizer, p) for p in prompts]
    chat = [isinstance(p, list) for p in prompts]
    batch = tokenize_prompts(tokenizer, texts, chat, settings.max_prompt_length)
    batch = {k: v.to(model.device) for k, v in batch.items()}
    config = sampling_config(model, tokenizer, settings)
    with torch.no_grad():
        if settings.use_model_generation_config:
            # The checkpoint's settings fill in whatever these do not set.
            keys = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k")
            ids = {"eos_token_id": config.eos_token_id, "pad_token_id": config.pad_token_id}
            out = model.generate(**batch, **{k: getattr(config, k) for k in keys}, **ids)
        else:
            with only_generation_config(model, config):
                out = model.generate(**batch, generation_config=config)
    response = out[:, batch["input_ids"].shape[1] :]
    return batch["input_ids"], batch["attention_mask"], mask_after_stop(response, model, tokenizer)


def sampling_config(model, tokenizer, settings: GenerateConfig):
    """The generation settings of a sample: ours, nothing else. transformers fills every field
    left unset from the checkpoint's generation_config.json, so a repetition_penalty or
    no_repeat_ngram_size shipped with an instruct model would change the distribution sampled
    from; RL then computes ratios and KL against a different one (TRL and the
    lm-human-preferences reimplementations build a clean GenerationConfig for the same reason)."""
    from transformers import GenerationConfig

    greedy = settings.temperature <= 0
    return GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=not greedy,
        temperature=1.0 if greedy else settings.temperature,
        top_p=1.0 if greedy else settings.top_p,
        top_k=0 if greedy else settings.top_k,
        eos_token_id=stop_token_ids(model, tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )


@contextmanager
def only_generation_config(model, config):
    """Hide the checkpoint's generation config while ``generate`` merges defaults into ours."""
    saved = model.generation_config
    model.generation_config = config
    try:
        yield
    finally:
        model.generation_config = saved


def mask_after_stop(response, model, tokenizer):
    """Replace everything after the first stop token with padding."""
    import torch

    stops = torch.tensor(stop_token_ids(model, tokenizer), device=response.device)
    is_stop = torch.isin(response, stops)
    after = (is_stop.cumsum(dim=1) - is_stop.long()) > 0
    return response.masked_fill(after, tokenizer.pad_token_id)


def generate_completions(
    model,
    tokenizer,
    rows: list[dict],
    settings: GenerateConfig,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> list[dict]:
    """``settings.num_samples`` completions for each row's prompt, as rows."""
    import torch

    model.eval()
    jobs = [(row, k) for row in rows for k in range(settings.num_samples)]
    stops = torch.tensor(stop_token_ids(model, tokenizer))
    out: list[dict] = []
    total = -(-len(jobs) // settings.batch_size)
    samples = SampleLog(progress, total)
    for step, start in enumerate(range(0, len(jobs), settings.batch_size), start=1):
        chunk = jobs[start : start + settings.batch_size]
        _, _, response = sample_tokens(
            model, tokenizer, [row["prompt"] for row, _ in chunk], settings
        )
        response = response.cpu()
        finished = torch.isin(response, stops).any(dim=1)
        lengths = (response != tokenizer.pad_token_id).sum(dim=1)
        texts = tokenizer.batch_decode(response, skip_special_tokens=True)
        for i, (row, k) in enumerate(chunk):
            out.append(
                {
                    **row,
                    "completion": texts[i],
                    "sample_index": k,
                    "num_tokens": int(lengths[i]),
                    "finished": bool(finished[i]),
                }
            )
        samples.add(step, [row["prompt"] for row, _ in chunk], texts)
        report(progress, step, total, {"completions": len(out)}, samples=samples.pop())
        if stop_requested(should_stop):
            break
    return out


def run(
    config: GenerateConfig,
    rows: list[dict],
    output_dir: str | Path,
    *,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Sample completions for every row and write them to ``output_dir/completions.jsonl``."""
    from trainer.algorithms import fast_generation

    set_seed(config.seed)
    device = resolve_device(config.device)
    if config.strategies:
        rows = expand_rows(rows, config.strategies)
    dtype = str(compute_dtype(config.dtype, device)).removeprefix("torch.")
    if config.load_in_bits:
        from trainer.algorithms.lora import quantization_config

        quantization_config(config.load_in_bits, device)  # refuses with the reason
    engine = fast_generation.choose_engine(config.engine, device)
    if engine == "vllm":
        completions = fast_generation.generate_vllm(config, rows, dtype, progress, should_stop)
    else:
        model, tokenizer = load_policy(
            config.model_name_or_path, device=device, dtype=dtype, config=config
        )
        completions = generate_completions(model, tokenizer, rows, config, progress, should_stop)
    write_jsonl(completions, Path(output_dir) / COMPLETIONS_FILENAME)
    save_config(config, output_dir, "generate")
    n = max(len(completions), 1)
    return {
        "completions": len(completions),
        "mean_tokens": sum(c["num_tokens"] for c in completions) / n,
        "finished_fraction": sum(c["finished"] for c in completions) / n,
        "used_vllm": engine == "vllm",
        "stopped": len(completions) < len(rows) * config.num_samples,
    }


# The job runner calls ``module.train`` for every kind; for generation that is a sampling run.
train = run


def main(argv: list[str] | None = None) -> dict:
    return run_main(run, GenerateConfig, argv, description="Sample completions from a policy.")


if __name__ == "__main__":
    main()

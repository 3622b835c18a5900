"""Generation through vLLM, where it is installed and a GPU is present (optional).

vLLM is not a dependency: it needs CUDA and pins its own torch. :func:`choose_engine` says
which engine a generate job uses and prints why it fell back to transformers' ``generate``
(a plain line, so it lands in the job log). :func:`generate_vllm` takes the same settings
(samples per prompt, temperature, top-p, top-k, length limits, seed) and returns rows in the
same shape as :func:`trainer.algorithms.generate.generate_completions`; a LoRA adapter is
served through vLLM's LoRA support, on its base, unmerged.

RAFT's sampling uses it through a child process (raft.sample_in_child).

This path has not been run here: the build machines have no GPU (docs/training.md).
"""

from __future__ import annotations

import importlib.util

from trainer.algorithms.common import ProgressCallback, StopCheck, report

ENGINES = ("auto", "vllm", "generate")


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def choose_engine(requested: str, device: str) -> str:
    """``"vllm"`` or ``"generate"``; a fall-back is printed for the job log."""
    if requested not in ENGINES:
        from trainer.algorithms.common import TrainingError

        raise TrainingError(f"engine must be one of {', '.join(ENGINES)}, not {requested!r}.")
    if requested == "generate":
        return "generate"
    why = None
    if not vllm_installed():
        why = "vLLM is not installed on this worker"
    elif not device.startswith("cuda"):
        why = f"vLLM needs a CUDA GPU and this job runs on {device}"
    if why is None:
        return "vllm"
    loud = "WARNING: " if requested == "vllm" else ""
    print(f"{loud}Generating with transformers' generate: {why}.", flush=True)
    return "generate"


def generate_vllm(
    config,
    rows: list[dict],
    dtype: str,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> list[dict]:
    """``config.num_samples`` completions per row through vLLM (one batched call per chunk of
    ``batch_size`` prompts, so a stop request is honoured between chunks)."""
    from vllm import LLM, SamplingParams

    from trainer.algorithms.generate import load_tokenizer, prompt_text
    from trainer.algorithms.lora import adapter_base, adapter_info, is_adapter

    path = config.model_name_or_path
    adapter = is_adapter(path)
    tokenizer = load_tokenizer(path)
    llm_kwargs = {"model": adapter_base(path) if adapter else str(path), "dtype": dtype}
    lora_request = None
    if adapter:
        from vllm.lora.request import LoRARequest

        llm_kwargs.update(enable_lora=True, max_lora_rank=max(8, adapter_info(path)["r"]))
        lora_request = LoRARequest("policy", 1, str(path))
    llm = LLM(seed=config.seed, **llm_kwargs)
    greedy = config.temperature <= 0
    params = SamplingParams(
        n=config.num_samples,
        temperature=0.0 if greedy else config.temperature,
        top_p=1.0 if greedy else config.top_p,
        top_k=-1 if greedy or config.top_k <= 0 else config.top_k,
        max_tokens=config.max_new_tokens,
        seed=config.seed,
    )
    out: list[dict] = []
    per_call = max(1, config.batch_size // max(config.num_samples, 1))
    total = -(-len(rows) // per_call)
    for step, start in enumerate(range(0, len(rows), per_call), start=1):
        chunk = rows[start : start + per_call]
        prompts = []
        for row in chunk:
            text = prompt_text(tokenizer, row["prompt"])
            ids = tokenizer(text, add_special_tokens=not isinstance(row["prompt"], list))
            # Left truncation, as generate.py does: the end of the prompt is what is answered.
            prompts.append({"prompt_token_ids": ids["input_ids"][-config.max_prompt_length :]})
        results = llm.generate(prompts, params, lora_request=lora_request, use_tqdm=False)
        for row, result in zip(chunk, results, strict=True):
            for k, sample in enumerate(result.outputs):
                out.append(
                    {
                        **row,
                        "completion": sample.text,
                        "sample_index": k,
                        "num_tokens": len(sample.token_ids),
                        "finished": sample.finish_reason == "stop",
                    }
                )
        report(progress, step, total, {"completions": len(out)})
        if should_stop is not None and should_stop():
            break
    return out

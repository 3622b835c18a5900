"""An export goes straight into `datasets` and TRL: download over HTTP, load the file with
`load_dataset("json")`, train a few steps of RewardTrainer and DPOTrainer on a tiny Llama
built here (no download), and check the weights moved."""

import copy
import os

import pytest

from annotator.models import Kind
from tests.annotator.exportkit import labelers, pick, prompt_for, task_over

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytestmark = pytest.mark.slow

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SUBJECTS = ["the cat", "a dog", "my friend", "the robot", "a bird", "the teacher"]
OBJECTS = ["a red ball", "the green tree", "a good book", "the blue river"]


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [f"{s} sees {o}. please say more about {o}." for s in SUBJECTS for o in OBJECTS]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=[PAD, BOS, EOS, "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, bos_token=BOS, eos_token=EOS
    )
    fast.chat_template = CHATML
    return fast


def tiny_config(tokenizer, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **extra,
    )


def snapshot(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(model, before: dict) -> bool:
    import torch

    return any(not torch.equal(p.detach(), before[name]) for name, p in model.named_parameters())


def common_args(tmp_path, name: str) -> dict:
    return {
        "output_dir": str(tmp_path / name),
        "max_steps": 3,
        "per_device_train_batch_size": 4,
        "learning_rate": 5e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "activation_checkpointing": False,  # transformers 5 name; TRL defaults it on
        "disable_tqdm": True,
        "max_length": 128,
        "seed": 0,
    }


@pytest.fixture
def labeled(project):
    """Twelve answered comparisons, half with chat prompts: the chosen answer says please."""
    (labeler,) = labelers(1)
    for i in range(12):
        s, o = SUBJECTS[i % 6], OBJECTS[i % 4]
        if i % 2:
            prompt = prompt_for(project, messages=[{"role": "user", "content": f"tell me of {o}"}])
        else:
            prompt = prompt_for(project, f"tell me of {o}:")
        texts = [f" {s} sees {o}.", f" please say more about {o}."]
        task, (_, polite) = task_over(prompt, texts, kind=Kind.PAIRWISE)
        pick(task, labeler, polite)
    return project


def download(client, project, tmp_path, schema: str):
    from datasets import load_dataset

    response = client.get(f"/api/v1/projects/{project.id}/export/", {"schema": schema})
    assert response.status_code == 200
    path = tmp_path / f"{schema}.jsonl"
    path.write_bytes(b"".join(response.streaming_content))
    return load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )


def test_it_trains_trl_reward_and_dpo_on_an_http_export(labeled, alice, api_as, tmp_path):
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification, set_seed
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    set_seed(0)
    client = api_as(alice)
    tokenizer = tiny_tokenizer()
    standard = download(client, labeled, tmp_path, "preference")
    assert len(standard) == 12 and standard[0]["chosen"].startswith(" please")
    assert {"prompt", "chosen", "rejected", "margin", "labelers"} <= set(standard.column_names)

    reward_model = LlamaForSequenceClassification(tiny_config(tokenizer, num_labels=1))
    before = snapshot(reward_model)
    trainer = RewardTrainer(
        model=reward_model,
        args=RewardConfig(**common_args(tmp_path, "reward")),
        train_dataset=standard,
        processing_class=tokenizer,
    )
    trainer.train()
    assert [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert changed(trainer.model, before)

    for schema in ["preference", "preference-conversational"]:
        dataset = (
            standard if schema == "preference" else download(client, labeled, tmp_path, schema)
        )
        policy = LlamaForCausalLM(tiny_config(tokenizer))
        before = snapshot(policy)
        trainer = DPOTrainer(
            model=policy,
            ref_model=copy.deepcopy(policy),  # built here: there is no hub id to reload it from
            args=DPOConfig(**common_args(tmp_path, schema)),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        trainer.train()
        assert [log["loss"] for log in trainer.state.log_history if "loss" in log], schema
        assert changed(trainer.model, before), schema

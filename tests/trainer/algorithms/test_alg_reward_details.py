"""Reward-model details that decide whether its scores can be trusted on real checkpoints."""

import json
import math
import shutil

import pytest
import torch

from tests.trainer.algorithms.helpers import marker_rows, weights
from trainer.algorithms import reward
from trainer.algorithms.common import TrainingError
from trainer.algorithms.reward import RewardConfig, train
from trainer.algorithms.reward_data import Group, rows_to_groups
from trainer.algorithms.reward_scoring import RewardScorer


def config_for(model_dir, **overrides) -> RewardConfig:
    settings = {
        "model_name_or_path": model_dir,
        "learning_rate": 1e-3,
        "max_steps": 2,
        "batch_size": 4,
        "save_steps": 0,
        "val_fraction": 0.0,
        "device": "cpu",
        "seed": 0,
    }
    return RewardConfig(**{**settings, **overrides})


def test_it_holds_out_whole_prompts_for_validation(tiny_model_dir, tmp_path, monkeypatch):
    rows = [dict(row, prompt_id=i % 5) for i, row in enumerate(marker_rows(30, chat=False))]
    for row in rows:
        row["prompt"] = f"prompt {row['prompt_id']}:"
    seen = []
    real = reward.rows_to_groups
    monkeypatch.setattr(reward, "rows_to_groups", lambda r: seen.append(r) or real(r))

    train(config_for(tiny_model_dir, val_fraction=0.4, max_steps=1), rows, tmp_path)

    trained, held_out = ({row["prompt_id"] for row in part} for part in seen)
    assert held_out and trained and not trained & held_out
    assert sum(map(len, seen)) == len(rows)


def test_comparisons_of_one_ranking_train_as_one_group():
    ranking = ["best", "middle", "worst"]
    rows = [
        {"prompt": "p", "chosen": ranking[i], "rejected": ranking[j], "group": "t7", "margin": 0}
        for i in range(3)
        for j in range(i + 1, 3)
    ]
    rows.append({"prompt": "p", "chosen": "x", "rejected": "y"})  # no group: one of its own
    rows.append({"prompt": "q", "chosen": "best", "rejected": "worst", "group": "t7"})

    groups = rows_to_groups(rows)

    assert len(groups) == 3
    assert groups[0].completions == ranking and groups[0].best == 0
    assert sorted(groups[0].pairs) == [(0, 1, 0.0), (0, 2, 0.0), (1, 2, 0.0)]
    assert groups[1].completions == ["x", "y"] and groups[2].prompt == "q"


def test_the_ranking_loss_weights_each_group_equally_and_subtracts_the_margin():
    groups = [
        Group("p", ["a", "b", "c"], [(0, 1, 0.0), (0, 2, 0.0), (1, 2, 0.0)]),
        Group("q", ["d", "e"], [(0, 1, 1.5)]),
    ]
    rewards = torch.tensor([2.0, 1.0, 0.5, 3.0, 0.5])

    loss, correct, pairs = reward.ranking_loss(rewards, groups, [0, 3])

    def nll(x):
        return -math.log(1 / (1 + math.exp(-x)))

    first = (nll(1.0) + nll(1.5) + nll(0.5)) / 3
    second = nll(2.5 - 1.5)  # a margin asks for a larger gap: diff - margin
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-5)
    assert (correct, pairs) == (4, 4)


def test_it_keeps_float32_master_weights_when_asked_for_bf16(tiny_model_dir, tmp_path):
    rows = marker_rows(8, chat=False)

    train(config_for(tiny_model_dir, dtype="bf16"), rows, tmp_path)

    trained = weights(tmp_path)
    assert {t.dtype for t in trained.values()} == {torch.float32}
    before = weights(tiny_model_dir)
    assert any(not torch.equal(before[k], trained[k]) for k in before if k in trained)


def test_it_refuses_to_train_in_fp16(tiny_model_dir, tmp_path):
    with pytest.raises(TrainingError, match="float16"):
        train(config_for(tiny_model_dir, dtype="fp16"), marker_rows(8, chat=False), tmp_path)


def test_it_trains_without_dropout(tiny_model_dir, tmp_path, progress):
    model_dir = tmp_path / "dropout-model"
    shutil.copytree(tiny_model_dir, model_dir)
    config_file = model_dir / "config.json"
    config_file.write_text(
        json.dumps({**json.loads(config_file.read_text()), "attention_dropout": 0.5})
    )
    rows = marker_rows(4, chat=False)
    # No update (lr 0), so the training loss and the eval-mode loss of the same rows must agree.
    config = config_for(str(model_dir), learning_rate=0.0, max_steps=1, batch_size=4)

    metrics = train(config, rows, tmp_path / "out", val_rows=rows, progress=progress)

    assert progress.values("train_loss")[0] == pytest.approx(metrics["val_loss"], rel=1e-5)


@pytest.fixture(scope="module")
def absolute_position_reward(tiny_model_dir, tmp_path_factory):
    """A GPT-2 reward model (learned absolute positions) on the tiny tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2ForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gpt2-rm")
    GPT2ForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_reward_scores_do_not_depend_on_the_batch_padding(absolute_position_reward):
    scorer = RewardScorer(absolute_position_reward, device="cpu")
    short = ("say:", " a cat.")
    long = ("tell me a long story about the garden and the river:", " the dog sees a red ball.")

    alone = scorer([short[0]], [short[1]])
    padded = scorer([short[0], long[0]], [short[1], long[1]])

    assert padded[0] == pytest.approx(alone[0], abs=1e-5)


def test_a_truncated_completion_is_scored_without_the_end_of_text(tiny_reward):
    scorer = RewardScorer(tiny_reward[0], device="cpu")
    texts = [" the cat sees a red ball.", " the dog likes"]

    finished = scorer(["say:"] * 2, texts, finished=[True, True])
    mixed = scorer(["say:"] * 2, texts, finished=[True, False])
    without_eos = scorer.model(
        **reward.encode(scorer.tokenizer, ["say:"], [texts[1]], 512, "cpu", [False])
    ).logits[0, 0]

    assert mixed[0] == pytest.approx(finished[0], abs=1e-5)
    assert mixed[1] != pytest.approx(finished[1], abs=1e-4)
    assert mixed[1] == pytest.approx(float(without_eos), abs=1e-5)

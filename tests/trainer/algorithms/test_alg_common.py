import dataclasses
import importlib
import json
import math
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.algorithms.common import (
    NonFiniteLossError,
    check_finite,
    load_config,
    save_config,
    split_rows,
)
from trainer.algorithms.reward import RewardConfig

REPO = Path(__file__).resolve().parents[3]
MODULES = sorted(info.name for info in pkgutil.iter_modules([str(REPO / "trainer" / "algorithms")]))


def test_it_does_not_import_django():
    imports = "; ".join(f"import trainer.algorithms.{name}" for name in MODULES)
    code = f"{imports}; import sys; assert 'django' not in sys.modules, 'django was imported'"

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr[-2000:]


def test_config_modules_import_without_torch():
    # The web side imports them to validate configs and must stay light.
    names = [name for name in MODULES if name != "ppo_core"]
    imports = "; ".join(f"import trainer.algorithms.{name}" for name in names)
    heavy = "('torch', 'transformers', 'trl', 'datasets')"
    code = f"{imports}; import sys; assert not [m for m in {heavy} if m in sys.modules]"

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("name", MODULES)
def test_every_config_field_has_help(name):
    module = importlib.import_module(f"trainer.algorithms.{name}")
    configs = [
        obj
        for obj in vars(module).values()
        if dataclasses.is_dataclass(obj)
        and obj.__name__.endswith("Config")
        and obj.__module__ == module.__name__
    ]

    for config in configs:
        for f in dataclasses.fields(config):
            assert f.metadata.get("help"), f"{config.__name__}.{f.name} has no help text"


def test_it_round_trips_a_config_and_rejects_unknown_fields(tmp_path):
    config = RewardConfig(model_name_or_path="x", learning_rate=0.5)
    path = save_config(config, tmp_path, "reward")
    stored = json.loads(path.read_text())
    assert stored["algorithm"] == "reward"
    (tmp_path / "c.json").write_text(json.dumps(stored["config"]))
    assert load_config(RewardConfig, tmp_path / "c.json") == config

    (tmp_path / "bad.json").write_text(json.dumps({"model_name_or_path": "x", "lr": 1}))
    with pytest.raises(ValueError, match="Unknown RewardConfig field"):
        load_config(RewardConfig, tmp_path / "bad.json")


def test_check_finite_raises_a_clear_error():
    assert check_finite(1.5, step=3) == 1.5
    with pytest.raises(NonFiniteLossError, match="became nan at step 7.*learning rate"):
        check_finite(math.nan, step=7)


def test_split_rows_is_deterministic_and_keeps_training_rows():
    rows = list(range(10))
    train, val = split_rows(rows, 0.2, seed=1)
    assert (train, val) == split_rows(rows, 0.2, seed=1)
    assert len(val) == 2 and sorted(train + val) == rows
    assert split_rows([1], 0.5, seed=1) == ([1], [])

"""Prompt-OIRL: learn which prompting strategy to use for each query from logged outcomes.

After Sun et al., "Query-dependent prompt evaluation and optimization with offline inverse RL":
given N queries, M prompting strategies and logged outcomes (was the response to query i
under strategy j correct, or preferred), learn a reward model r(q, p) on an embedding of the
query and of the strategy with a cross-entropy loss, then for a new query pick
argmax_p r(q, p) without calling the language model at all.

Rows are ``{"query", "strategy", "outcome"}`` with an optional ``"query_id"``: the outcome is
1 / true (correct, preferred), 0 / false, or a share in between (a win rate, the share of
ratings above a threshold). Several rows of one (query, strategy) are averaged. A query need
not have an outcome for every strategy.

* The encoder embeds queries: ``hashing`` (word unigrams hashed into ``hashing_dims``
  dimensions, plus log-length features: no model, fast) or ``model`` (a local Hugging Face
  model, e.g. the project's policy, mean-pooled over its last hidden state).
* The classifier sees ``[query embedding, one-hot strategy]``: ``mlp`` (two layers, trained
  with torch, early stopping on a share of the training queries, scored in numpy so serving
  needs no torch) or ``gbdt`` (scikit-learn's HistGradientBoostingClassifier, soft outcomes as
  weighted rows).
* Evaluation holds queries out (never single rows: the rows of one query share its text) and
  compares, on them, the mean outcome of the selector's choice with the best single strategy
  (chosen on the training queries), a random strategy, and the hindsight oracle (the best
  logged outcome per query); ``gap_closed`` is the share of the best-single-to-oracle gap the
  selector closes.

:func:`choose_strategy` is the function a serving process calls: no Django, no torch for the
hashing encoder.

    python -m trainer.algorithms.prompt_oirl --config job.json
"""

from __future__ import annotations

import json
import math
import random
import re
import time
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from trainer.algorithms.common import (
    ProgressCallback,
    StopCheck,
    TrainingError,
    report,
    run_main,
    save_config,
    stop_requested,
    write_jsonl,
)

SELECTOR_FILENAME = "selector.json"
WEIGHTS_FILENAME = "weights.npz"
GBDT_FILENAME = "gbdt.joblib"
CHOICES_FILENAME = "choices.jsonl"
ENCODERS = ("hashing", "model")
CLASSIFIERS = ("mlp", "gbdt")


@dataclass
class PromptRewardConfig:
    encoder: str = field(
        default="hashing",
        metadata={
            "help": "How queries are embedded: 'hashing' (word unigrams hashed into "
            "hashing_dims dimensions plus log-length features; no model) or 'model' (the local "
            "Hugging Face model at encoder_model, mean-pooled)."
        },
    )
    encoder_model: str = field(
        default="",
        metadata={
            "help": "With encoder 'model': the path of a local Hugging Face model directory "
            "(e.g. the project's policy, as the Models page lists it) whose mean-pooled last "
            "hidden state embeds each query. Ignored by the hashing encoder."
        },
    )
    hashing_dims: int = field(
        default=256, metadata={"help": "Dimensions of the hashing encoder's word features."}
    )
    max_length: int = field(
        default=256, metadata={"help": "With encoder 'model': tokens of a query read, at most."}
    )
    classifier: str = field(
        default="mlp",
        metadata={
            "help": "'mlp' (two layers on [query embedding, one-hot strategy], cross-entropy, "
            "early stopping) or 'gbdt' (scikit-learn's histogram gradient boosting)."
        },
    )
    hidden_size: int = field(default=64, metadata={"help": "MLP hidden units."})
    learning_rate: float = field(default=5e-3, metadata={"help": "MLP learning rate (Adam)."})
    weight_decay: float = field(default=1e-4, metadata={"help": "MLP weight decay (AdamW)."})
    batch_size: int = field(default=512, metadata={"help": "MLP rows per optimizer step."})
    max_epochs: int = field(default=200, metadata={"help": "MLP epochs, at most."})
    patience: int = field(
        default=10,
        metadata={"help": "MLP: stop after this many epochs without a better early-stop loss."},
    )
    early_stopping_fraction: float = field(
        default=0.1,
        metadata={"help": "Share of the training queries held back for early stopping (MLP)."},
    )
    gbdt_iterations: int = field(
        default=200, metadata={"help": "GBDT: boosting iterations (trees), at most."}
    )
    val_fraction: float = field(
        default=0.2,
        metadata={
            "help": "Share of the queries held out to evaluate the selector on (split by "
            "query, never by row). 0: no evaluation."
        },
    )
    seed: int = field(default=0, metadata={"help": "Random seed (split, initialisation)."})
    device: str = field(
        default="cpu", metadata={"help": "With encoder 'model': where it runs (cpu, cuda:0)."}
    )

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, not {self.encoder!r}.")
        if self.encoder == "model" and not self.encoder_model:
            raise ValueError("encoder 'model' needs encoder_model: a local model directory.")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(
                f"classifier must be one of {', '.join(CLASSIFIERS)}, not {self.classifier!r}."
            )
        if not 0 <= self.val_fraction < 1 or not 0 <= self.early_stopping_fraction < 1:
            raise ValueError("val_fraction and early_stopping_fraction must be in [0, 1).")
        for name in ("hashing_dims", "hidden_size", "batch_size", "max_epochs", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1.")


# --- the outcome table --------------------------------------------------------------------


@dataclass
class OutcomeTable:
    """Queries x strategies: ``values[i, j]`` is the mean outcome of strategy j on query i,
    NaN where none was logged."""

    keys: list[str]
    queries: list[str]
    strategies: list[str]
    values: np.ndarray

    def rows(self, index) -> OutcomeTable:
        index = list(index)
        return OutcomeTable(
            [self.keys[i] for i in index],
            [self.queries[i] for i in index],
            self.strategies,
            self.values[index],
        )


def outcome_value(value, where: str) -> float:
    """An outcome as a float in [0, 1]; ValueError naming ``where`` otherwise."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1:
        return float(value)
    raise ValueError(f"{where}: outcome must be true/false or a number from 0 to 1, not {value!r}.")


def outcome_table(rows: list[dict]) -> OutcomeTable:
    """Rows -> the table; ValueError listing the bad rows (numbered from 1)."""
    errors, cells = [], {}
    queries: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        where = f"Row {number}"
        if not isinstance(row, dict):
            errors.append(f"{where}: must be an object with query, strategy and outcome.")
            continue
        query, strategy = row.get("query"), row.get("strategy")
        if not isinstance(query, str) or not query.strip():
            errors.append(f"{where}: query must be a non-empty string.")
            continue
        if not isinstance(strategy, str) or not strategy.strip():
            errors.append(f"{where}: strategy must be a non-empty string (the strategy's name).")
            continue
        try:
            value = outcome_value(row.get("outcome"), where)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        key = str(row["query_id"]) if row.get("query_id") is not None else query
        queries.setdefault(key, query)
        cells.setdefault((key, strategy), []).append(value)
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more."] if len(errors) > 20 else [])
        raise ValueError("\n".join(shown))
    strategies = sorted({s for _, s in cells})
    if len(strategies) < 2:
        raise ValueError(f"The rows name {len(strategies)} strategy; choosing needs at least 2.")
    if len(queries) < 2:
        raise ValueError(f"The rows hold {len(queries)} query; training needs at least 2.")
    keys = list(queries)
    row_of, col_of = {k: i for i, k in enumerate(keys)}, {s: j for j, s in enumerate(strategies)}
    values = np.full((len(keys), len(strategies)), np.nan)
    for (key, strategy), outcomes in cells.items():
        values[row_of[key], col_of[strategy]] = sum(outcomes) / len(outcomes)
    return OutcomeTable(keys, [queries[k] for k in keys], strategies, values)


def split_queries(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indexes of (kept, held-out) queries; at least one query stays on the kept side."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    if fraction <= 0 or n < 2:
        return order, []
    held = min(n - 1, max(1, round(n * fraction)))
    return sorted(order[held:]), sorted(order[:held])


# --- encoders -----------------------------------------------------------------------------


_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # words of 2+ characters, as scikit-learn's default


class HashingEncoder:
    """Word unigrams hashed (crc32, stable across processes and machines) into ``dims``
    dimensions, l2-normalised, plus two log-length features. Stateless: nothing to fit or save
    but its size. Plain numpy, so a serving process needs neither torch nor scikit-learn."""

    def __init__(self, dims: int = 256):
        self.dims = dims
        self._buckets: dict[str, int] = {}  # word -> dimension, filled as words are seen

    def encode(self, texts: list[str]) -> np.ndarray:
        buckets, dims = self._buckets, self.dims
        flat: list[int] = []
        for i, text in enumerate(texts):
            base = i * dims
            for word in _TOKEN.findall(text.lower()):
                bucket = buckets.get(word)
                if bucket is None:
                    bucket = buckets[word] = zlib.crc32(word.encode("utf-8")) % dims
                flat.append(base + bucket)
        counts = np.bincount(np.array(flat, dtype=np.int64), minlength=len(texts) * dims)
        counts = counts.reshape(len(texts), dims).astype(np.float32)
        counts /= np.maximum(np.linalg.norm(counts, axis=1, keepdims=True), 1e-12)
        lengths = np.array(
            [(math.log1p(len(t.split())) / 4.0, math.log1p(len(t)) / 7.0) for t in texts],
            dtype=np.float32,
        ).reshape(len(texts), 2)
        return np.hstack([counts, lengths])

    def describe(self) -> dict:
        return {"name": "hashing", "dims": self.dims}


class ModelEncoder:
    """A local Hugging Face model's last hidden state, mean-pooled over the query's tokens."""

    def __init__(self, path: str, max_length: int = 256, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        self.path, self.max_length, self.device = str(path), max_length, device
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.path)
            self._model = AutoModel.from_pretrained(self.path).to(device).eval()
        except OSError as exc:
            raise TrainingError(f"Cannot load the encoder model at {self.path}: {exc}") from None
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = self._tokenizer(
                    texts[start : start + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self._model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).float()
                out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu().numpy())
        return np.vstack(out).astype(np.float32)

    def describe(self) -> dict:
        return {"name": "model", "path": self.path, "max_length": self.max_length}


def make_encoder(spec: dict, device: str = "cpu"):
    if spec["name"] == "hashing":
        return HashingEncoder(spec["dims"])
    return ModelEncoder(spec["path"], spec.get("max_length", 256), device)


# --- the selector -------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


class PromptSelector:
    """r(q, p) for the strategies it was trained on: scores, choices, save and load."""

    def __init__(self, strategies, encoder_spec, classifier, params, mean=None, std=None):
        self.strategies = list(strategies)
        self.encoder_spec = dict(encoder_spec)
        self.classifier = classifier
        self.params = params  # mlp: dict of numpy arrays; gbdt: the fitted estimator
        self.mean, self.std = mean, std  # feature standardisation (model encoder)
        self._encoder = None
        self.info: dict = {}

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = make_encoder(self.encoder_spec)
        return self._encoder

    def features(self, queries: list[str]) -> np.ndarray:
        x = self.encoder.encode(list(queries))
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x

    def score_features(self, x: np.ndarray) -> np.ndarray:
        """(n, M) success probabilities from query features."""
        m = len(self.strategies)
        if self.classifier == "mlp":
            p = self.params
            d = x.shape[1]
            base = x @ p["w1"][:d] + p["b1"]  # (n, h): the query's part, shared by all
            per = p["w1"][d:]  # (M, h): each strategy's one-hot row
            hidden = np.maximum(base[:, None, :] + per[None, :, :], 0.0)  # (n, M, h)
            return _sigmoid(hidden @ p["w2"] + p["b2"])
        n = len(x)
        joined = np.hstack([np.repeat(x, m, axis=0), np.tile(np.eye(m, dtype=x.dtype), (n, 1))])
        return self.params.predict_proba(joined)[:, 1].reshape(n, m)

    def score_many(self, queries: list[str]) -> np.ndarray:
        return self.score_features(self.features(queries))

    def scores(self, query: str) -> dict[str, float]:
        row = self.score_many([query])[0]
        return {s: float(v) for s, v in zip(self.strategies, row, strict=True)}

    def choose(self, query: str) -> str:
        return self.choose_many([query])[0]

    def choose_many(self, queries: list[str]) -> list[str]:
        best = self.score_many(queries).argmax(axis=1)
        return [self.strategies[j] for j in best]

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": 1,
            "strategies": self.strategies,
            "encoder": self.encoder_spec,
            "classifier": self.classifier,
            "info": self.info,
        }
        arrays = {}
        if self.mean is not None:
            arrays |= {"mean": self.mean, "std": self.std}
        if self.classifier == "mlp":
            arrays |= self.params
        else:
            import joblib

            joblib.dump(self.params, directory / GBDT_FILENAME)
        np.savez(directory / WEIGHTS_FILENAME, **arrays)
        (directory / SELECTOR_FILENAME).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> PromptSelector:
        directory = Path(directory)
        path = directory / SELECTOR_FILENAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{directory} holds no prompt selector ({SELECTOR_FILENAME} is missing): give "
                "the output directory of a prompt_reward job."
            )
        meta = json.loads(path.read_text(encoding="utf-8"))
        with np.load(directory / WEIGHTS_FILENAME) as data:
            arrays = {k: data[k] for k in data.files}
        mean, std = arrays.pop("mean", None), arrays.pop("std", None)
        if meta["classifier"] == "mlp":
            params = arrays
        else:
            import joblib

            params = joblib.load(directory / GBDT_FILENAME)
        selector = cls(meta["strategies"], meta["encoder"], meta["classifier"], params, mean, std)
        selector.info = meta.get("info", {})
        return selector


@lru_cache(maxsize=8)
def _cached_selector(directory: str, stamp: float) -> PromptSelector:
    return PromptSelector.load(directory)


def load_selector(model_dir: str | Path) -> PromptSelector:
    """The selector in ``model_dir``, loaded once per process (again when its files change)."""
    path = Path(model_dir) / SELECTOR_FILENAME
    stamp = path.stat().st_mtime if path.exists() else 0.0
    return _cached_selector(str(model_dir), stamp)


def choose_strategy(query: str, model_dir: str | Path) -> dict:
    """For serving code: ``{"strategy": best, "scores": {strategy: probability}}`` for one
    query, from a trained selector's directory. No Django; no torch with the hashing encoder."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string.")
    scores = load_selector(model_dir).scores(query)
    return {"strategy": max(scores, key=scores.get), "scores": scores}


# --- training -----------------------------------------------------------------------------


def _cells(values: np.ndarray):
    """(query index, strategy index, outcome) of every logged cell."""
    qi, sj = np.nonzero(~np.isnan(values))
    return qi, sj, values[qi, sj]


def _mlp_fit(x, values, config, progress, should_stop) -> tuple[dict, dict]:
    import torch

    torch.manual_seed(config.seed)
    n, m = values.shape
    keep, early = split_queries(n, config.early_stopping_fraction, config.seed + 1)
    x_t = torch.tensor(x, dtype=torch.float32)
    eye = torch.eye(m)

    def tensors(index):
        qi, sj, y = _cells(values[index])
        q = torch.tensor(np.asarray(index)[qi], dtype=torch.long)
        return torch.cat([x_t[q], eye[torch.tensor(sj)]], 1), torch.tensor(y, dtype=torch.float32)

    train_x, train_y = tensors(keep)
    early_x, early_y = tensors(early) if early else (None, None)
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1] + m, config.hidden_size),
        torch.nn.ReLU(),
        torch.nn.Linear(config.hidden_size, 1),
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(config.seed)
    best, best_state, stale, epoch, stopped = math.inf, None, 0, 0, False
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = torch.randperm(len(train_y), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            loss = loss_fn(model(train_x[idx]).squeeze(-1), train_y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        metrics = {"train_loss": total / len(order)}
        model.eval()
        with torch.no_grad():
            watched = metrics["train_loss"]
            if early_x is not None:
                watched = float(loss_fn(model(early_x).squeeze(-1), early_y))
                metrics["early_stop_loss"] = watched
        if not math.isfinite(watched):
            raise TrainingError(f"The loss became {watched} at epoch {epoch}; lower learning_rate.")
        report(progress, epoch, config.max_epochs, metrics)
        if watched < best - 1e-5:
            best, stale = watched, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if stale >= config.patience:
            break
        if stop_requested(should_stop):
            stopped = True
            break
    model.load_state_dict(best_state)
    w = {k: v.numpy() for k, v in model.state_dict().items()}
    params = {
        "w1": w["0.weight"].T.copy(),  # (d + M, h)
        "b1": w["0.bias"],
        "w2": w["2.weight"][0].copy(),  # (h,)
        "b2": w["2.bias"][0].reshape(()),
    }
    return params, {"epochs": epoch, "early_stop_loss": best, "stopped": stopped}


def _gbdt_fit(x, values, config) -> tuple[object, dict]:
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise TrainingError("classifier 'gbdt' needs scikit-learn installed.") from None
    m = values.shape[1]
    qi, sj, y = _cells(values)
    joined = np.hstack([x[qi], np.eye(m, dtype=np.float32)[sj]])
    # A soft outcome y is cross-entropy on a success weighted y and a failure weighted 1 - y.
    features = np.vstack([joined, joined])
    labels = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    weights = np.concatenate([y, 1 - y])
    used = weights > 0
    model = HistGradientBoostingClassifier(
        max_iter=config.gbdt_iterations,
        early_stopping=config.early_stopping_fraction > 0,
        validation_fraction=config.early_stopping_fraction or None,
        random_state=config.seed,
    )
    model.fit(features[used], labels[used], sample_weight=weights[used])
    return model, {"iterations": int(model.n_iter_)}


def fit_selector(
    table: OutcomeTable,
    config: PromptRewardConfig,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    encoder=None,
) -> tuple[PromptSelector, dict]:
    if encoder is None:
        if config.encoder == "hashing":
            encoder = HashingEncoder(config.hashing_dims)
        else:
            encoder = ModelEncoder(config.encoder_model, config.max_length, config.device)
    x = encoder.encode(table.queries)
    mean = std = None
    if config.encoder == "model":
        mean, std = x.mean(0), x.std(0) + 1e-6
        x = (x - mean) / std
    if config.classifier == "mlp":
        params, info = _mlp_fit(x, table.values, config, progress, should_stop)
    else:
        params, info = _gbdt_fit(x, table.values, config)
    selector = PromptSelector(table.strategies, encoder.describe(), config.classifier, params)
    selector.mean, selector.std, selector._encoder = mean, std, encoder
    return selector, info


def strategy_means(values: np.ndarray) -> np.ndarray:
    """Each strategy's mean logged outcome (NaN-aware; -inf for a never-logged one)."""
    counts = (~np.isnan(values)).sum(0)
    sums = np.nansum(values, 0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)


def evaluate_choices(values: np.ndarray, scores: np.ndarray, train_means: np.ndarray) -> dict:
    """Mean outcome per query of: the selector's choice, the best single strategy (by the
    training queries' means), a random strategy, and the hindsight oracle. Each choice is
    among the strategies logged for the query, so a partly filled table is read fairly."""
    logged = ~np.isnan(values)
    usable = logged.any(1)
    values, scores, logged = values[usable], scores[usable], logged[usable]
    if not len(values):
        return {"eval_queries": 0}
    rows = np.arange(len(values))
    chosen = np.where(logged, scores, -np.inf).argmax(1)
    single = np.where(logged, train_means[None, :], -np.inf).argmax(1)
    filled = np.where(logged, values, np.nan)
    selector = float(values[rows, chosen].mean())
    best_single = float(values[rows, single].mean())
    oracle = float(np.nanmax(filled, 1).mean())
    gap = oracle - best_single
    return {
        "eval_queries": int(len(values)),
        "accuracy_selector": selector,
        "accuracy_best_single": best_single,
        "accuracy_random": float(np.nanmean(filled, 1).mean()),
        "accuracy_oracle": oracle,
        # None when the best single strategy is already as good as hindsight.
        "gap_closed": (selector - best_single) / gap if gap > 1e-9 else None,
    }


def train(
    config: PromptRewardConfig,
    rows: list[dict],
    output_dir: str | Path,
    *,
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Fit the selector on the training queries, evaluate it on the held-out ones, save it (and
    the held-out choices, ``choices.jsonl``) to ``output_dir``; returns the metrics."""
    try:
        table = outcome_table(rows)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    output_dir = Path(output_dir)
    kept, held = split_queries(len(table.keys), config.val_fraction, config.seed)
    train_table = table.rows(kept)
    started = time.perf_counter()
    selector, info = fit_selector(train_table, config, progress, should_stop)
    train_seconds = time.perf_counter() - started
    means = strategy_means(train_table.values)
    metrics: dict = {
        "queries": len(table.keys),
        "strategies": len(table.strategies),
        "train_queries": len(kept),
        "logged_outcomes": int((~np.isnan(table.values)).sum()),
        "best_single_strategy": table.strategies[int(means.argmax())],
        "train_seconds": round(train_seconds, 3),
        **{k: v for k, v in info.items() if k != "stopped"},
    }
    choices = []
    if held:
        held_table = table.rows(held)
        started = time.perf_counter()
        scores = selector.score_many(held_table.queries)
        metrics["selection_seconds"] = round(time.perf_counter() - started, 4)
        metrics |= evaluate_choices(held_table.values, scores, means)
        for i, key in enumerate(held_table.keys):
            logged = ~np.isnan(held_table.values[i])
            best = np.where(logged, scores[i], -np.inf).argmax()
            choices.append(
                {
                    "query_id": key,
                    "query": held_table.queries[i],
                    "chosen": table.strategies[int(best)],
                    "scores": dict(zip(table.strategies, map(float, scores[i]), strict=True)),
                    "outcomes": {
                        s: (None if math.isnan(v) else float(v))
                        for s, v in zip(table.strategies, held_table.values[i], strict=True)
                    },
                }
            )
    selector.info = {"metrics": metrics}
    selector.save(output_dir)
    write_jsonl(choices, output_dir / CHOICES_FILENAME)
    save_config(config, output_dir, "prompt_reward")
    if info.get("stopped"):
        metrics["stopped"] = True
    return metrics


def main(argv: list[str] | None = None) -> dict:
    return run_main(
        train, PromptRewardConfig, argv, description="Prompt-OIRL: a per-query prompt selector."
    )


if __name__ == "__main__":
    main()

"""See the loop run: a tiny local policy, a "Loop demo" project and simulated labelers.

    python manage.py demo_loop --url http://127.0.0.1:8000     # while ./scripts/demo runs
    DEMO_LOOP=1 ./scripts/demo                                 # or let the demo start it

1. Builds the tiny base policy into $PREFLOOP_VAR_DIR/demo-loop/ once: a ~1.5M-parameter Llama
   with a locally trained tokenizer, briefly pretrained on templated sentences so that its
   samples read as sentences (a few minutes on a CPU; no model hub is needed).
2. Creates the "Loop demo" project once: prompts, each with two samples of the base policy
   (one pairwise task each), the base registered as a model version, and the loop enabled
   (RAFT; a reward model after every --reward-after new comparisons).
3. Starts simulated labelers against the running server (they prefer responses with the
   guidelines' target words, at about twelve words) and prints each round's steps with links
   to the job pages. After --rounds rounds it stops them; the loop then waits for labels:
   label the new tasks in the browser, or run the command again for more rounds.

Torch runs only in subprocesses (the build and the first samples), never in this process,
which forks the labelers.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from annotator import services
from annotator.importing import project_import
from annotator.models import Annotation, Membership, Project
from trainer.loop import services as loop
from trainer.loop.oracles import DEFAULT_TARGET_LENGTH, DEFAULT_TARGET_WORDS
from trainer.models import LoopPolicy, LoopRound, ModelVersion

PROJECT_NAME = "Loop demo"
QUESTIONS = ("tell me about", "write a sentence about", "what about")
TOPICS = ("the weather", "a cat", "the garden", "your day", "a good book", "the sea", "music",
          "the market", "a friend", "the river")  # fmt: skip
TRAIN_PROMPTS, EVAL_PROMPTS = 50, 10
MAX_NEW_TOKENS = 40

GUIDELINES = f"""\
# Which reply is better? (a demo of the loop)

The replies come from a tiny language model that learns from your choices. Prefer the reply
that uses more of these words: **{", ".join(DEFAULT_TARGET_WORDS)}**. When both use as many,
prefer the one closer to **{DEFAULT_TARGET_LENGTH} words** long.

Simulated labelers (marked *simulated*) answer by the same rule, with a few mistakes on
purpose. Every round the loop trains a reward model on all the labels so far, a better policy
from it, and puts the new policy's replies against the previous one's back in this queue.
"""

LOOP_CONFIGS = {
    "reward_config": {"learning_rate": 5e-4, "num_epochs": 3.0, "batch_size": 16,
                      "max_length": 128, "save_steps": 0, "device": "cpu"},
    "policy_config": {"iterations": 2, "num_samples": 8, "keep_top_k": 1,
                      "prompts_per_iteration": 32, "max_new_tokens": MAX_NEW_TOKENS,
                      "learning_rate": 5e-4, "sft_epochs": 2.0, "sft_batch_size": 16,
                      "generation_batch_size": 64, "max_length": 128, "device": "cpu"},
    "generate_config": {"max_new_tokens": MAX_NEW_TOKENS, "batch_size": 64, "device": "cpu"},
}  # fmt: skip


class Command(BaseCommand):
    help = "Build a tiny policy, set up the 'Loop demo' project and run simulated labelers on it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="The running app.")
        parser.add_argument("--rounds", type=int, default=3, help="Stop labeling after these.")
        parser.add_argument("--labelers", type=int, default=3)
        parser.add_argument("--noise", type=float, default=0.1)
        parser.add_argument(
            "--rate", type=float, default=1.0, help="Answers per second per labeler."
        )
        parser.add_argument("--reward-after", type=int, default=TRAIN_PROMPTS + EVAL_PROMPTS)
        parser.add_argument("--pretrain-steps", type=int, default=300)
        parser.add_argument(
            "--exit-when-done",
            action="store_true",
            help="Exit after --rounds rounds instead of waiting for Ctrl-C.",
        )

    def handle(self, *args, **options) -> None:
        url = options["url"].rstrip("/")
        base_dir = Path(settings.VAR_DIR) / "demo-loop" / f"tiny-p{options['pretrain_steps']}"
        if not (base_dir / "config.json").is_file():
            self.say(f"Building the tiny base policy in {base_dir} (once; a few minutes)")
            _python("-m", "trainer.algorithms.tiny", "--out", str(base_dir), "--pretrain-steps",
                    str(options["pretrain_steps"]))  # fmt: skip
        project = Project.objects.filter(name=PROJECT_NAME).order_by("id").first()
        if project is None:
            self.say("Sampling the first replies and creating the project")
            project = _create_project(base_dir, reward_after=options["reward_after"])
        _add_demo_members(project)
        policy = LoopPolicy.objects.get(project=project)
        # Enabled again (and, after a failed or stopped round, a new round opened).
        loop.loop_configure(project=project, base_policy=policy.base_policy, enabled=True)
        self.say(f"The loop: {url}/training/projects/{project.id}/loop/")
        _wait_for(url)
        self.run_labelers(project, url, options)

    def say(self, message: str) -> None:
        self.stdout.write(f"[demo_loop] {message}")
        self.stdout.flush()

    def run_labelers(self, project: Project, url: str, options: dict) -> None:
        current = LoopRound.objects.filter(project=project).order_by("-number").first()
        start = current.number if current else 1
        until = start + options["rounds"] - 1
        command = [sys.executable, "manage.py", "simulate_labelers", "--project",
                   str(project.id), "--count", str(options["labelers"]), "--noise",
                   str(options["noise"]), "--rate", str(options["rate"]), "--url", url]  # fmt: skip
        self.say(f"{options['labelers']} simulated labelers until round {until} is done")
        labelers = subprocess.Popen(command, cwd=settings.BASE_DIR)
        seen: dict[int, tuple] = {}
        outcome = None
        try:
            while labelers.poll() is None and outcome is None:
                outcome = self.report_rounds(project, url, seen, start, until)
                time.sleep(2)
        finally:
            if labelers.poll() is None:
                labelers.send_signal(signal.SIGTERM)
            labelers.wait()
        page = f"{url}/training/projects/{project.id}/loop/"
        if outcome == "done":
            reward_after = LoopPolicy.objects.get(project=project).reward_after
            self.say(
                f"Done: round {until}'s tasks are in the queue. Label them yourself at {url}/ "
                f"(the loop retrains after {reward_after} new comparisons), or run demo_loop "
                f"again for more simulated rounds. The loop: {page}"
            )
        else:
            # A failed round stays on the loop page with its reason; the demo keeps running.
            self.say(f"The simulated labelers stopped ({outcome or 'exited'}); see {page}")
        if options["exit_when_done"]:
            if outcome != "done":
                raise CommandError(outcome or "the simulated labelers exited")
            return
        signal.pause()  # scripts/demo stops everything on Ctrl-C

    def report_rounds(
        self, project: Project, url: str, seen: dict, start: int, until: int
    ) -> str | None:
        """Print what changed since the last look; "done" once round `until` is done, the
        reason when a round failed or was stopped."""
        rounds = LoopRound.objects.filter(project=project, number__gte=start)
        for r in rounds.select_related("reward_job", "policy_job"):
            labels = Annotation.objects.filter(task__project=project).count()
            state = (r.status, r.tasks_created)
            if seen.get(r.number) == state:
                continue
            seen[r.number] = state
            job = {"reward": r.reward_job, "policy": r.policy_job}.get(r.status)
            detail = f" ({url}/training/jobs/{job.id}/)" if job else ""
            if r.status == LoopRound.Status.GENERATING:
                ids = sorted(r.generate_jobs.values())
                detail = f" (jobs {', '.join(map(str, ids))})"
            if r.status == LoopRound.Status.DONE:
                detail = f" ({r.tasks_created} tasks: the new policy against the others)"
            if r.status in (LoopRound.Status.FAILED, LoopRound.Status.STOPPED):
                return f"round {r.number} {r.status}: {r.error}"
            self.say(f"round {r.number}: {r.get_status_display()}{detail} · {labels} labels")
            if r.number == until and r.status == LoopRound.Status.DONE:
                return "done"
        return None


def _python(*args: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, *args], cwd=settings.BASE_DIR, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def _prompts() -> list[tuple[list[dict], str]]:
    """(chat prompt, split): every question about every topic, some held out for evaluation."""
    chats = [[{"role": "user", "content": f"{q} {t}."}] for t in TOPICS for q in QUESTIONS]
    chats = (chats * 2)[: TRAIN_PROMPTS + EVAL_PROMPTS]
    return [(chat, "eval" if i % 6 == 5 else "train") for i, chat in enumerate(chats)]


def _base_samples(base_dir: Path, prompts: list) -> list[list[str]]:
    """Two non-empty samples per prompt from the base policy (the generate CLI, a subprocess)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = {"model_name_or_path": str(base_dir), "num_samples": 4, "seed": 0,
                  "max_new_tokens": MAX_NEW_TOKENS, "device": "cpu", "output_dir": tmp,
                  "rows": [{"prompt": p, "i": i} for i, p in enumerate(prompts)]}  # fmt: skip
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config))
        _python("-m", "trainer.algorithms.generate", "--config", str(path))
        rows = [json.loads(line) for line in (Path(tmp) / "completions.jsonl").open()]
    samples: list[list[str]] = [[] for _ in prompts]
    for row in rows:
        text = row["completion"].replace("\x00", "").strip()
        if text:
            samples[row["i"]].append(text)
    return [(s + ["(no reply)", "(no reply)"])[:2] for s in samples]


def _create_project(base_dir: Path, *, reward_after: int) -> Project:
    prompts = _prompts()
    samples = _base_samples(base_dir, [p for p, _ in prompts])
    lines = [
        json.dumps({"prompt": prompt, "completions": pair, "split": split})
        for (prompt, split), pair in zip(prompts, samples, strict=True)
    ]
    admin = get_user_model().objects.filter(is_superuser=True).order_by("id").first()
    with transaction.atomic():
        project = services.project_create(
            created_by=admin,
            name=PROJECT_NAME,
            guidelines=GUIDELINES,
            kind="pairwise",
            overlap=1,
            allow_tie=False,  # every answer trains the reward model
            allow_both_bad=False,
        )
        project_import(project=project, data="\n".join(lines).encode(), fmt="jsonl")
        base = ModelVersion.objects.create(
            project=project, name="tiny-base", role=ModelVersion.Role.POLICY, path=str(base_dir)
        )
        loop.loop_configure(
            project=project,
            base_policy=base,
            enabled=True,
            algorithm=LoopPolicy.Algorithm.RAFT,
            reward_after=reward_after,
            train_prompts=TRAIN_PROMPTS,
            compare_with_base=True,
            **LOOP_CONFIGS,
        )
    return project


def _add_demo_members(project: Project) -> None:
    """The seeded demo accounts (./scripts/demo): admin runs the loop, the labelers label."""
    users = get_user_model().objects
    for user in users.filter(username__in=["admin", "labeler1", "labeler2"]):
        role = Membership.Role.ADMIN if user.is_superuser else Membership.Role.LABELER
        if not Membership.objects.filter(project=project, user=user).exists():
            services.membership_set(project=project, user=user, role=role)


def _wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/", timeout=5)  # noqa: S310
            return
        except urllib.error.HTTPError:
            return  # the server answers
        except OSError:
            time.sleep(1)
    raise CommandError(f"no server at {url}; start ./scripts/demo first")

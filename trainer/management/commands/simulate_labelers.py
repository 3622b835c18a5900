"""Simulated labelers: processes that label a project over the public HTTP API.

    python manage.py simulate_labelers --project 3 --count 5 --oracle target-words --noise 0.1

Each labeler is its own user (`sim-<project id>-<n>`, in the "simulated" group, a labeler of
the project, with an API token) and its own process. It does what a scripted human labeler
does: POST tasks/next/, answer from its oracle (trainer/loop/oracles.py), POST the annotation;
on 204 it waits and asks again (or stops, with --stop-when-empty). The database is touched
only here, to create the users; the labelers know nothing but the URL and their token.
Ctrl-C (or SIGTERM) stops them all after their current request and prints the summary.
See docs/simulated-labelers.md.
"""

import http.client
import json
import multiprocessing
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from annotator import services
from annotator.models import Project
from trainer.loop.oracles import DEFAULT_TARGET_LENGTH, OracleConfig, OracleError, make_oracle

# A labeler gives up after this many failed requests in a row (server down, bad answers).
MAX_CONSECUTIVE_ERRORS = 10
REQUEST_TIMEOUT_S = 30


class Command(BaseCommand):
    help = "Run simulated labelers that answer a project's tasks over the HTTP API."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="Project id or exact name.")
        parser.add_argument("--count", type=int, default=1, help="How many labelers.")
        parser.add_argument(
            "--oracle",
            default="words-and-length",
            help="target-words, target-length, words-and-length, likert-*/ranking-* aliases, "
            "or a Python callable as module:function.",
        )
        parser.add_argument(
            "--noise", type=float, default=0.0, help="Probability an answer is wrong (0..1)."
        )
        parser.add_argument(
            "--noises",
            default=None,
            help="Per-labeler noise, comma-separated, one value per labeler (overrides --noise).",
        )
        parser.add_argument(
            "--pair-noise",
            type=float,
            default=None,
            help="Share of pairs (0..1) every labeler is wrong about, fixed by the two texts and "
            "--seed; ties that must be broken are broken the same way. A pair then gets the same "
            "answer whoever is asked, so a run's labels do not depend on which labeler took "
            "which task. Adds to --noise, which stays per answer.",
        )
        parser.add_argument(
            "--position-bias",
            default="0",
            help="Probability of picking the left response of a pairwise task whatever it "
            "says (0..1): one value for all, or one per labeler, comma-separated.",
        )
        parser.add_argument("--target-words", default=None, help="Comma-separated words.")
        parser.add_argument("--target-length", type=int, default=DEFAULT_TARGET_LENGTH)
        parser.add_argument(
            "--length-weight",
            type=float,
            default=OracleConfig.length_weight,
            help="words-and-length: target words one word of length distance costs.",
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="Labeler n uses seed + n; none: random."
        )
        parser.add_argument(
            "--rate",
            type=float,
            default=0.0,
            help="Annotations per second per labeler (0: as fast as the server answers).",
        )
        parser.add_argument(
            "--max-annotations",
            type=int,
            default=0,
            help="Stop after this many annotations in total (0: no limit).",
        )
        parser.add_argument(
            "--stop-when-empty",
            action="store_true",
            help="A labeler stops at its first 'nothing left' (204) instead of polling.",
        )
        parser.add_argument(
            "--poll", type=float, default=2.0, help="Seconds between asks when nothing is left."
        )
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="The app's base URL.")

    def handle(self, *args, **options) -> None:
        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        if options["rate"] < 0 or options["poll"] <= 0 or options["max_annotations"] < 0:
            raise CommandError("--rate, --poll and --max-annotations must not be negative")
        project = _project(options["project"])
        oracle_options = {
            "target_length": options["target_length"],
            "length_weight": options["length_weight"],
            "noise": options["noise"],
        }
        if options["target_words"]:
            oracle_options["target_words"] = tuple(options["target_words"].split(","))
        if options["pair_noise"] is not None:
            # One pair seed for all labelers, so they share their beliefs about each pair.
            oracle_options.update(
                pair_noise=options["pair_noise"], pair_seed=options["seed"] or 0, pair_ties=True
            )
        try:
            make_oracle(options["oracle"], **oracle_options)  # fail here, not in every labeler
        except OracleError as exc:
            raise CommandError(str(exc)) from exc
        count = options["count"]
        noises = _per_labeler(options["noises"] or str(options["noise"]), count, "--noises")
        biases = _per_labeler(options["position_bias"], count, "--position-bias")
        try:
            for noise, bias in zip(noises, biases, strict=True):
                OracleConfig(noise=noise, position_bias=bias)
        except OracleError as exc:
            raise CommandError(str(exc)) from exc
        labelers = []
        for n in range(1, count + 1):
            username = f"sim-{project.id}-{n}"
            token = services.labeler_simulated_ensure(project=project, username=username)
            seed = None if options["seed"] is None else options["seed"] + n
            own = {"noise": noises[n - 1], "position_bias": biases[n - 1]}
            labelers.append(
                LabelerSpec(
                    username=username,
                    token=token.key,
                    project_id=project.id,
                    url=options["url"],
                    oracle=options["oracle"],
                    oracle_options={**oracle_options, **own, "seed": seed},
                    rate=options["rate"],
                    poll=options["poll"],
                    stop_when_empty=options["stop_when_empty"],
                )
            )
        noise = ",".join(map(str, noises)) if len(set(noises)) > 1 else str(noises[0])
        bias = f", position bias {options['position_bias']}" if any(biases) else ""
        self.stdout.write(
            f"{len(labelers)} simulated labeler(s) on project {project.id} ({project.name}) "
            f"at {options['url']}, oracle {options['oracle']}, noise {noise}{bias}"
        )
        results = run_labelers(labelers, max_annotations=options["max_annotations"])
        self._summary(results)

    def _summary(self, results: list[dict]) -> None:
        total = sum(r["annotations"] for r in results)
        errors: Counter = Counter()
        for r in sorted(results, key=lambda r: r["username"]):
            errors.update(r["errors"])
            detail = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "none"
            self.stdout.write(
                f"  {r['username']}: {r['annotations']} annotations, errors: {detail}"
                + (f" (stopped: {r['stopped']})" if r["stopped"] else "")
            )
        detail = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"
        self.stdout.write(f"{total} annotations by {len(results)} labeler(s); errors: {detail}")


def _per_labeler(value: str, count: int, option: str) -> list[float]:
    """One value for every labeler, or exactly one per labeler."""
    try:
        values = [float(v) for v in value.split(",")]
    except ValueError as exc:
        raise CommandError(f"{option} takes numbers separated by commas") from exc
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise CommandError(f"{option} has {len(values)} values for {count} labelers")
    return values


def _project(value: str) -> Project:
    project = None
    if value.isdigit():
        project = Project.objects.filter(pk=int(value)).first()
    project = project or Project.objects.filter(name=value).order_by("id").first()
    if project is None:
        raise CommandError(f"No project with id or name {value!r}.")
    return project


# --- The labelers (separate processes; HTTP only from here on) ------------------------------


@dataclass(frozen=True)
class LabelerSpec:
    username: str
    token: str
    project_id: int
    url: str
    oracle: str
    oracle_options: dict
    rate: float
    poll: float
    stop_when_empty: bool


@dataclass
class LabelerResult:
    username: str
    annotations: int = 0
    errors: Counter = field(default_factory=Counter)
    stopped: str = ""

    def as_dict(self) -> dict:
        return {
            "username": self.username,
            "annotations": self.annotations,
            "errors": dict(self.errors),
            "stopped": self.stopped,
        }


def run_labelers(specs: list[LabelerSpec], *, max_annotations: int = 0) -> list[dict]:
    """Run one process per labeler until they stop; Ctrl-C or SIGTERM stops them all.

    Processes, not threads, so that a heavy callable oracle (an AI judge) runs in parallel.
    They are forked: the children inherit the loaded oracle module and never use the database.
    """
    # A forked child must never use the parent's database sockets; close them where that is
    # allowed (not inside a transaction, as in a test wrapped in one; the children do not
    # touch the database, so leaving those open is safe as well).
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
    context = multiprocessing.get_context("fork")
    # A plain shared byte, not an Event: setting it takes no lock, so signal handlers may,
    # and a labeler killed mid-wait cannot leave anyone waiting on it.
    stop = context.RawValue("b", 0)
    budget = context.Value("i", max_annotations)  # annotations left to make; unused when 0
    results = context.Queue()
    processes = [
        context.Process(
            target=_labeler_main,
            args=(spec, stop, budget if max_annotations else None, results),
            name=spec.username,
            daemon=True,
        )
        for spec in specs
    ]
    # Only the main thread may install handlers (a benchmark may call this from another).
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: _set(stop)) if main else None
    try:
        for process in processes:
            process.start()
        collected = _collect(processes, results, stop)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    return collected


def _collect(processes, results, stop) -> list[dict]:
    collected: dict[str, dict] = {}
    while len(collected) < len(processes):
        try:
            result = results.get(timeout=0.5)
            collected[result["username"]] = result
        except queue.Empty:
            if not any(p.is_alive() for p in processes):
                try:  # a last result may still be in the pipe
                    while True:
                        result = results.get(timeout=0.5)
                        collected[result["username"]] = result
                except queue.Empty:
                    break
        except KeyboardInterrupt:
            _set(stop)  # the labelers finish their current request and report
    for process in processes:
        process.join(timeout=REQUEST_TIMEOUT_S)
        if process.is_alive():
            process.kill()
        if process.name not in collected:
            collected[process.name] = LabelerResult(process.name, stopped="crashed").as_dict()
    return list(collected.values())


def _set(flag) -> None:
    flag.value = 1


def _labeler_main(spec: LabelerSpec, stop, budget, results) -> None:
    # Ctrl-C reaches the whole process group: the parent alone handles it, through `stop`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    result = LabelerResult(spec.username)
    try:
        labeler = SimulatedLabeler(spec, stop=stop, budget=budget, result=result)
        signal.signal(signal.SIGTERM, lambda *_: _set(stop))
        labeler.run()
    except Exception as exc:  # reported in the summary, never lost in a child's stderr
        result.errors[type(exc).__name__] += 1
        result.stopped = f"{type(exc).__name__}: {exc}"
    results.put(result.as_dict())


class SimulatedLabeler:
    def __init__(self, spec: LabelerSpec, *, stop, budget, result: LabelerResult) -> None:
        self.spec = spec
        self.stop = stop
        self.budget = budget
        self.result = result
        self.oracle = make_oracle(spec.oracle, **spec.oracle_options)
        self.api = _Api(spec.url, spec.token)
        self.failures = 0  # in a row

    def stopping(self) -> bool:
        return bool(self.stop.value)

    def wait(self, seconds: float) -> None:
        """Sleep, waking early when told to stop."""
        until = time.monotonic() + seconds
        while not self.stopping() and (left := until - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def run(self) -> None:
        status, project = self.api.request("GET", f"/api/v1/projects/{self.spec.project_id}/")
        if status != 200:
            self.result.errors[f"project: http {status}" if status else "connection"] += 1
            self.result.stopped = (
                f"cannot read the project (HTTP {status})" if status else "no server at the URL"
            )
            return
        interval = 1.0 / self.spec.rate if self.spec.rate else 0.0
        while not self.stopping():
            if not self._reserve():
                self.result.stopped = "max annotations reached"
                return
            started = time.monotonic()
            made = self._one(project)
            if made is None:  # nothing for this labeler just now
                self._release()
                if self.spec.stop_when_empty:
                    self.result.stopped = "queue empty"
                    return
                self.wait(self.spec.poll)
            elif not made:
                self._release()
                if self.failures >= MAX_CONSECUTIVE_ERRORS:
                    self.result.stopped = f"{self.failures} failed requests in a row"
                    return
                self.wait(min(5.0, 0.1 * 2**self.failures))  # back off
            elif interval:
                self.wait(started + interval - time.monotonic())
        self.result.stopped = "told to stop"

    def _one(self, project: dict) -> bool | None:
        """Take a task and answer it: True if stored, False if that failed, None if nothing
        is left for this labeler."""
        status, task = self.api.request(
            "POST", f"/api/v1/projects/{self.spec.project_id}/tasks/next/"
        )
        if status == 204:
            self.failures = 0
            return None
        if status != 200:
            return self._failed(f"next: http {status}" if status else "connection")
        started = time.monotonic()
        try:
            answer = self._answer(project, task)
        except OracleError:
            self.api.request(
                "POST", f"/api/v1/tasks/{task['id']}/skip/", {"reason": "oracle error"}
            )
            return self._failed("oracle error")
        answer["time_spent_ms"] = int((time.monotonic() - started) * 1000)
        status, body = self.api.request("POST", f"/api/v1/tasks/{task['id']}/annotations/", answer)
        # A 409 naming an annotation is this labeler's own, stored by a first try whose
        # response was lost (the client resends once on a dropped connection).
        if status == 201 or (status == 409 and body.get("annotation_id")):
            self.failures = 0
            self.result.annotations += 1
            return True
        if status == 400:  # never retried: skip it so the queue moves on
            self.api.request(
                "POST", f"/api/v1/tasks/{task['id']}/skip/", {"reason": "answer refused"}
            )
        return self._failed(f"submit: http {status}" if status else "connection")

    def _answer(self, project: dict, task: dict) -> dict:
        prompt = _prompt_text(task["prompt"])
        texts = [c["text"] for c in task["completions"]]
        if task["kind"] == "pairwise":
            choice = self.oracle.answer_pairwise(
                texts[0],
                texts[1],
                prompt=prompt,
                allow_tie=project["allow_tie"],
                allow_both_bad=project["allow_both_bad"],
            )
            return {"choice": choice}
        if task["kind"] == "likert":
            score = self.oracle.answer_likert(
                texts[0], points=project["likert_points"], prompt=prompt
            )
            if project["aspects"]:
                return {"scores": {aspect: score for aspect in project["aspects"]}, "flags": []}
            return {"score": score, "flags": []}
        order = self.oracle.answer_ranking(texts, prompt=prompt)
        return {"ranking": [task["completions"][i]["id"] for i in order]}

    def _failed(self, kind: str) -> bool:
        self.result.errors[kind] += 1
        self.failures += 1
        return False

    def _reserve(self) -> bool:
        if self.budget is None:
            return True
        with self.budget.get_lock():
            if self.budget.value <= 0:
                return False
            self.budget.value -= 1
            return True

    def _release(self) -> None:
        if self.budget is not None:
            with self.budget.get_lock():
                self.budget.value += 1


def _prompt_text(prompt: dict) -> str:
    if prompt.get("messages"):
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt["messages"])
    return prompt.get("text") or ""


class _Api:
    """One keep-alive connection with the labeler's token; reconnects once on a dropped one."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """(status, JSON body or {}); status 0 when the server could not be reached."""
        payload = json.dumps(body).encode() if body is not None else b""
        for attempt in (1, 2):
            try:
                conn = self.conn or self._connect()
                conn.request(method, self.prefix + path, body=payload, headers=self.headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    return 0, {}
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {}
        return response.status, parsed

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        self.conn = cls(self.host, timeout=REQUEST_TIMEOUT_S)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

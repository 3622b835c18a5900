"""A simulated AI judge behind an OpenAI-compatible chat-completions endpoint (no Django).

For tests, demos and benchmarks: ``python -m trainer.loop.judge_server --port 0`` prints
``listening on http://127.0.0.1:PORT/v1`` and answers ``POST /v1/chat/completions`` by an
oracle rule (trainer/loop/oracles.py) applied to the responses found in the judge's prompt,
as the rubrics of trainer/algorithms/judges.py write them: ``[Response A]`` / ``[Response B]``
for a pair (answered ``Verdict: ...``), one ``[Response]`` for a Likert score (``Score: N``,
on the scale the prompt's ``Score: <1 to N>`` names), ``[Response A]`` ... ``[Response K]``
with a ``Ranking:`` instruction for a ranking (``Ranking: C > A > B``). The request's
``model`` says how to behave, as ``;``-separated settings:

- ``rule=words-and-length`` (default), ``target=sun,garden``, ``length=12``, ``weight=0.25``
  (what one word of length distance costs): the rule;
- ``noise=0.02``: errors drawn afresh on each answer (asked twice, the judge may contradict
  itself); ``pair_noise=0.21``: share of pairs the judge is wrong about in both orders and on
  every asking, fixed by the two texts and ``seed`` (how LLM judges err on hard pairs);
  ``left=0.1``: probability of answering "A" whatever the responses say (position bias; in a
  ranking: of putting the response shown first on top);
  ``seed=1``. ``noise`` alone is the older, all-independent judge;
  trainer.loop.oracles.judge_noise_for picks the two parts for a wanted error and flip rate;
- ``fail=429x2`` (or ``500x1``): the first N requests with this model string get that status;
  ``failafter=N``: every request after the first N with this model string gets a 500;
- ``delay=2.5``: seconds to wait before answering (to trip a client's timeout);
- ``malformed=1``: a completion with no verdict line; ``notjson=1``: a body that is no JSON.

``--auth-log FILE`` appends each request's Authorization header, so a test can check that a
key was sent without the key appearing anywhere else.
"""

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from trainer.loop.oracles import OracleConfig, make_oracle

_B_END = re.compile(r"\n\n(?=Judge the content|End your answer|First reason|Flags that may)")
_BLOCK = re.compile(r"\[Response ([A-P])\]\n")
_POINTS = re.compile(r"Score: <1 to (\d+)>")


def settings_of(model: str) -> dict:
    out = {}
    for part in (model or "").split(";"):
        key, _, value = part.partition("=")
        if key.strip():
            out[key.strip()] = value.strip()
    return out


def responses_of(text: str) -> tuple[str, str]:
    after_a = text.split("[Response A]\n", 1)[1]
    a, after_b = after_a.split("\n\n[Response B]\n", 1)
    match = _B_END.search(after_b)
    b = after_b[: match.start()] if match else after_b.rsplit("\n\n", 1)[0]
    return a, b


def _until_instructions(text: str) -> str:
    match = _B_END.search(text)
    return text[: match.start()] if match else text.rsplit("\n\n", 1)[0]


def ranked_of(text: str) -> list[str]:
    """A ranking prompt's responses, in the order shown."""
    parts = _BLOCK.split(text)[1:]  # letter, text, letter, text, ...
    texts = [part.removesuffix("\n\n") for part in parts[1::2]]
    texts[-1] = _until_instructions(texts[-1])
    return texts


def oracle_for(s: dict, count: int):
    """The simulated judge's oracle for the `count`-th request of its model string `s`."""
    config = OracleConfig(
        target_words=tuple((s.get("target") or "happy,friend,garden,music,bright,kind")
                           .split(",")),
        target_length=int(s.get("length") or 12),
        length_weight=float(s.get("weight") or 0.25),
        noise=float(s.get("noise") or 0), position_bias=float(s.get("left") or 0),
        pair_noise=float(s.get("pair_noise") or 0), pair_seed=int(s.get("seed") or 0),
        # One stream per request: the answer depends on the request's number only.
        seed=int(s.get("seed") or 0) * 1_000_003 + count,
    )  # fmt: skip
    return make_oracle(s.get("rule") or "words-and-length", **vars(config))


def verdict(a: str, b: str, s: dict, count: int) -> str:
    """The simulated judge's answer ("a", "b", "tie", "both_bad") to the `count`-th request
    of its model string `s` (settings_of) on responses A = `a`, B = `b`."""
    return oracle_for(s, count).answer_pairwise(a, b)


def verdict_text(user: str, s: dict, count: int) -> str:
    if "[Response]\n" in user:
        text = _until_instructions(user.split("[Response]\n", 1)[1])
        found = _POINTS.search(user)
        score = oracle_for(s, count).answer_likert(text, points=int(found.group(1)) if found else 7)
        return f"Scoring by the rule.\nScore: {score}\nFlags: none\nConfidence: 0.9"
    if "[Response C]\n" in user or "Ranking:" in user:
        texts = ranked_of(user)
        oracle = oracle_for(s, count)
        left = float(s.get("left") or 0)
        if left and oracle.rng.random() < left:
            order = [0] + [k for k in oracle.order(texts) if k != 0]
        else:
            order = oracle.answer_ranking(texts)
        letters = " > ".join("ABCDEFGHIJKLMNOP"[k] for k in order)
        return f"Ranking by the rule.\nRanking: {letters}\nConfidence: 0.9"
    word = {"a": "A", "b": "B", "tie": "tie", "both_bad": "both bad"}[
        verdict(*responses_of(user), s, count)
    ]
    return f"Comparing the two by the rule.\nVerdict: {word}\nConfidence: 0.9"


class JudgeHandler(BaseHTTPRequestHandler):
    server_version = "SimJudge/1"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 -- http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.server.auth_log:
            with self.server.lock, open(self.server.auth_log, "a") as log:
                log.write((self.headers.get("Authorization") or "-") + "\n")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._send(404, {"error": {"message": "not found"}})
        model = body.get("model", "")
        s = settings_of(model)
        with self.server.lock:
            count = self.server.counts.get(model, 0) + 1
            self.server.counts[model] = count
        if s.get("fail"):
            status, _, times = s["fail"].partition("x")
            if count <= int(times or 1):
                return self._send(int(status), {"error": {"message": "try again"}})
        if s.get("failafter") and count > int(s["failafter"]):
            return self._send(500, {"error": {"message": "down"}})
        if s.get("delay"):
            time.sleep(float(s["delay"]))
        if s.get("notjson"):
            return self._send_raw(200, b"<html>gateway</html>")
        user = next((m["content"] for m in body.get("messages", []) if m["role"] == "user"), "")
        if s.get("malformed"):
            content = "I think both have merits."
        else:
            content = verdict_text(user, s, count)
        usage = {"prompt_tokens": len(user.split()), "completion_tokens": len(content.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return self._send(200, {
            "id": f"sim-{count}", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": usage,
        })  # fmt: skip

    def _send(self, status: int, obj: dict):
        self._send_raw(status, json.dumps(obj).encode(), "application/json")

    def _send_raw(self, status: int, data: bytes, ctype: str = "text/html"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(port: int = 0, auth_log: str | None = None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), JudgeHandler)
    server.daemon_threads = True
    server.counts, server.lock, server.auth_log = {}, threading.Lock(), auth_log
    return server


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--auth-log")
    args = parser.parse_args(argv)
    server = serve(args.port, args.auth_log)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

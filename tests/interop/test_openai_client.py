"""The official `openai` Python client against a real `refract serve` on loopback.

What a user of vLLM's OpenAI server does, unchanged: plain chat, an image as a data URL and as an
allowed local file, n=2, logprobs, streaming with usage, and errors raised as the client's own
exception types (BadRequestError, AuthenticationError, NotFoundError) with OpenAI's `param`.
The parsed objects are compared with the raw JSON of the same requests (what the client reads is
what the server sent), and the streamed text with the non-streamed one."""
import base64
import json
import os
import subprocess
import sys
import urllib.request

try:
    import openai
except ImportError:
    print("SKIPPED: the openai package is absent (run 'bash scripts/setup_python.sh')")
    sys.exit(77)

from interop_common import REFRACT, Workspace, check, make_base, make_data

KEY = "sk-interop-4242"


class Server:
    """`refract serve --port 0`; the first stdout line says the port."""

    def __init__(self, ws, model, media):
        self.log = open(ws.path("serve.log"), "w")
        self.proc = subprocess.Popen(
            [REFRACT, "serve", "--model", model, "--port", "0", "--threads", "2", "--served_model_name", "tiny",
             "--api_key", KEY, "--allowed_local_media_path", media, "--max_completion_length", "24"],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = ""
        while "refract serve: listening on" not in line:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("refract serve exited: see " + ws.path("serve.log"))
        self.url = line.split("listening on ")[1].split(" ")[0]

    def stop(self):
        self.proc.terminate()
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code


def raw_post(url, body):
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + KEY})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def expect_error(kind, status, fn, param=None):
    try:
        fn()
    except kind as e:
        check(e.status_code == status, f"{kind.__name__}: status {e.status_code}")
        if param is not None:
            check(e.param == param, f"{kind.__name__}: param {e.param!r} == {param!r} ({e.message})")
        return e
    except Exception as e:  # noqa: BLE001
        check(False, f"expected {kind.__name__}, got {type(e).__name__}: {e}")
    check(False, f"expected {kind.__name__}, nothing raised")


def main():
    print(f"openai {openai.__version__}")
    with Workspace() as ws:
        base = make_base(ws)
        data = make_data(ws, n=1)
        media = os.path.join(data, "images")
        image = sorted(os.path.relpath(os.path.join(d, f), media)
                       for d, _, files in os.walk(media) for f in files if f.endswith(".png"))[0]
        with open(os.path.join(media, image), "rb") as f:
            data_url = "data:image/png;base64," + base64.b64encode(f.read()).decode()
        server = Server(ws, base, media)
        try:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=120)
            check([m.id for m in client.models.list().data] == ["tiny"], "models.list() gives the served model")

            # ---- plain text, greedy: the client's object is the server's JSON ---------------------
            text_msgs = [{"role": "user", "content": "Say something."}]
            r = client.chat.completions.create(model="tiny", messages=text_msgs, max_tokens=8, temperature=0)
            raw = raw_post(server.url, {"model": "tiny", "messages": text_msgs, "max_tokens": 8, "temperature": 0})
            check(r.object == "chat.completion" and r.id.startswith("chatcmpl-"), "plain: chat.completion object")
            check(r.choices[0].message.role == "assistant", "plain: assistant message")
            check(r.choices[0].message.content == raw["choices"][0]["message"]["content"],
                  f"plain: content {r.choices[0].message.content!r} equals the raw JSON's")
            check(r.choices[0].finish_reason == raw["choices"][0]["finish_reason"], "plain: finish_reason")
            check((r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens)
                  == (raw["usage"]["prompt_tokens"], raw["usage"]["completion_tokens"], raw["usage"]["total_tokens"]),
                  f"plain: usage {r.usage.prompt_tokens}+{r.usage.completion_tokens}")

            # ---- an image, as a data URL and as an allowed local file: the same pixels ------------
            def image_msgs(url):
                return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                     {"type": "text", "text": "What is it?"}]}]
            a = client.chat.completions.create(model="tiny", messages=image_msgs(data_url), max_tokens=8, temperature=0)
            b = client.chat.completions.create(model="tiny", messages=image_msgs("file://" + os.path.join(media, image)),
                                               max_tokens=8, temperature=0)
            check(a.usage.prompt_tokens > r.usage.prompt_tokens, f"image: {a.usage.prompt_tokens} prompt tokens "
                  f"(image tokens expanded) > {r.usage.prompt_tokens}")
            check((a.choices[0].message.content, a.usage.prompt_tokens) == (b.choices[0].message.content,
                                                                             b.usage.prompt_tokens),
                  "image: data URL and local file give the same completion")

            # ---- n = 2, seeded: two choices, reproducible ---------------------------------------
            kw = dict(model="tiny", messages=image_msgs(data_url), max_tokens=6, temperature=1.0, n=2, seed=11)
            n1, n2 = client.chat.completions.create(**kw), client.chat.completions.create(**kw)
            check([c.index for c in n1.choices] == [0, 1], "n=2: choices 0 and 1")
            check([c.message.content for c in n1.choices] == [c.message.content for c in n2.choices],
                  "n=2: the same seed gives the same completions")

            # ---- logprobs -----------------------------------------------------------------------
            lp = client.chat.completions.create(model="tiny", messages=text_msgs, max_tokens=5, temperature=0,
                                                logprobs=True, top_logprobs=2)
            content = lp.choices[0].logprobs.content
            check(len(content) == lp.usage.completion_tokens, f"logprobs: {len(content)} entries, one per token")
            check(all(len(t.top_logprobs) == 2 and t.logprob <= 0 and isinstance(t.bytes, list) for t in content),
                  "logprobs: token, logprob <= 0, bytes, 2 top_logprobs each")
            check(all(t.top_logprobs[0].logprob == t.logprob for t in content),
                  "logprobs: greedy tokens are their own top alternative")
            joined = b"".join(bytes(t.bytes) for t in content).decode("utf-8", errors="replace")
            check(joined.startswith(lp.choices[0].message.content), "logprobs: the tokens' bytes spell the content")

            # ---- streaming with usage ------------------------------------------------------------
            for kw in (dict(messages=image_msgs(data_url), temperature=0, n=1),
                       dict(messages=image_msgs(data_url), temperature=1.0, seed=11, n=2)):
                plain = client.chat.completions.create(model="tiny", max_tokens=6, **kw)
                stream = client.chat.completions.create(model="tiny", max_tokens=6, stream=True,
                                                        stream_options={"include_usage": True}, **kw)
                texts, finish, usage, roles, objects = {}, {}, None, 0, set()
                for chunk in stream:
                    objects.add(chunk.object)
                    if chunk.usage is not None:
                        usage = chunk.usage
                        check(chunk.choices == [], "stream: the usage chunk has no choices")
                    for c in chunk.choices:
                        roles += c.delta.role == "assistant"
                        texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
                        if c.finish_reason:
                            finish[c.index] = c.finish_reason
                n = kw["n"]
                check(objects == {"chat.completion.chunk"}, f"stream n={n}: chat.completion.chunk objects")
                check(roles == n, f"stream n={n}: one role delta per choice")
                check([texts[i] for i in range(n)] == [c.message.content for c in plain.choices],
                      f"stream n={n}: streamed text equals the non-streamed completions")
                check([finish[i] for i in range(n)] == [c.finish_reason for c in plain.choices],
                      f"stream n={n}: finish_reason in the last chunk of each choice")
                check(usage is not None and usage.total_tokens == plain.usage.total_tokens,
                      f"stream n={n}: include_usage gives the usage ({usage.total_tokens if usage else None})")

            # ---- errors as the client's exception types ----------------------------------------------
            expect_error(openai.BadRequestError, 400, lambda: client.chat.completions.create(
                model="tiny", messages=text_msgs, temperature=5), param="temperature")
            expect_error(openai.BadRequestError, 400, lambda: client.chat.completions.create(
                model="tiny", messages=image_msgs("https://example.com/a.png")),
                param="messages[0].content[0].image_url.url")
            expect_error(openai.BadRequestError, 400, lambda: client.chat.completions.create(
                model="tiny", messages=image_msgs("file:///etc/passwd")), param="messages[0].content[0].image_url.url")
            expect_error(openai.BadRequestError, 400, lambda: client.chat.completions.create(
                model="tiny", messages=text_msgs, top_logprobs=3), param="top_logprobs")
            expect_error(openai.BadRequestError, 400, lambda: client.chat.completions.create(
                model="tiny", messages=text_msgs, stream=True, max_tokens=1000), param="max_tokens")
            e = expect_error(openai.NotFoundError, 404, lambda: client.chat.completions.create(
                model="gpt-5", messages=text_msgs), param="model")
            check(e.code == "model_not_found", f"NotFoundError: code {e.code}")
            bad = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
            e = expect_error(openai.AuthenticationError, 401, lambda: bad.chat.completions.create(
                model="tiny", messages=text_msgs))
            check(e.code == "invalid_api_key", f"AuthenticationError: code {e.code}")
            check(client.models.list().data[0].id == "tiny", "the server still serves after the errors")
        finally:
            code = server.stop()
        check(code == 0, "the server exits cleanly on SIGTERM")


if __name__ == "__main__":
    main()

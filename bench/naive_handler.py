"""The baseline the performance issue names: a naive functions-framework + redis + openai handler.

No lock, no validation, no limits, no idempotency: only the work every such proxy must do
(read the history, call the model, store both messages). `make bench` runs it beside the proxy on
the same machine, with functions-framework's default threads, so the proxy's numbers can be read
against it whatever the machine's speed.
"""

import json
import os

import functions_framework
import redis
from openai import OpenAI

store = redis.Redis.from_url(os.environ["REDIS_URL"])
client = OpenAI(api_key=os.environ["GPT_API_KEY"], base_url=os.environ["OPENAI_BASE_URL"])


@functions_framework.http
def main(request):  # type: ignore[no-untyped-def]
    key = "naive:" + request.path.split("/")[1]
    history = [json.loads(m) for m in store.lrange(key, -20, -1)]
    user = {"role": "user", "content": request.get_json()["content"]}
    reply = client.chat.completions.create(
        model="gpt-4.1-mini", messages=[*history, user], max_tokens=500
    )
    answer = {"role": "assistant", "content": reply.choices[0].message.content}
    store.rpush(key, json.dumps(user), json.dumps(answer))
    return answer

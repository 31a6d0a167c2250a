#!/usr/bin/env python3
"""A refract external reward: shorter completions score higher (a template to copy).

Use it with `reward_funcs: ["external:python3 examples/rewards/length_reward.py"]`.
refract starts this once and keeps it running: one JSON request per line on stdin
({"prompts", "completions", "completion_ids", "solutions", "reward_methods", "extra",
"images"}), one reply per line on stdout ({"rewards": [float or null, ...]}, one per
completion; null = not applicable). Print logs to stderr, never to stdout.
"""
import json
import sys

TARGET_CHARS = 200

for line in sys.stdin:
    request = json.loads(line)
    rewards = []
    for completion in request["completions"]:
        if not completion:
            rewards.append(None)  # refract skips nulls when summing rewards
        else:
            rewards.append(max(0.0, 1.0 - len(completion) / TARGET_CHARS))
    print(json.dumps({"rewards": rewards}), flush=True)

#!/bin/bash
# Harbor verifier with several reward keys: reward.json holds every field's score and
# the overall "reward".
python3 - <<'PY'
import json

scores = {"orders": 0.0, "total": 0.0, "top_customer": 0.0}
try:
    report = json.load(open("/app/report.json"))
except Exception as exc:
    print("no readable report.json:", exc)
    report = {}
if report.get("orders") == 5:
    scores["orders"] = 1.0
if isinstance(report.get("total"), (int, float)) and abs(report["total"] - 44.5) < 1e-6:
    scores["total"] = 1.0
if report.get("top_customer") == "linus":  # linus 20.00 beats ada 15.50
    scores["top_customer"] = 1.0
scores["reward"] = sum(scores.values()) / 3
json.dump(scores, open("/logs/verifier/reward.json", "w"))
print(scores)
PY

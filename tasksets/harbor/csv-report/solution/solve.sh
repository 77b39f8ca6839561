#!/bin/bash
python3 - <<'PY'
import csv, json
from collections import defaultdict

rows = list(csv.DictReader(open("/app/data/orders.csv")))
per = defaultdict(float)
for r in rows:
    per[r["customer"]] += float(r["amount"])
json.dump({"orders": len(rows), "total": sum(float(r["amount"]) for r in rows),
           "top_customer": max(per, key=per.get)}, open("/app/report.json", "w"))
PY

#!/bin/bash
cat > greet.py <<'PY'
import os

print(os.environ["GREETING"] + ", world")
PY

#!/bin/bash
# reward.txt always says 0; reward.json, which Harbor reads first, has the verdict.
echo 0 > /logs/verifier/reward.txt
if [ "$(cat /app/out.txt 2>/dev/null)" = "$EXPECTED" ]; then
  echo '{"reward": 1}' > /logs/verifier/reward.json
else
  echo '{"reward": 0}' > /logs/verifier/reward.json
fi

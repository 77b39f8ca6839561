#!/bin/bash
# Harbor verifier: the scalar reward goes to /logs/verifier/reward.txt.
if [ "$(cat /app/greeting.txt 2>/dev/null)" = "Hello, Harbor!" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo "greeting.txt missing or wrong"
  echo 0 > /logs/verifier/reward.txt
fi

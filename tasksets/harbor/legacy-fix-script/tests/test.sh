#!/bin/bash
printf 'one two\nthree\nfour five six\n' > /tmp/sample.txt
if [ "$(bash /app/count_lines.sh /tmp/sample.txt | tr -d '[:space:]')" = "3" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi

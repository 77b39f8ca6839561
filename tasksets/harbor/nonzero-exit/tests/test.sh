#!/bin/bash
# Harbor ignores test.sh's exit status: the reward file is the verdict.
if [ -f /app/build/DONE ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
echo "exiting with status 3 on purpose" >&2
exit 3

#!/bin/bash
# A pytest-based verifier: the suite's exit status becomes the reward.
cd /tests
python3 -m pytest -q -p no:cacheprovider /tests/test_outputs.py -rA
if [ $? -eq 0 ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi

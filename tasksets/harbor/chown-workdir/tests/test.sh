#!/bin/bash
# The Dockerfile's WORKDIR is the cwd, its ENV is set, its COPYs are in place.
ok=1
[ "$(pwd)" = "/srv/project/src" ] || { echo "cwd is $(pwd)"; ok=0; }
[ -x /opt/tools/check.sh ] || { echo "/opt/tools/check.sh missing or not executable"; ok=0; }
out=$(/opt/tools/check.sh)
[ "$out" = "Hello, world" ] || { echo "greet.py printed: $out"; ok=0; }
echo $ok > /logs/verifier/reward.txt

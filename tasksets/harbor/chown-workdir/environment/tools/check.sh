#!/bin/bash
# Helper the image installs with COPY --chmod.
python3 "$APP_HOME/src/greet.py"

#!/bin/bash
mkdir -p /app/build && touch /app/build/DONE

#!/bin/bash
# Print the number of lines of the file given as $1.
wc -w < "$1"

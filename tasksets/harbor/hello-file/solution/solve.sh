#!/bin/bash
echo 'Hello, Harbor!' > greeting.txt

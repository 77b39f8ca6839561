import os

print(os.environ.get("GREETNG", "?") + " world")

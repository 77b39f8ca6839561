"""tasks.py imports the template from env.py and mints rows."""

from env import count

tasks = [
    count(word="strawberry", letter="r", given="3"),
    count(word="banana", letter="a", given="2"),
    count(word="kiwi", letter="i"),
]

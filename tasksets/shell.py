"""Shell tasks in an isolated ssh workspace: each seeds files, prompts, and grades the
world the agent leaves behind with ``BashGrader`` run inside the same sandbox.

    hud-ray eval tasksets/shell.py oracle --group-size 2    # every row 1.0
    hud-ray eval tasksets/shell.py nop                      # every row 0.0
"""

from pathlib import Path

from hud_ray import Environment
from hud_ray.graders import BashGrader, combine, numeric_match
from hud_ray.graders.results import SubScore

env = Environment(name="shell")

FILES = {
    "broken/greet.sh": "#!/bin/bash\n# Print a greeting for the name given as $1\nname=$1\n"
                       "echo \"Hello, $nme!\"\n",
    "data/sales.csv": "region,product,units\nnorth,apple,12\nsouth,apple,7\nnorth,pear,3\n"
                      "east,apple,5\nsouth,pear,11\neast,pear,2\n",
    "logs/app.log": "".join(
        f"2026-11-0{d} 12:0{m}:00 INFO request id={d}{m} took {d * 10 + m}ms\n"
        for d in range(1, 6) for m in range(0, 6))
        + "2026-11-04 13:37:00 ERROR payment failed order=88412 code=E_CARD_DECLINED\n"
        + "2026-11-05 09:00:00 WARN slow disk\n",
}


async def _seed(path: Path) -> None:
    for rel, content in FILES.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    (path / "broken/greet.sh").chmod(0o755)


env.workspace(setup=_seed)


@env.template(description="Fix a shell script with a typo.")
async def fix_script(name: str = "Ada"):
    yield ("The script broken/greet.sh should print 'Hello, NAME!' for the name given as its "
           f"first argument, but it is broken. Fix it in place so `./broken/greet.sh {name}` "
           f"prints exactly 'Hello, {name}!'.")
    result = await BashGrader.grade(
        command=f'test "$(./broken/greet.sh {name})" = "Hello, {name}!"')
    yield result.value


@fix_script.solution
async def _fix_script(name: str = "Ada", *, ctx):
    shell = await ctx.connect("shell")
    await shell.run("sed -i 's/\\$nme/$name/' broken/greet.sh")


@env.template(description="Aggregate a CSV file.")
async def sum_by_product(product: str = "apple"):
    yield (f"data/sales.csv lists units sold per region and product. Write the total units of "
           f"'{product}' to a file named total_{product}.txt (just the number).")
    expected = sum(int(line.split(",")[2]) for line in FILES["data/sales.csv"].splitlines()[1:]
                   if line.split(",")[1] == product)
    result = await BashGrader.grade(command=f'test "$(tr -d "[:space:]" < total_{product}.txt)" '
                                            f'= "{expected}"')
    yield result.value


@sum_by_product.solution
async def _sum_by_product(product: str = "apple", *, ctx):
    shell = await ctx.connect("shell")
    await shell.run(f"awk -F, '$2==\"{product}\" {{s+=$3}} END {{print s}}' data/sales.csv "
                    f"> total_{product}.txt")


@env.template(description="Find a value in a log file.")
async def find_failed_order():
    answer = yield ("Somewhere under logs/ a payment failed. Reply with just the order number "
                    "of the failed payment.")
    yield numeric_match(answer, 88412)


@find_failed_order.solution
async def _find_failed_order(*, ctx):
    shell = await ctx.connect("shell")
    result = await shell.run("grep -rh 'payment failed' logs | sed 's/.*order=\\([0-9]*\\).*/\\1/'")
    return result.stdout.strip()


@env.template(description="Write a small program that a test checks.")
async def write_fizzbuzz(n: int = 15):
    yield (f"Write a Python program fizzbuzz.py that prints the FizzBuzz sequence from 1 to "
           f"{n}, one item per line ('Fizz' for multiples of 3, 'Buzz' for 5, 'FizzBuzz' "
           "for both, the number otherwise).")
    expected = "\\n".join("FizzBuzz" if i % 15 == 0 else "Fizz" if i % 3 == 0 else
                          "Buzz" if i % 5 == 0 else str(i) for i in range(1, n + 1))
    result = await BashGrader.grade(
        command=f'test "$(python3 fizzbuzz.py)" = "$(printf "{expected}")"')
    yield result.value


@write_fizzbuzz.solution
async def _write_fizzbuzz(n: int = 15, *, ctx):
    shell = await ctx.connect("shell")
    await shell.write_file("fizzbuzz.py", (
        f"for i in range(1, {n} + 1):\n"
        "    print('FizzBuzz' if i % 15 == 0 else 'Fizz' if i % 3 == 0 else "
        "'Buzz' if i % 5 == 0 else i)\n"))


@env.template(description="A multi-step task: build, run in the background, report.")
async def service_report():
    yield ("1) Create a directory out/ and a script out/serve.sh that writes the line 'ready' "
           "to out/status every second, forever. 2) Start it in the background so it keeps "
           "running after your command returns. 3) Write the number of lines of "
           "data/sales.csv (header included) to out/lines.txt.")
    # The one check that needs the agent's background service alive opts in to keeping
    # the agent's processes; the next grade kills them (the default).
    running = await BashGrader.grade(name="running", weight=0.5, keep_processes=True,
                                     command="sleep 1.5; test -s out/status && "
                                             "pgrep -f out/serve.sh >/dev/null")
    lines = await BashGrader.grade(name="lines", weight=0.5,
                                   command='test "$(tr -d "[:space:]" < out/lines.txt)" = 7')
    yield await combine(SubScore(**{**running.model_dump(), "info": None}),
                        SubScore(**{**lines.model_dump(), "info": None}))


@service_report.solution
async def _service_report(*, ctx):
    shell = await ctx.connect("shell")
    await shell.run("mkdir -p out && printf '#!/bin/bash\\nwhile true; do echo ready >> "
                    "out/status; sleep 1; done\\n' > out/serve.sh && chmod +x out/serve.sh")
    await shell.run("nohup ./out/serve.sh > /dev/null 2>&1 &")
    await shell.run("wc -l < data/sales.csv > out/lines.txt")


tasks = [fix_script(name="Ada"), fix_script(name="Grace"), sum_by_product(product="apple"),
         sum_by_product(product="pear"), find_failed_order(), write_fizzbuzz(n=15),
         service_report()]

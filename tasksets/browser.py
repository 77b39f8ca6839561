"""Web tasks in a real headless Chromium: a small shop/intranet app served per rollout.

Every rollout gets a fresh browser context and its own copy of the app's state; the
agent drives the page over ``cdp/1.3`` (browser tools, or Playwright in a solution) and
the grader reads the app's server-side state and the page's DOM. Needs
``hud-ray[browser]`` and Debian's ``chromium``.
"""

from __future__ import annotations

from typing import Any

from hud_ray import Environment
from hud_ray.capabilities.webapp import Request, WebApp, escape
from hud_ray.env import current_session
from hud_ray.graders import exact_match

env = Environment(name="browser")
app = WebApp()

PRODUCTS = {"lamp": ("Desk lamp", 24), "mug": ("Coffee mug", 9), "chair": ("Office chair", 129)}
CITIES = {"Oslo": ("Norway", 709_000), "Porto": ("Portugal", 232_000),
          "Quito": ("Ecuador", 2_800_000)}
PEOPLE = [("Ada Byron", "Research", "ada@example.test"),
          ("Alan Turing", "Security", "alan@example.test"),
          ("Grace Hopper", "Compilers", "grace@example.test"),
          ("Edsger Dijkstra", "Algorithms", "edsger@example.test")]


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><title>{escape(title)}</title></head>"
            f"<body><h1>{escape(title)}</h1>{body}</body></html>")


# ---- the app -----------------------------------------------------------------------------
@app.page("/")
async def home(req: Request) -> str:
    return page("Intranet", "<ul><li><a href='signup'>Sign up</a></li>"
                "<li><a href='wiki'>City wiki</a></li><li><a href='shop'>Shop</a></li>"
                "<li><a href='people'>People</a></li><li><a href='codes'>Codes</a></li></ul>")


@app.page("/signup")
async def signup(req: Request) -> str:
    if req.method == "POST":
        req.state["signup"] = {k: req.form.get(k, "") for k in ("name", "email", "plan")}
        return page("Welcome", f"<p id='done'>Thanks, {escape(req.form.get('name', ''))}!</p>")
    return page("Sign up", "<form method='post'>"
                "<label for='name'>Name</label><input id='name' name='name'>"
                "<label for='email'>Email</label><input id='email' name='email'>"
                "<label for='plan'>Plan</label><select id='plan' name='plan'>"
                "<option value='free'>Free</option><option value='pro'>Pro</option>"
                "<option value='team'>Team</option></select>"
                "<button id='submit' type='submit'>Create account</button></form>")


@app.page("/wiki")
async def wiki(req: Request) -> str:
    links = "".join(f"<li><a href='city?name={c}'>{c}</a></li>" for c in CITIES)
    return page("City wiki", f"<ul>{links}</ul>")


@app.page("/city")
async def city(req: Request) -> str:
    name = req.query.get("name", "")
    if name not in CITIES:
        return 404, page("No such city", "")
    return page(name, f"<p>{name} is a city in {CITIES[name][0]}.</p>"
                f"<a href='facts?name={name}'>Facts and figures</a>")


@app.page("/facts")
async def facts(req: Request) -> str:
    name = req.query.get("name", "")
    if name not in CITIES:
        return 404, page("No such city", "")
    return page(f"{name}: facts", f"<p>Population: <b id='pop'>{CITIES[name][1]}</b></p>")


@app.page("/shop")
async def shop(req: Request) -> str:
    cart = req.state.setdefault("cart", [])
    if req.method == "POST" and req.form.get("item") in PRODUCTS:
        cart.append(req.form["item"])
    rows = "".join(f"<li>{escape(n)} (${p}) <form method='post' style='display:inline'>"
                   f"<input type='hidden' name='item' value='{k}'>"
                   f"<button id='add-{k}' type='submit'>Add {escape(n)}</button></form></li>"
                   for k, (n, p) in PRODUCTS.items())
    return page("Shop", f"<ul>{rows}</ul><p>Cart: <span id='cart'>{len(cart)}</span> item(s)"
                "</p><a id='checkout' href='checkout'>Checkout</a>")


@app.page("/checkout")
async def checkout(req: Request) -> str:
    cart = req.state.get("cart", [])
    if not cart:
        return page("Checkout", "<p>Your cart is empty.</p>")
    if req.method == "POST":
        req.state.setdefault("orders", []).append(
            {"items": sorted(cart), "address": req.form.get("address", "")})
        req.state["cart"] = []
        return "redirect:done"
    items = "".join(f"<li>{escape(PRODUCTS[i][0])}</li>" for i in cart)
    return page("Checkout", f"<ul>{items}</ul><form method='post'><label for='address'>"
                "Address</label><input id='address' name='address'>"
                "<button id='pay' type='submit'>Place order</button></form>")


@app.page("/done")
async def done(req: Request) -> str:
    return page("Order placed", "<p id='status'>Order confirmed</p>")


@app.page("/people")
async def people(req: Request) -> str:
    rows = "".join(f"<tr><td>{n}</td><td>{d}</td><td>{e}</td></tr>" for n, d, e in PEOPLE)
    return page("People", "<table id='people'><tr><th>Name</th><th>Team</th><th>Email</th>"
                f"</tr>{rows}</table>")


@app.page("/codes")
async def codes(req: Request) -> str:
    return page("Codes", "<div class='ad'><p>Sponsored: use code <b>AD-0000</b> for a free "
                "gift!</p></div><p>Your invite code is <b id='invite'>INV-7342</b>.</p>"
                "<p>An expired code: <b>INV-1111</b> (expired).</p>")


env.browser(app=app)


def _browser() -> Any:
    session = current_session()
    assert session is not None
    return session.resource("browser")


def _intro() -> str:
    return (f"Use the browser. The intranet is at {_browser().app_url} "
            "(open it with browser_navigate).")


# ---- templates ---------------------------------------------------------------------------
@env.template(description="Fill in and submit a sign-up form.")
async def signup_form(name: str = "Ada", email: str = "ada@example.test", plan: str = "pro"):
    yield (f"{_intro()} Sign up with name {name!r}, email {email!r} and the {plan!r} plan, "
           "then submit the form. Reply 'done' when finished.")
    yield 1.0 if _browser().state.get("signup") == {"name": name, "email": email,
                                                     "plan": plan} else 0.0


@signup_form.solution
async def _signup(name: str, email: str, plan: str, ctx: Any) -> str:
    pg = (await ctx.connect("browser")).page
    await pg.goto(_browser().app_url + "signup")
    await pg.fill("#name", name)
    await pg.fill("#email", email)
    await pg.select_option("#plan", plan)
    await pg.click("#submit")
    await pg.wait_for_selector("#done")
    return "done"


@env.template(description="Find a fact two pages deep.")
async def city_population(city: str = "Porto"):
    answer = yield (f"{_intro()} Using the City wiki, find the population of {city}. "
                    "Reply with just the number, digits only.")
    yield exact_match(answer, str(CITIES[city][1]))


@city_population.solution
async def _population(city: str, ctx: Any) -> str:
    pg = (await ctx.connect("browser")).page
    await pg.goto(_browser().app_url + "wiki")
    await pg.click(f"text={city}")
    await pg.click("text=Facts and figures")
    return (await pg.inner_text("#pop")).strip()


@env.template(description="Add items to the cart and check out.")
async def checkout_order(items: str = "lamp,mug", address: str = "1 Main St"):
    wanted = sorted(items.split(","))
    names = ", ".join(PRODUCTS[i][0] for i in wanted)
    yield (f"{_intro()} In the Shop, buy exactly these items: {names}. Check out with the "
           f"address {address!r} and place the order. Reply 'done' when finished.")
    browser = _browser()
    orders = browser.state.get("orders", [])
    ok = orders == [{"items": wanted, "address": address}]
    shown = ok and await browser.on_app() and await browser.text("#status") == "Order confirmed"
    yield 1.0 if shown else 0.0


@checkout_order.solution
async def _checkout(items: str, address: str, ctx: Any) -> str:
    pg = (await ctx.connect("browser")).page
    await pg.goto(_browser().app_url + "shop")
    for item in items.split(","):
        await pg.click(f"#add-{item}")
        await pg.wait_for_load_state("load")
    await pg.click("#checkout")
    await pg.fill("#address", address)
    await pg.click("#pay")
    await pg.wait_for_selector("#status")
    return "done"


@env.template(description="Look a value up in a table.")
async def team_lookup(person: str = "Grace Hopper"):
    answer = yield (f"{_intro()} On the People page, which team is {person} in? "
                    "Reply with just the team name.")
    yield exact_match(answer, next(d for n, d, _ in PEOPLE if n == person))


@team_lookup.solution
async def _team(person: str, ctx: Any) -> str:
    pg = (await ctx.connect("browser")).page
    await pg.goto(_browser().app_url + "people")
    return (await pg.inner_text(f"#people tr:has-text('{person}') td:nth-child(2)")).strip()


@env.template(description="Find the real code among distractors.")
async def invite_code():
    answer = yield (f"{_intro()} On the Codes page, what is your current (valid) invite "
                    "code? Ignore ads. Reply with just the code.")
    yield exact_match(answer, "INV-7342")


@invite_code.solution
async def _invite(ctx: Any) -> str:
    pg = (await ctx.connect("browser")).page
    await pg.goto(_browser().app_url + "codes")
    return (await pg.inner_text("#invite")).strip()


tasks = [signup_form(), signup_form(name="Linus", email="linus@example.test", plan="team"),
         city_population(), city_population(city="Quito"), checkout_order(),
         checkout_order(items="chair", address="9 Elm Rd"), team_lookup(),
         team_lookup(person="Alan Turing"), invite_code()]

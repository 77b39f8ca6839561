"""The verifier row's grade is the grade of record."""

from env import audit, solve

plain = solve(target="ok", given="ok")
checked = solve(target="yes", given="yes")
checked.verifier = audit(strict=True)
checked_wrong = solve(target="yes", given="no")
checked_wrong.verifier = audit()
lenient = solve(target="fine", given="fine")
lenient.verifier = audit()

tasks = [plain, checked, checked_wrong, lenient]

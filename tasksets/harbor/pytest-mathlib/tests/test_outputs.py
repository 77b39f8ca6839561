import sys

sys.path.insert(0, "/app")

from mathlib import gcd, is_prime  # noqa: E402


def test_gcd():
    assert gcd(12, 18) == 6
    assert gcd(7, 0) == 7
    assert gcd(0, 0) == 0


def test_is_prime():
    assert [n for n in range(-3, 30) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]

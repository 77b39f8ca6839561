def gcd(a: int, b: int) -> int:
    raise NotImplementedError


def is_prime(n: int) -> bool:
    raise NotImplementedError

"""Ray placement: thin ``@ray.remote`` shells around hud_ray's plain async classes."""

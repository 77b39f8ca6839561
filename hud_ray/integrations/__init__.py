"""Integrations with other task formats (``hud_ray.integrations.harbor``)."""

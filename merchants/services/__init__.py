"""Every write of ``merchants`` (a package from here on; split along its seams next)."""

from merchants.services.money import *  # noqa: F403

"""Every write of ``incidents`` (a package from here on; split along its seams next)."""

from incidents.services.incidents import *  # noqa: F403
from incidents.services.incidents import __all__  # noqa: F401

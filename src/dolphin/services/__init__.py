"""Long-running services (DESIGN.md "The live system"): each one is a ``Component``.

Services depend on ``dolphin.core`` and on ports; ``dolphin.bootstrap`` wires them to adapters.
"""

from dolphin.services.component import Component, ComponentState, ComponentStateError

__all__ = ["Component", "ComponentState", "ComponentStateError"]

from tests.api.conftest import api, demo

__all__ = ["api", "demo"]

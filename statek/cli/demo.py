"""PLACEHOLDER: `statek demo`."""


def demo() -> None:
    """Run the demo (not built yet)."""

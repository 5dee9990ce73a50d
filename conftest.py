# Makes the checkout importable in tests without an install step.

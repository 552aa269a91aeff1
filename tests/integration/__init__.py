"""The integration tier: the real torch venvs, copied and broken as users break them (--integration)."""

"""API tests share the demo world (tests/world.py)."""

from tests.world import World, assert_ledgers_balanced, ledger_state

__all__ = ["World", "assert_ledgers_balanced", "ledger_state"]

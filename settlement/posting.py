"""Booking a flow's postings: all of them, or the flow fails.

Payout runs and bank statements post many entries at once on accounts
without limits, so the ledger refusing one means the books were changed
behind our back (or a bug). Then nothing may be half-booked: the first
refusal raises 409 ``ledger_refused`` and the caller's transaction rolls
back. Voucher flows do not use this: their refusals are the answer
(``voucher_balance_insufficient``, ...), see ``settlement.vouchers.flows``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.engine import apply_batch
from ledger.model import MAX_BATCH_ENTRIES, EntryResult, EntrySpec
from settlement.errors import Conflict


async def post_all(conn: Any, entries: Sequence[EntrySpec], what: str) -> list[EntryResult]:
    """Apply ``entries`` in engine-sized batches inside the caller's transaction.

    ``what`` names the postings in the error ("a payout posting").
    """
    out: list[EntryResult] = []
    for i in range(0, len(entries), MAX_BATCH_ENTRIES):
        results = await apply_batch(conn, entries[i : i + MAX_BATCH_ENTRIES])
        bad = next((r for r in results if not r.accepted), None)
        if bad is not None:
            raise Conflict(f"the ledger refused {what}: {bad.result}", code="ledger_refused")
        out.extend(results)
    return out

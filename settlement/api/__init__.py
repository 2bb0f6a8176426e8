"""HTTP route handlers: thin controllers that decode, authorise, call one flow, encode."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from settlement.state import AppState

StartupHook = Callable[[AppState], Awaitable[Callable[[], Awaitable[None]] | None]]


def route_handlers() -> list[Any]:
    from settlement.api.books import BooksController
    from settlement.api.health import HealthController
    from settlement.api.orgs import OrganisationController
    from settlement.api.payouts import PayoutController
    from settlement.api.sponsors import SponsorController
    from settlement.api.statements import StatementController
    from settlement.api.suppliers import SupplierController
    from settlement.api.vouchers import VoucherController

    return [
        BooksController,
        HealthController,
        OrganisationController,
        PayoutController,
        SponsorController,
        StatementController,
        SupplierController,
        VoucherController,
    ]


def startup_hooks() -> list[StartupHook]:
    """Background tasks started with the app (each returns its stopper)."""
    from settlement.jobs import start_hold_expiry, start_payout_schedules, start_rollups

    return [start_hold_expiry, start_payout_schedules, start_rollups]

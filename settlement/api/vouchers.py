"""Vouchers, reservations, redemptions and refunds."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter

from settlement.api.deps import ACTOR, Api, decode_cursor, encode_cursor
from settlement.auth import Actor, require
from settlement.errors import ValidationFailed
from settlement.state import AppState
from settlement.tx import in_transaction, write
from settlement.vouchers import flows

Cents = Annotated[int, msgspec.Meta(gt=0, le=10**13, description="euro cents")]
Text200 = Annotated[str, msgspec.Meta(max_length=200)]


class ShareIn(Api):
    fund_id: int
    bp: Annotated[int, msgspec.Meta(ge=1, le=10_000, description="basis points; shares sum to 10,000")] = 10_000


class VoucherIn(Api):
    amount: Cents
    beneficiary_ref: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=100,
            description="opaque pseudonymous reference, never a name; one holding a BSN "
            "or an email address is refused (beneficiary_ref_personal_data)",
        ),
    ]
    fund_id: int | None = None
    shares: list[ShareIn] | None = None
    valid_until: date | None = None

    def to_request(self) -> flows.VoucherRequest:
        return _to_request(self)


class BulkShareIn(Api):
    fund_id: int
    bp: int = 10_000


class BulkVoucherIn(Api):
    """An item of a bulk issue: amounts, basis points and the reference are checked
    per item (issue_vouchers), so one bad row fails on its own rule, not the request."""

    amount: int
    beneficiary_ref: str
    fund_id: int | None = None
    shares: list[BulkShareIn] | None = None
    valid_until: date | None = None

    def to_request(self) -> flows.VoucherRequest:
        return _to_request(self)


def _to_request(item: VoucherIn | BulkVoucherIn) -> flows.VoucherRequest:
    if (item.fund_id is None) == (item.shares is None):
        raise ValidationFailed(
            "give either fund_id or shares",
            code="shares_invalid",
            errors=[{"field": "shares", "message": "give either fund_id or shares"}],
        )
    shares = (
        [flows.ShareRequest(fund_id=item.fund_id)]
        if item.fund_id is not None
        else [flows.ShareRequest(fund_id=s.fund_id, bp=s.bp) for s in item.shares or []]
    )
    return flows.VoucherRequest(
        amount=item.amount,
        beneficiary_ref=item.beneficiary_ref,
        shares=shares,
        valid_until=item.valid_until,
    )


class BulkIn(Api):
    items: Annotated[list[BulkVoucherIn], msgspec.Meta(min_length=1, max_length=flows.MAX_BULK_VOUCHERS)]


class ReserveIn(Api):
    voucher_code: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    amount: Cents
    description: Text200


class RedeemIn(Api):
    reference: Annotated[str, msgspec.Meta(max_length=35, description="your own reference, e.g. receipt number")]
    amount: Cents | None = None
    description: Text200 | None = None


class DirectRedeemIn(Api):
    voucher_code: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    amount: Cents
    reference: Annotated[str, msgspec.Meta(max_length=35)]
    description: Text200


class RefundIn(Api):
    amount: Cents
    reason: Text200


class RedemptionPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[flows.Redemption]
    next_cursor: str | None


class VoucherController(Controller):
    path = "/v1"
    tags = ["vouchers"]  # noqa: RUF012
    dependencies = ACTOR

    @post(
        "/vouchers",
        summary="Issue a voucher (validator or sponsor finance)",
        description="Give fund_id, or shares [{fund_id, bp}] for co-funding (basis points sum to 10,000). Shares whose "
        "funds allow no supplier category in common are refused (422 fund_categories_disjoint).",
    )
    async def issue(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        data: VoucherIn,
    ) -> Response[flows.Voucher]:
        require(actor, "validator", "sponsor_finance")
        req = data.to_request()

        async def flow(conn: Any) -> flows.Voucher:
            result = await flows.issue_vouchers(conn, actor, [req])
            item = result.results[0]
            if not item.ok:
                raise _item_error(item)
            assert item.voucher_id is not None
            return await flows.get_voucher(conn, actor, voucher_id=item.voucher_id)

        return await write(request, app_state.pool, actor, data, flow)

    @post(
        "/vouchers/bulk",
        summary="Issue many vouchers; a result per item",
        description="Items as for POST /v1/vouchers. Each item is issued or fails on its own rule (error), also for "
        "an amount that is not positive or above the fund's cap, basis points that do not sum to 10,000, or an "
        "empty or over-long beneficiary_ref; only a body that is not a list of such items is refused as a whole.",
        status_code=200,
    )
    async def bulk(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        data: BulkIn,
    ) -> Response[flows.BulkResult]:
        require(actor, "validator", "sponsor_finance")
        reqs: list[flows.VoucherRequest] = []
        errors: dict[int, flows.BulkItemResult] = {}
        for i, item in enumerate(data.items):
            try:
                reqs.append(item.to_request())
            except ValidationFailed as exc:
                errors[i] = flows.BulkItemResult(index=i, ok=False, error=exc.code, detail=exc.detail)

        async def flow(conn: Any) -> flows.BulkResult:
            valid_index = [i for i in range(len(data.items)) if i not in errors]
            result = await flows.issue_vouchers(conn, actor, reqs)
            merged = dict(errors)
            for pos, r in zip(valid_index, result.results, strict=True):
                merged[pos] = msgspec.structs.replace(r, index=pos)
            items = [merged[i] for i in range(len(data.items))]
            ok = sum(1 for r in items if r.ok)
            return flows.BulkResult(issued=ok, failed=len(items) - ok, results=items)

        return await write(request, app_state.pool, actor, data, flow, status=200)

    @get("/vouchers/{voucher_id:uuid}", summary="A voucher with its balance and shares")
    async def show(self, actor: Actor, app_state: NamedDependency[AppState], voucher_id: uuid.UUID) -> flows.Voucher:
        out: flows.Voucher = await in_transaction(
            app_state.pool, lambda conn: flows.get_voucher(conn, actor, voucher_id=voucher_id)
        )
        return out

    @get(
        "/vouchers/by-code/{code:str}",
        summary="Look a voucher up by its code (what a supplier sees)",
        description="Suppliers see balance and validity, never the beneficiary reference.",
    )
    async def by_code(self, actor: Actor, app_state: NamedDependency[AppState], code: str) -> flows.Voucher:
        out: flows.Voucher = await in_transaction(
            app_state.pool, lambda conn: flows.get_voucher(conn, actor, code=code)
        )
        return out

    @get(
        "/vouchers/{voucher_id:uuid}/history",
        summary="Every ledger movement of a voucher",
        description="amount: + into the voucher, - out of it. A reservation's hold (kind pending) is -, its release "
        "(void_pending, expire_pending) +; post_pending is what was spent of the hold. The posted kinds (posted, "
        "post_pending) add up to the voucher's balance.",
    )
    async def history(
        self, actor: Actor, app_state: NamedDependency[AppState], voucher_id: uuid.UUID
    ) -> list[flows.HistoryLine]:
        out: list[flows.HistoryLine] = await in_transaction(
            app_state.pool, lambda conn: flows.voucher_history(conn, actor, voucher_id)
        )
        return out

    @post(
        "/vouchers/{voucher_id:uuid}/withdraw",
        summary="Withdraw a voucher; unspent money returns to the fund",
        status_code=200,
    )
    async def withdraw(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        voucher_id: uuid.UUID,
    ) -> Response[flows.Voucher]:
        require(actor, "sponsor_finance", "validator")
        return await write(
            request,
            app_state.pool,
            actor,
            {"voucher": str(voucher_id)},
            lambda conn: flows.withdraw(conn, actor, voucher_id),
            status=200,
        )

    @post(
        "/reservations",
        summary="Hold an amount on a voucher (supplier)",
        description="The hold expires after the fund's reservation expiry; redeem it for the actual price.",
    )
    async def reserve(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        data: ReserveIn,
    ) -> Response[flows.Reservation]:
        require(actor, "supplier")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.reserve(conn, actor, data.voucher_code, data.amount, data.description),
        )

    @get("/reservations/{reservation_id:uuid}", summary="A reservation")
    async def reservation(
        self, actor: Actor, app_state: NamedDependency[AppState], reservation_id: uuid.UUID
    ) -> flows.Reservation:
        out: flows.Reservation = await in_transaction(
            app_state.pool, lambda conn: flows.get_reservation(conn, actor, reservation_id)
        )
        return out

    @post("/reservations/{reservation_id:uuid}/redeem", summary="Redeem a reservation, in full or for less")
    async def redeem(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        reservation_id: uuid.UUID,
        data: RedeemIn,
    ) -> Response[flows.Redemption]:
        require(actor, "supplier")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.redeem_reservation(
                conn, actor, reservation_id, data.amount, data.reference, data.description
            ),
        )

    @post(
        "/reservations/{reservation_id:uuid}/cancel",
        summary="Cancel a reservation (supplier or sponsor)",
        status_code=200,
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        reservation_id: uuid.UUID,
    ) -> Response[flows.Reservation]:
        return await write(
            request,
            app_state.pool,
            actor,
            {"reservation": str(reservation_id)},
            lambda conn: flows.cancel_reservation(conn, actor, reservation_id),
            status=200,
        )

    @post("/redemptions", summary="Redeem at the counter, without a reservation (supplier)")
    async def redeem_direct(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        data: DirectRedeemIn,
    ) -> Response[flows.Redemption]:
        require(actor, "supplier")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.redeem_direct(
                conn, actor, data.voucher_code, data.amount, data.reference, data.description
            ),
        )

    @get(
        "/redemptions",
        summary="Redemptions with payment status, newest first",
        description="A supplier sees its own (open, in_payout, paid, partly_paid, or refunded: refunded in full "
        "before it was paid, so nothing is owed; and in which payment); a sponsor those it "
        "pays for. Filter by created time with since/until; page with next_cursor.",
    )
    async def redemptions(
        self,
        actor: Actor,
        app_state: NamedDependency[AppState],
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> RedemptionPage:
        after = decode_cursor(cursor)
        items: list[flows.Redemption] = await in_transaction(
            app_state.pool,
            lambda conn: flows.list_redemptions(conn, actor, since=since, until=until, cursor=after, limit=limit),
        )
        nxt = encode_cursor(items[-1].created_at, items[-1].id) if len(items) == limit else None
        return RedemptionPage(items=items, next_cursor=nxt)

    @get("/redemptions/{redemption_id:uuid}", summary="One redemption with its payment status")
    async def redemption(
        self, actor: Actor, app_state: NamedDependency[AppState], redemption_id: uuid.UUID
    ) -> flows.Redemption:
        out: flows.Redemption = await in_transaction(
            app_state.pool, lambda conn: flows.get_redemption(conn, actor, redemption_id)
        )
        return out

    @post(
        "/redemptions/{redemption_id:uuid}/refunds",
        summary="Refund (part of) a redemption (supplier)",
        description="After payout the supplier's payable goes negative and is netted in its next payout.",
    )
    async def refund(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        app_state: NamedDependency[AppState],
        redemption_id: uuid.UUID,
        data: RefundIn,
    ) -> Response[flows.Refund]:
        require(actor, "supplier")
        return await write(
            request,
            app_state.pool,
            actor,
            data,
            lambda conn: flows.refund(conn, actor, redemption_id, data.amount, data.reason),
        )


def _item_error(item: flows.BulkItemResult) -> Exception:
    from settlement.errors import Conflict, InsufficientFunds, NotFound, SettlementError

    code = item.error or "voucher_refused"
    detail = item.detail or code
    cls: type[SettlementError] = {
        "fund_budget_insufficient": InsufficientFunds,
        "fund_not_found": NotFound,
        "amount_exceeds_cap": ValidationFailed,
        "amount_must_be_positive": ValidationFailed,
        "shares_must_sum_to_10000": ValidationFailed,
        "shares_invalid": ValidationFailed,
        "beneficiary_ref_invalid": ValidationFailed,
        "beneficiary_ref_personal_data": ValidationFailed,
        "valid_until_invalid": ValidationFailed,
        "fund_categories_disjoint": ValidationFailed,
    }.get(code, Conflict)
    if code == "not_authorised_for_fund":
        from settlement.errors import Forbidden

        cls = Forbidden
    return cls(detail, code=code)

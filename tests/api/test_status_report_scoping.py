"""pain.002 against the file it answers: statuses per group, payment block and
transaction, the report's own counts, and reports that come twice or late.

The file here has two payment blocks: an instant run where one payment is
above the SCT Inst maximum goes out as one instant block (bike shop, clothing
bank) and one regular block (the sports club).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from ledger.money import format_decimal
from sepa import CreditTransferFile, read_pain001
from sepa.rules import INSTANT_MAX_CENTS
from settlement import db
from tests.api.test_payouts_api import account_balance, approve, download, export, new_run
from tests.world import World, assert_ledgers_balanced, ledger_state


@dataclass
class Tx:
    e2e: str | None
    status: str | None
    reason: str | None = None
    amount: int | None = None
    instr_id: str | None = None


@dataclass
class Block:
    pmt_inf_id: str
    status: str | None = None
    reason: str | None = None
    count: int | None = None
    ctrl_sum: int | None = None
    txs: list[Tx] = field(default_factory=list)


def report(
    file: CreditTransferFile,
    msg_id: str,
    group_status: str | None,
    blocks: list[Block] = (),  # type: ignore[assignment]
    *,
    count: int | None = None,
    ctrl_sum: int | None = None,
    group_reason: str | None = None,
) -> bytes:
    """A pain.002.001.10 written by hand, so a test controls every status and count."""

    def reason(code: str | None) -> str:
        return "" if code is None else f"<StsRsnInf><Rsn><Cd>{code}</Cd></Rsn></StsRsnInf>"

    def opt(tag: str, value: Any) -> str:
        return "" if value is None else f"<{tag}>{value}</{tag}>"

    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>',
        f"<GrpHdr><MsgId>{msg_id}</MsgId><CreDtTm>2026-11-24T08:00:00+00:00</CreDtTm></GrpHdr>",
        f"<OrgnlGrpInfAndSts><OrgnlMsgId>{file.msg_id}</OrgnlMsgId><OrgnlMsgNmId>{file.version}</OrgnlMsgNmId>",
        opt("OrgnlNbOfTxs", count),
        opt("OrgnlCtrlSum", None if ctrl_sum is None else format_decimal(ctrl_sum)),
        opt("GrpSts", group_status),
        reason(group_reason),
        "</OrgnlGrpInfAndSts>",
    ]
    for b in blocks:
        parts += [
            f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{b.pmt_inf_id}</OrgnlPmtInfId>",
            opt("OrgnlNbOfTxs", b.count),
            opt("OrgnlCtrlSum", None if b.ctrl_sum is None else format_decimal(b.ctrl_sum)),
            opt("PmtInfSts", b.status),
            reason(b.reason),
        ]
        for t in b.txs:
            parts += [
                "<TxInfAndSts>",
                opt("OrgnlInstrId", t.instr_id),
                opt("OrgnlEndToEndId", t.e2e),
                opt("TxSts", t.status),
                reason(t.reason),
                ""
                if t.amount is None
                else f'<OrgnlTxRef><Amt><InstdAmt Ccy="EUR">{format_decimal(t.amount)}</InstdAmt></Amt></OrgnlTxRef>',
                "</TxInfAndSts>",
            ]
        parts.append("</OrgnlPmtInfAndSts>")
    parts.append("</CstmrPmtStsRpt></Document>")
    return "".join(parts).encode()


async def two_block_file(client: Any, world: World, db_dsn: str) -> tuple[dict[str, Any], CreditTransferFile]:
    conn = await db.connect(db_dsn)
    try:
        # the club is owed more than SCT Inst carries: its payment goes regular
        await conn.execute(
            "UPDATE payable_lines SET amount = amount + $2 WHERE id = (SELECT min(id) FROM payable_lines "
            "WHERE supplier_id = $1 AND sponsor_id = $3)",
            world.ids["sports_club"],
            INSTANT_MAX_CENTS,
            world.ids["gemeente"],
        )
    finally:
        await conn.close()
    run = await new_run(client, world, instant=True)
    run = await export(client, world, (await approve(client, world, run["id"]))["id"])
    (data,) = await download(client, world, run)
    file = read_pain001(data)
    assert [(b.instant, len(b.payments)) for b in file.blocks] == [(True, 2), (False, 1)]
    return run, file


def total(file: CreditTransferFile) -> int:
    return sum(p.amount_cents for b in file.blocks for p in b.payments)


def block_sum(file: CreditTransferFile, i: int) -> int:
    return sum(p.amount_cents for p in file.blocks[i].payments)


async def post(client: Any, world: World, data: bytes) -> Any:
    return await client.post(
        "/v1/payment-status-reports",
        content=data,
        headers={**world.h("gemeente_finance"), "Content-Type": "application/xml"},
    )


async def states(client: Any, world: World, run_id: int) -> dict[str, str]:
    pays = (await client.get(f"/v1/payments?run_id={run_id}", headers=world.h("gemeente_finance"))).json()
    return {p["end_to_end_id"]: p["state"] for p in pays}


async def test_a_rejected_block_rejects_exactly_its_payments(client: Any, world: World, db_dsn: str) -> None:
    run, file = await two_block_file(client, world, db_dsn)
    inst, reg = file.blocks
    club = reg.payments[0]
    data = report(
        file,
        "STS-BLOCK-R",
        "PART",
        [Block(reg.pmt_inf_id, "RJCT", "AM04", count=1, ctrl_sum=block_sum(file, 1))],
        count=3,
        ctrl_sum=total(file),
    )
    r = await post(client, world, data)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [x["end_to_end_id"] for x in out["rejected"]] == [club.end_to_end_id]
    assert out["rejected"][0]["reason_code"] == "AM04" and out["rejected"][0]["bank_details_blocked"] is False
    assert await states(client, world, run["id"]) == {
        **{p.end_to_end_id: "accepted" for p in inst.payments},
        club.end_to_end_id: "rejected",
    }
    assert await account_balance(db_dsn, "in_transit:", world.ids["gemeente"]) == block_sum(file, 0)
    await assert_ledgers_balanced(db_dsn)


async def test_a_whole_file_rejected_at_group_level_rejects_both_blocks(client: Any, world: World, db_dsn: str) -> None:
    run, file = await two_block_file(client, world, db_dsn)
    r = await post(client, world, report(file, "STS-GRP-RJCT", "RJCT", group_reason="FF01", count=3))
    assert r.status_code == 200, r.text
    assert {x["reason_code"] for x in r.json()["rejected"]} == {"FF01"}
    assert set((await states(client, world, run["id"])).values()) == {"rejected"}
    assert r.json()["run_state"] == "settled"


async def test_a_transaction_status_is_looked_up_in_the_block_the_report_names(
    client: Any, world: World, db_dsn: str
) -> None:
    """The club's payment is in the regular block; a report that puts its rejection
    under the instant block does not describe this file."""
    run, file = await two_block_file(client, world, db_dsn)
    inst, reg = file.blocks
    club = reg.payments[0]
    before = await ledger_state(db_dsn)
    r = await post(
        client,
        world,
        report(
            file,
            "STS-WRONG-BLOCK",
            "PART",
            [Block(inst.pmt_inf_id, "PART", txs=[Tx(club.end_to_end_id, "RJCT", "AC04")])],
        ),
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "status_report_does_not_match"
    assert any(club.end_to_end_id in m and inst.pmt_inf_id in m for m in r.json()["mismatches"])
    assert await ledger_state(db_dsn) == before
    assert set((await states(client, world, run["id"])).values()) == {"sent"}
    r = await client.get(f"/v1/suppliers/{world.ids['sports_club']}", headers=world.h("sports_club"))
    assert r.json()["bank_details"]["state"] == "active"


def _mismatching(file: CreditTransferFile, case: str) -> bytes:
    inst = file.blocks[0]
    bike = inst.payments[0]
    reject_bike = Tx(bike.end_to_end_id, "RJCT", "AC04", amount=bike.amount_cents)
    good_block = Block(inst.pmt_inf_id, "PART", count=2, ctrl_sum=block_sum(file, 0), txs=[reject_bike])
    n, s = 3, total(file)
    if case == "group_count":
        return report(file, "STS-X", "PART", [good_block], count=n + 1, ctrl_sum=s)
    if case == "group_ctrl_sum":
        return report(file, "STS-X", "PART", [good_block], count=n, ctrl_sum=s - 1)
    if case == "block_count":
        return report(file, "STS-X", "PART", [Block(inst.pmt_inf_id, "PART", count=3, txs=[reject_bike])])
    if case == "block_ctrl_sum":
        bad = Block(inst.pmt_inf_id, "PART", ctrl_sum=block_sum(file, 0) + 100, txs=[reject_bike])
        return report(file, "STS-X", "PART", [bad])
    if case == "unknown_block":
        return report(file, "STS-X", "PART", [good_block, Block("P-NOT-OURS-1R", "RJCT")])
    if case == "unknown_transaction":
        other = Tx("P-NOT-OURS-000001", "RJCT", "AC01")
        return report(file, "STS-X", "PART", [Block(inst.pmt_inf_id, "PART", txs=[reject_bike, other])])
    if case == "transaction_amount":
        wrong = Tx(bike.end_to_end_id, "RJCT", "AC04", amount=bike.amount_cents + 1)
        return report(file, "STS-X", "PART", [Block(inst.pmt_inf_id, "PART", txs=[wrong])])
    if case == "accepted_under_a_rejected_group":
        return report(file, "STS-X", "RJCT", [Block(inst.pmt_inf_id, None, txs=[Tx(bike.end_to_end_id, "ACCP")])])
    if case == "accepted_under_a_rejected_block":
        return report(file, "STS-X", "PART", [Block(inst.pmt_inf_id, "RJCT", txs=[Tx(bike.end_to_end_id, "ACSC")])])
    if case == "two_statuses_for_one_payment":
        twice = [reject_bike, Tx(bike.end_to_end_id, "ACCP")]
        return report(file, "STS-X", "PART", [Block(inst.pmt_inf_id, "PART", txs=twice)])
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "group_count",
        "group_ctrl_sum",
        "block_count",
        "block_ctrl_sum",
        "unknown_block",
        "unknown_transaction",
        "transaction_amount",
        "accepted_under_a_rejected_group",
        "accepted_under_a_rejected_block",
        "two_statuses_for_one_payment",
    ],
)
async def test_a_report_that_does_not_fit_its_file_is_refused_whole(
    client: Any, world: World, db_dsn: str, case: str
) -> None:
    """Every one of these also rejects the bike shop's payment with an account
    reason; none of it may be applied, not even the part that fits."""
    run, file = await two_block_file(client, world, db_dsn)
    before = await ledger_state(db_dsn)
    r = await post(client, world, _mismatching(file, case))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "status_report_does_not_match"
    assert body["mismatches"], body
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await ledger_state(db_dsn) == before
    assert set((await states(client, world, run["id"])).values()) == {"sent"}
    r = await client.get(f"/v1/suppliers/{world.ids['bike_shop']}", headers=world.h("bike_shop"))
    assert r.json()["bank_details"]["state"] == "active"
    # nothing was kept: the report is not a duplicate of anything on a second try
    r = await post(client, world, _mismatching(file, case))
    assert r.status_code == 422


async def test_a_pending_transaction_is_not_accepted_by_its_groups_status(
    client: Any, world: World, db_dsn: str
) -> None:
    """PART: some accepted, some not (yet). A transaction the bank reports PDNG is
    not accepted because the group or block around it says PART."""
    run, file = await two_block_file(client, world, db_dsn)
    inst, reg = file.blocks
    bike, clothing = inst.payments
    data = report(
        file,
        "STS-PDNG",
        "PART",
        [
            Block(
                inst.pmt_inf_id,
                "PART",
                txs=[Tx(bike.end_to_end_id, "PDNG"), Tx(clothing.end_to_end_id, "RJCT", "AM04")],
            )
        ],
    )
    r = await post(client, world, data)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and r.json()["unchanged"] == 1
    assert await states(client, world, run["id"]) == {
        bike.end_to_end_id: "sent",
        clothing.end_to_end_id: "rejected",
        reg.payments[0].end_to_end_id: "accepted",
    }


async def test_reports_twice_and_late_change_nothing_more(client: Any, world: World, db_dsn: str) -> None:
    run, file = await two_block_file(client, world, db_dsn)
    inst = file.blocks[0]
    bike = inst.payments[0]
    rejection = report(
        file, "STS-1", "PART", [Block(inst.pmt_inf_id, "PART", txs=[Tx(bike.end_to_end_id, "RJCT", "AM04")])]
    )
    r = await post(client, world, rejection)
    assert r.status_code == 200 and len(r.json()["rejected"]) == 1
    after_first = await ledger_state(db_dsn)
    # the same bytes: the first answer
    r = await post(client, world, rejection)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    # the bank sends it again under a new MsgId: already rejected, nothing posted twice
    again = report(
        file, "STS-1-RESENT", "PART", [Block(inst.pmt_inf_id, "PART", txs=[Tx(bike.end_to_end_id, "RJCT", "AM04")])]
    )
    r = await post(client, world, again)
    assert r.status_code == 200, r.text
    assert r.json()["rejected"] == [] and r.json()["duplicate"] is False
    # an older acceptance of the whole file arrives late: the rejection stands
    late = report(file, "STS-0-ACTC", "ACTC", count=3, ctrl_sum=total(file))
    r = await post(client, world, late)
    assert r.status_code == 200, r.text
    assert r.json()["rejected"] == [] and r.json()["conflicts"] == []
    assert await ledger_state(db_dsn) == after_first
    assert (await states(client, world, run["id"]))[bike.end_to_end_id] == "rejected"
    # but a report that the rejected payment was settled is a conflict a person must see
    settled = report(file, "STS-2-ACSC", None, [Block(inst.pmt_inf_id, None, txs=[Tx(bike.end_to_end_id, "ACSC")])])
    r = await post(client, world, settled)
    assert r.status_code == 200, r.text
    (conflict,) = r.json()["conflicts"]
    assert bike.end_to_end_id in conflict and "rejected" in conflict
    assert await ledger_state(db_dsn) == after_first

"""`settlement demo`: a believable case a newcomer can explore at once.

Gemeente Westerkwartier runs a Kindpakket fund (EUR 350 per child per year),
funded from the national child-poverty grant and its own means; Stichting
Leergeld co-funds bikes (70% municipality, 30% Leergeld). A bike shop, a
sports club and a clothing bank redeem vouchers; an accountant reads the books.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

from ledger.model import new_entry_id
from settlement.auth import Actor, load_actor
from settlement.clock import local_today
from settlement.orgs import flows as orgs
from settlement.sponsors import flows as sponsors
from settlement.suppliers import flows as suppliers
from settlement.vouchers import flows as vouchers

DEMO_MARKER = "Gemeente Westerkwartier"


async def seed(conn: Any) -> dict[str, str]:
    """Create the demo in the caller's transaction; return token name -> secret."""
    tokens: dict[str, str] = {}

    async def token(org: int, role: str, name: str, key: str) -> Actor:
        t = await orgs.issue_token(conn, "system:demo", org, role, name)
        tokens[key] = t.token
        return await load_actor(conn, t.id)

    platform = await orgs.create_organisation(conn, "system:demo", "Platform operations", ["platform"])
    await token(platform.id, "platform_admin", "Platform admin", "admin")
    gemeente = await orgs.create_organisation(conn, "system:demo", DEMO_MARKER, ["sponsor", "validator"])
    leergeld = await orgs.create_organisation(
        conn, "system:demo", "Stichting Leergeld Westerkwartier", ["sponsor", "validator"]
    )
    bikes = await orgs.create_organisation(
        conn,
        "system:demo",
        "Rijwielhandel De Vries",
        ["supplier"],
        supplier_category="bike_shop",
        kvk="12345678",
    )
    club = await orgs.create_organisation(
        conn,
        "system:demo",
        "VV Leek Sport",
        ["supplier"],
        supplier_category="sports_club",
        remittance="voucher_code",
    )
    clothes = await orgs.create_organisation(
        conn, "system:demo", "Kledingbank Zuidhorn", ["supplier"], supplier_category="clothing_bank"
    )

    g_fin = await token(gemeente.id, "sponsor_finance", "Anna Bakker (financien gemeente)", "gemeente_finance")
    g_appr = await token(gemeente.id, "sponsor_approver", "Johan Smit (teamleider gemeente)", "gemeente_approver")
    g_desk = await token(gemeente.id, "validator", "Loket Westerkwartier", "gemeente_validator")
    await token(gemeente.id, "auditor", "Accountant (controle 2026)", "auditor")
    l_fin = await token(leergeld.id, "sponsor_finance", "Penningmeester Leergeld", "leergeld_finance")
    await token(leergeld.id, "sponsor_approver", "Voorzitter Leergeld", "leergeld_approver")
    l_int = await token(leergeld.id, "validator", "Intermediair Leergeld", "leergeld_validator")
    shop = await token(bikes.id, "supplier", "Rijwielhandel De Vries kassa", "bike_shop")
    sport = await token(club.id, "supplier", "VV Leek penningmeester", "sports_club")
    kleding = await token(clothes.id, "supplier", "Kledingbank balie", "clothing_bank")

    year = local_today().year
    await sponsors.add_debtor_account(
        conn, g_fin, "NL91ABNA0417164300", "Gemeente Westerkwartier", None, "pain.001.001.09", True, True
    )
    await sponsors.add_debtor_account(
        conn,
        l_fin,
        "NL20INGB0001234567",
        "Stichting Leergeld Westerkwartier",
        None,
        "pain.001.001.03",
        False,
        True,
    )
    kind = await sponsors.create_fund(
        conn,
        g_fin,
        code="KINDPAKKET",
        name=f"Kindpakket {year}",
        period_start=date(year, 1, 1),
        period_end=date(year, 12, 31),
        cap_per_voucher=35_000,
        reservation_expiry_days=14,
        cancellation_window_days=0,
        categories=["bike_shop", "sports_club", "clothing_bank"],
        validators=[gemeente.id, leergeld.id],
    )
    await sponsors.grant(
        conn, g_fin, kind.id, "rijk-kinderarmoede", "Rijksmiddelen kinderarmoede", 6_000_000, new_entry_id()
    )
    await sponsors.grant(conn, g_fin, kind.id, "eigen-middelen", "Eigen middelen gemeente", 2_750_000, new_entry_id())
    fiets = await sponsors.create_fund(
        conn,
        l_fin,
        code="FIETS",
        name=f"Fiets voor de brugklas {year}",
        period_start=date(year, 1, 1),
        period_end=date(year, 12, 31),
        cap_per_voucher=15_000,
        reservation_expiry_days=30,
        cancellation_window_days=0,
        categories=["bike_shop"],
        validators=[leergeld.id],
    )
    await sponsors.grant(conn, l_fin, fiets.id, "donaties", "Donaties en fondsen", 1_500_000, new_entry_id())

    # bank details: requested by the suppliers, approved by the gemeente's approver (four eyes)
    for actor, iban, holder in (
        (shop, "NL02ABNA0123456789", "Rijwielhandel De Vries"),
        (sport, "NL69INGB0123456789", "VV Leek Sport"),
        (kleding, "NL44RABO0123456789", "Stichting Kledingbank Zuidhorn"),
    ):
        req = await suppliers.request_bank_details(conn, actor, actor.organisation_id, iban, None, holder)
        await suppliers.decide(conn, g_appr, req.id, True, "checked against KvK extract")

    # Kindpakket vouchers for 40 children, a few co-funded bike vouchers
    kids = [
        vouchers.VoucherRequest(
            amount=35_000,
            beneficiary_ref=f"WK-{year}-{i:05d}",
            shares=[vouchers.ShareRequest(fund_id=kind.id)],
        )
        for i in range(1, 41)
    ]
    issued = await vouchers.issue_vouchers(conn, g_desk, kids)
    bike_reqs = [
        vouchers.VoucherRequest(
            amount=30_000,
            beneficiary_ref=f"LG-{year}-{i:04d}",
            shares=[
                vouchers.ShareRequest(fund_id=kind.id, bp=7_000),
                vouchers.ShareRequest(fund_id=fiets.id, bp=3_000),
            ],
        )
        for i in range(1, 6)
    ]
    # the Leergeld intermediary is a validator for both funds
    bikes_issued = await vouchers.issue_vouchers(conn, l_int, bike_reqs)
    codes = [r.code for r in issued.results if r.code]
    bike_codes = [r.code for r in bikes_issued.results if r.code]

    # a bike reserved then sold for less; a club membership; winter clothes; a refund
    res = await vouchers.reserve(conn, shop, bike_codes[0], 29_999, "Gazelle transportfiets 26 inch")
    await vouchers.redeem_reservation(conn, shop, res.id, 27_450, "BON-2026-0815", None)
    await vouchers.reserve(conn, shop, bike_codes[1], 24_900, "Batavus schoolfiets, levering volgende week")
    await vouchers.redeem_direct(conn, sport, codes[0], 12_500, "LID-2026-117", "Contributie seizoen voetbal")
    await vouchers.redeem_direct(conn, sport, codes[1], 12_500, "LID-2026-118", "Contributie seizoen voetbal")
    red = await vouchers.redeem_direct(conn, kleding, codes[2], 8_000, "KB-3301", "Winterjas en laarzen")
    await vouchers.refund(conn, kleding, red.id, 1_500, "laarzen geruild voor kleinere maat, goedkoper")
    return tokens


def tokens_file(data_dir: Path) -> Path:
    return data_dir / "demo-tokens.json"


def save_tokens(data_dir: Path, tokens: dict[str, str]) -> Path:
    path = tokens_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(tokens, f, indent=2)
    return path

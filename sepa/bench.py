"""``settlement bench sepa``: build and XSD-validate a payout run's pain.001 file(s).

A payout run aggregates many payables (one per redemption) into one payment
per supplier, with the redemption refs in the remittance text. The budget is
under 1 s for 10,000 payables over 2,000 suppliers, build plus validation.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter

from schwifty import IBAN

from sepa.model import CreditTransferFile, Pain001Version, Party, Payment, PaymentBlock
from sepa.pain001 import build_pain001, split_payments
from sepa.rules import DEFAULT_MAX_PAYMENTS_PER_FILE, build_remittance, end_to_end_id, execution_date

# Dutch banks as (bank code, BIC), so the synthetic IBANs have real structure.
_BANKS = (("ABNA", "ABNANL2A"), ("INGB", "INGBNL2A"), ("RABO", "RABONL2U"), ("SNSB", "SNSBNL2A"), ("TRIO", "TRIONL2U"))
_RUN = "P2026112201"
_SEED = 20261122


def _suppliers(n: int) -> list[Party]:
    parties = []
    for i in range(n):
        bank, bic = _BANKS[i % len(_BANKS)]
        iban = IBAN.generate("NL", bank_code=bank, account_code=f"{100_000_000 + i:010d}")
        # Every third supplier has no BIC on file: IBAN-only is the SEPA norm.
        parties.append(
            Party(name=f"Fietsenwinkel De Spaak & Zn {i}", iban=str(iban.compact), bic=None if i % 3 else bic)
        )
    return parties


def bench_sepa(
    payables: int = 10_000,
    suppliers: int = 2_000,
    out_dir: Path | None = None,
    *,
    version: Pain001Version = "pain.001.001.09",
    max_per_file: int = DEFAULT_MAX_PAYMENTS_PER_FILE,
) -> dict[str, int | float]:
    """Aggregate ``payables`` over ``suppliers`` into payments, then build and
    validate the file(s). Only building + validation is inside
    ``build_validate_s``; making the synthetic data is not.
    """
    if payables < suppliers or suppliers < 1:
        raise ValueError("need at least one supplier and one payable per supplier")
    rng = random.Random(_SEED)
    parties = _suppliers(suppliers)
    # The first pass gives every supplier one payable, the rest land at random,
    # so some suppliers have many refs and their remittance gets cut.
    owners = list(range(suppliers)) + [rng.randrange(suppliers) for _ in range(payables - suppliers)]

    t0 = perf_counter()
    totals = [0] * suppliers
    refs: list[list[str]] = [[] for _ in range(suppliers)]
    for n, owner in enumerate(owners):
        totals[owner] += rng.randint(500, 25_000)
        refs[owner].append(f"RD-2026-{n:07d}")
    payments = [
        Payment(
            end_to_end_id=end_to_end_id(_RUN, i + 1),
            amount_cents=totals[i],
            creditor=parties[i],
            remittance=build_remittance(f"Uitbetaling {_RUN}", refs[i]).text,
        )
        for i in range(suppliers)
    ]
    aggregate_s = perf_counter() - t0

    created = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    debtor = Party(name="Gemeente Voorbeeld", iban="NL91ABNA0417164300", bic="ABNANL2A")
    t1 = perf_counter()
    files: list[bytes] = []
    for k, chunk in enumerate(split_payments(payments, max_per_file), start=1):
        msg_id = f"{_RUN}-F{k:03d}"
        block = PaymentBlock(
            pmt_inf_id=f"{msg_id}-B1",
            debtor=debtor,
            execution_date=execution_date(created.date(), instant=False),
            payments=chunk,
        )
        ctf = CreditTransferFile(
            msg_id=msg_id, created_at=created, initiating_party=debtor.name, version=version, blocks=(block,)
        )
        files.append(build_pain001(ctf, max_payments=max_per_file))
    build_validate_s = perf_counter() - t1

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for k, data in enumerate(files, start=1):
            (out_dir / f"{_RUN}-F{k:03d}.xml").write_bytes(data)
    return {
        "payables": payables,
        "suppliers": suppliers,
        "payments": len(payments),
        "files": len(files),
        "aggregate_s": round(aggregate_s, 4),
        "build_validate_s": round(build_validate_s, 4),
        "bytes": sum(len(f) for f in files),
    }

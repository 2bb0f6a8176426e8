"""IBAN and BIC checks (schwifty), with rule-named error codes."""

from __future__ import annotations

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from sepa.rules import epc_name
from settlement.errors import ValidationFailed


def check_holder_name(name: str, *, field: str = "holder_name") -> None:
    """Refuse an account holder's name of which nothing is left in the EPC set.

    pain.001 carries names reduced to the SEPA (EPC) character set; a name
    with no letter or digit there (Greek, Cyrillic, CJK or emoji only) would
    make every payment file naming this account invalid.
    """
    if not epc_name(name):
        raise ValidationFailed(
            f"{field} has no letters or digits of the SEPA (EPC) character set, so no payment can name the "
            "account holder; write it in Latin letters",
            code="holder_name_invalid",
            errors=[{"field": field, "message": "empty after reduction to the EPC character set"}],
        )


def _registry_bics(iban: IBAN) -> list[BIC]:
    """The BICs the bank registry lists for the IBAN's bank code; [] when it knows none."""
    try:
        return list(BIC.candidates_from_bank_code(iban.country_code, iban.bank_code))
    except SchwiftyException:
        return []


def check_iban(value: str, bic: str | None = None, *, field: str = "iban") -> tuple[str, str]:
    """Return (compact IBAN, BIC). The BIC is derived from the bank registry
    when not given; an IBAN whose bank code no registry knows, without a BIC,
    is refused (``iban_unknown_bank``): a payment to it would bounce."""
    try:
        iban = IBAN(value, validate_bban=True)
    except SchwiftyException as exc:
        raise ValidationFailed(
            f"{field} is not a valid IBAN: {exc}",
            code="iban_invalid",
            errors=[{"field": field, "message": str(exc)}],
        ) from None
    if bic:
        try:
            given = BIC(bic)
        except SchwiftyException as exc:
            raise ValidationFailed(
                f"bic is not a valid BIC: {exc}",
                code="bic_invalid",
                errors=[{"field": "bic", "message": str(exc)}],
            ) from None
        if given.country_code != iban.country_code:
            raise ValidationFailed(
                "bic belongs to another country than the IBAN",
                code="bic_country_mismatch",
                errors=[{"field": "bic", "message": "country differs from the IBAN's"}],
            )
        # The BIC names the account's bank in the payment file (DbtrAgt, CdtrAgt):
        # another bank's BIC than the IBAN's misroutes or bounces the payment.
        # Only the institution (first 4 letters) is compared; branch and
        # location codes differ between a bank's BICs.
        known = _registry_bics(iban)
        if known and given.bank_code not in {b.bank_code for b in known}:
            raise ValidationFailed(
                f"bic {given.compact} is not the BIC of this IBAN's bank ({', '.join(str(b) for b in known)})",
                code="bic_bank_mismatch",
                errors=[{"field": "bic", "message": "belongs to another bank than the IBAN"}],
            )
        return iban.compact, str(given.compact)
    derived = iban.bic
    if derived is None:
        raise ValidationFailed(
            f"no bank is known for bank code {iban.bank_code} of this IBAN; give its BIC",
            code="iban_unknown_bank",
            errors=[{"field": field, "message": "unknown bank code"}],
        )
    return iban.compact, str(derived.compact)

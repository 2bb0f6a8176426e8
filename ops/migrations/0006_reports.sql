-- The fund report over a year of a large ledger (issue: books, "fund report").
--
-- 1. Each voucher share carries its voucher's issue time and pseudonymous
--    beneficiary reference, so "vouchers and children reached per fund in a
--    period" is one scan of one table instead of a join of two large ones.
--    Both are copies of immutable voucher columns, written once at issue.
-- 2. The account indexes of transfers cover the columns the fund report sums
--    (issued and returned per fund account and period), so it reads the index
--    alone instead of visiting every transfer of the fund's account.

ALTER TABLE voucher_shares
    ADD COLUMN created_at timestamptz,
    ADD COLUMN beneficiary_ref text;

UPDATE voucher_shares s SET created_at = v.created_at, beneficiary_ref = v.beneficiary_ref
FROM vouchers v WHERE v.id = s.voucher_id;

ALTER TABLE voucher_shares
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN beneficiary_ref SET NOT NULL,
    ADD CONSTRAINT voucher_shares_beneficiary_ref_length CHECK (length(beneficiary_ref) <= 100);

CREATE INDEX voucher_shares_sponsor_created ON voucher_shares (sponsor_id, created_at);

DROP INDEX transfers_debit;
DROP INDEX transfers_credit;
CREATE INDEX transfers_debit ON transfers (debit_account_id, n) INCLUDE (created_at, code, amount);
CREATE INDEX transfers_credit ON transfers (credit_account_id, n) INCLUDE (created_at, code, amount);

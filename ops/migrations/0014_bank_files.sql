-- The bank's statement numbers (reconciliation.sequence): a skipped number is a
-- missing day statement even when the balances meet, the same number on the same
-- day with other content is a corrected statement (settlement.statements.flows).
--
-- electronic_sequence was an integer, but ElctrncSeqNb is an ISO Number of up to
-- 18 digits (a bank writing YYYY + a ten-digit counter was refused with
-- value_out_of_range). legal_sequence is LglSeqNb, or for MT940 the statement
-- number of :28C: (n in n/p), sequence_page the p; bank_created_at the statement's
-- creation time (Stmt or GrpHdr CreDtTm), which tells a number that is a date
-- (YYDDD of the day the file was made) from a counter.
ALTER TABLE statements ALTER COLUMN electronic_sequence TYPE bigint;
ALTER TABLE statements ADD COLUMN legal_sequence bigint CHECK (legal_sequence >= 0);
ALTER TABLE statements ADD COLUMN sequence_page integer CHECK (sequence_page >= 0);
ALTER TABLE statements ADD COLUMN bank_created_at timestamptz;
-- the importer reads an account's latest day statements, newest first
CREATE INDEX statements_account_day ON statements (debtor_account_id, statement_date DESC, id DESC)
    WHERE opening_balance IS NOT NULL;

-- Bank profile: IBAN-only pain.001 files (sepa.pain001). Since 2016 a SEPA credit
-- transfer inside the EEA needs no BIC and some banks prefer files without the
-- creditor agent; true leaves CdtrAgt out for creditors in the EEA (a creditor in a
-- SEPA country outside it keeps its BIC). Default: the BIC is written, as before.
ALTER TABLE debtor_accounts ADD COLUMN iban_only boolean NOT NULL DEFAULT false;

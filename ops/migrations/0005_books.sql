-- Books for accountants: day totals per account (so a trial balance as of any
-- date reads one row per account instead of every transfer), and indexes the
-- reports read by.
--
-- account_day_totals holds, per account (or group of sub-ledger accounts, such
-- as one line for all vouchers) and local (Europe/Amsterdam) day on which it moved, the posted debits and credits of that day and the running
-- totals through it. ledger_rollups says through which day a ledger is rolled
-- up; days after it are read from the transfers themselves. A day is rolled up
-- only once it is over (plus a margin for transactions still committing), so
-- a rolled-up day never changes.

CREATE TABLE account_day_totals (
    ledger_id       bigint NOT NULL,
    key             text NOT NULL,          -- the account's code, or its group ('voucher:*') for sub-ledgers
    day             date NOT NULL,
    debits          bigint NOT NULL,
    credits         bigint NOT NULL,
    debits_cum      bigint NOT NULL,
    credits_cum     bigint NOT NULL,
    PRIMARY KEY (ledger_id, key, day)
);

CREATE TABLE ledger_rollups (
    ledger_id       bigint PRIMARY KEY REFERENCES ledgers (id),
    through_day     date NOT NULL,
    groups          text[] NOT NULL,        -- code prefixes rolled up as one line each
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Transfers arrive in time order: a BRIN index finds a day's range for almost nothing.
CREATE INDEX transfers_created_brin ON transfers USING brin (created_at);
CREATE INDEX journal_entries_created ON journal_entries (ledger_id, created_at);
CREATE INDEX payable_lines_fund_created ON payable_lines (fund_id, created_at);
CREATE INDEX payable_lines_supplier ON payable_lines (supplier_id, created_at);
CREATE INDEX refunds_redemption ON refunds (redemption_id);

-- Tracing a euro: the ledger entries of a voucher, reservation, redemption, payment.
CREATE INDEX journal_entries_ref_voucher ON journal_entries ((refs->>'voucher')) WHERE refs ? 'voucher';
CREATE INDEX journal_entries_ref_reservation ON journal_entries ((refs->>'reservation')) WHERE refs ? 'reservation';
CREATE INDEX journal_entries_ref_redemption ON journal_entries ((refs->>'redemption')) WHERE refs ? 'redemption';
CREATE INDEX journal_entries_ref_payment ON journal_entries ((refs->>'payment')) WHERE refs ? 'payment';

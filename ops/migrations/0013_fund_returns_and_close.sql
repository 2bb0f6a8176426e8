-- Budget returned from a fund to a funding source (fund:F -> funding:src), and
-- closing a fund (settlement.sponsors.flows.return_budget, close_fund).
-- The flows check every rule first and answer with its code; the triggers
-- below check the same rules again, so no code path can skip them.

-- A closed fund issues no vouchers and takes no grants; it stays closed.
ALTER TABLE funds
    ADD COLUMN closed_at timestamptz,
    ADD COLUMN closed_by_token bigint REFERENCES api_tokens (id),
    ADD COLUMN closed_by text,                          -- the token's name and id, as in the audit trail
    ADD COLUMN close_reason text CHECK (length(close_reason) BETWEEN 1 AND 500),
    ADD CONSTRAINT funds_closed_with_who_and_why
        CHECK ((closed_at IS NULL) = (closed_by IS NULL) AND (closed_at IS NULL) = (close_reason IS NULL));

-- One row per ledger entry that returned budget to a source (the entry's id).
CREATE TABLE budget_returns (
    id          uuid PRIMARY KEY,             -- = the ledger entry id
    fund_id     bigint NOT NULL REFERENCES funds (id),
    sponsor_id  bigint NOT NULL,
    source      text NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    at_close    boolean NOT NULL,             -- the unspent rest, returned when the fund was closed
    token_id    bigint REFERENCES api_tokens (id),
    actor       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (sponsor_id, source) REFERENCES funding_sources (sponsor_id, code)
);
CREATE INDEX budget_returns_fund ON budget_returns (fund_id, source);
CREATE TRIGGER budget_returns_append_only BEFORE UPDATE OR DELETE ON budget_returns
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER budget_returns_no_truncate BEFORE TRUNCATE ON budget_returns
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON budget_returns FROM PUBLIC;

-- Never more back to a source than it granted to the fund: the by-source
-- overview (granted less returned) never goes negative. The fund's row lock
-- makes returns to one fund check one after the other, each seeing the last.
CREATE FUNCTION budget_return_within_grant() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    granted  bigint;
    returned bigint;
BEGIN
    PERFORM 1 FROM funds WHERE id = NEW.fund_id FOR NO KEY UPDATE;
    SELECT coalesce(sum(amount), 0) INTO granted FROM grants WHERE fund_id = NEW.fund_id AND source = NEW.source;
    SELECT coalesce(sum(amount), 0) INTO returned FROM budget_returns
        WHERE fund_id = NEW.fund_id AND source = NEW.source;
    IF returned + NEW.amount > granted THEN
        RAISE EXCEPTION 'return_exceeds_net_grant: fund %, source %: granted %, returned %, returning %',
            NEW.fund_id, NEW.source, granted, returned, NEW.amount
            USING ERRCODE = 'check_violation', CONSTRAINT = 'budget_return_within_grant';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER budget_return_within_grant BEFORE INSERT ON budget_returns
    FOR EACH ROW EXECUTE FUNCTION budget_return_within_grant();

CREATE FUNCTION grant_to_open_fund() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM funds WHERE id = NEW.fund_id AND closed_at IS NOT NULL) THEN
        RAISE EXCEPTION 'fund_closed: fund % is closed', NEW.fund_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'grant_to_open_fund';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER grant_to_open_fund BEFORE INSERT ON grants
    FOR EACH ROW EXECUTE FUNCTION grant_to_open_fund();

-- Vouchers are written with COPY, many at a time: one check per statement.
CREATE FUNCTION voucher_share_of_open_fund() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_shares s JOIN funds f ON f.id = s.fund_id WHERE f.closed_at IS NOT NULL) THEN
        RAISE EXCEPTION 'fund_closed: a voucher share of a closed fund'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'voucher_share_of_open_fund';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER voucher_share_of_open_fund AFTER INSERT ON voucher_shares
    REFERENCING NEW TABLE AS new_shares FOR EACH STATEMENT EXECUTE FUNCTION voucher_share_of_open_fund();

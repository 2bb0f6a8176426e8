-- The engine locks a batch's ledgers FOR NO KEY UPDATE instead of FOR UPDATE.
--
-- Creating an account (a new voucher's, a supplier's first payable, a new
-- funding source) inserts a row referencing its ledger, which takes FOR KEY
-- SHARE on the ledger row until commit. FOR UPDATE conflicts with it, so two
-- requests that each created an account and then booked on the same ledger
-- (two desks issuing vouchers of one fund at once) waited for each other: a
-- deadlock, retried, and with more desks answered 503 too_busy. FOR NO KEY
-- UPDATE (what the head update takes anyway: it changes no key) still queues
-- every batch of a ledger behind the one holding it, and lets the ledger's
-- rows be referenced meanwhile.
CREATE OR REPLACE FUNCTION ledger_prepare_batch(p_ledgers bigint[], p_entries uuid[], p_holds uuid[], p_accounts bigint[])
RETURNS TABLE (kind "char", n bigint, u uuid, ledger_id bigint, v1 bigint, v2 bigint, v3 bigint, v4 bigint,
               f1 boolean, f2 boolean, ts timestamptz, t1 text, j jsonb, d date, b bytea)
LANGUAGE plpgsql AS $$
DECLARE
    locked_ledgers bigint[];
    now_ts timestamptz;
BEGIN
    SELECT array_agg(x.id) INTO locked_ledgers
      FROM (SELECT l.id FROM ledgers l WHERE l.id = ANY (p_ledgers) ORDER BY l.id FOR NO KEY UPDATE) x;
    now_ts := clock_timestamp();  -- after the wait: created_at follows the chain's order
    RETURN QUERY SELECT 'l'::"char", l.id, NULL::uuid, l.id, l.head_seq, NULL::bigint, NULL::bigint, NULL::bigint,
                        NULL::boolean, NULL::boolean, now_ts, NULL::text, NULL::jsonb, NULL::date, l.head_hash
                   FROM ledgers l WHERE l.id = ANY (locked_ledgers);
    IF locked_ledgers IS NULL THEN
        RETURN QUERY SELECT 'l'::"char", NULL::bigint, NULL::uuid, NULL::bigint, NULL::bigint, NULL::bigint,
                            NULL::bigint, NULL::bigint, NULL::boolean, NULL::boolean, now_ts, NULL::text,
                            NULL::jsonb, NULL::date, NULL::bytea;
    END IF;
    RETURN QUERY SELECT 'e'::"char", e.seq, e.id, e.ledger_id, NULL::bigint, NULL::bigint, NULL::bigint,
                        NULL::bigint, NULL::boolean, NULL::boolean, e.created_at, e.description, e.refs,
                        e.value_date, e.content_hash
                   FROM journal_entries e WHERE e.id = ANY (p_entries);
    IF cardinality(p_holds) > 0 THEN
        RETURN QUERY SELECT 'h'::"char", NULL::bigint, h.transfer_id, h.ledger_id, h.debit_account_id,
                            h.credit_account_id, h.amount, NULL::bigint, NULL::boolean, NULL::boolean,
                            h.expires_at, h.state, NULL::jsonb, NULL::date, NULL::bytea
                       FROM holds h WHERE h.transfer_id = ANY (p_holds) ORDER BY h.transfer_id FOR UPDATE;
        SELECT array_agg(DISTINCT x) INTO p_accounts FROM (
            SELECT unnest(p_accounts) AS x
            UNION ALL SELECT h.debit_account_id FROM holds h WHERE h.transfer_id = ANY (p_holds)
            UNION ALL SELECT h.credit_account_id FROM holds h WHERE h.transfer_id = ANY (p_holds)) a;
    END IF;
    RETURN QUERY SELECT 'a'::"char", a.id, NULL::uuid, a.ledger_id, a.debits_posted, a.credits_posted,
                        a.debits_pending, a.credits_pending, a.debits_must_not_exceed_credits,
                        a.credits_must_not_exceed_debits, NULL::timestamptz, NULL::text, NULL::jsonb,
                        NULL::date, NULL::bytea
                   FROM accounts a WHERE a.id = ANY (p_accounts) ORDER BY a.id FOR UPDATE;
END
$$;

ALTER FUNCTION ledger_prepare_batch(bigint[], uuid[], uuid[], bigint[]) SET plan_cache_mode = force_generic_plan;

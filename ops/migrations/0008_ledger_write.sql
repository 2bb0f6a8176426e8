-- The engine's writes as functions with a cached, generic plan
-- (ledger.engine.apply_batch).
--
-- Their statements take arrays (unnest). With plan_cache_mode = auto,
-- PostgreSQL plans such a statement afresh on every call: a custom plan
-- knows each array's length and so always looks cheaper than the generic
-- one. Measured with log_min_duration_statement = 0 under `settlement bench
-- api`: 0.70 ms of planning (bind) for each small write, at 1.5 ms for the
-- whole write, every time, under the sponsor's ledger lock. The plans do
-- not depend on the arrays' lengths (index lookups by id, inserts from
-- unnest), so these functions force the generic plan, once per session.
--
-- ledger_apply_updates: $1-$3 the resolved holds (transfer id, state,
-- resolved by), $4 the batch's `now`, $5-$9 account ids and their net
-- deltas (debits posted, credits posted, debits pending, credits pending),
-- $10-$12 ledger heads (id, seq, hash). `a.id = ANY(...)` besides the join:
-- without it the planner hashes the whole accounts table for a few thousand
-- ids (measured: 200-300 ms per 7,000 rows at 450,000 accounts, 60 ms with
-- it). Likewise for holds.
CREATE FUNCTION ledger_apply_updates(
    p_hold_ids uuid[], p_hold_states text[], p_hold_resolved_by uuid[], p_now timestamptz,
    p_account_ids bigint[], p_dp bigint[], p_cp bigint[], p_dpe bigint[], p_cpe bigint[],
    p_ledger_ids bigint[], p_head_seqs bigint[], p_head_hashes bytea[]
) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    UPDATE holds h SET state = r.state, resolved_by = r.rb, resolved_at = p_now
      FROM unnest(p_hold_ids, p_hold_states, p_hold_resolved_by) AS r(id, state, rb)
     WHERE h.transfer_id = r.id AND h.transfer_id = ANY (p_hold_ids);
    UPDATE accounts a SET debits_posted = a.debits_posted + d.dp, credits_posted = a.credits_posted + d.cp,
           debits_pending = a.debits_pending + d.dpe, credits_pending = a.credits_pending + d.cpe
      FROM unnest(p_account_ids, p_dp, p_cp, p_dpe, p_cpe) AS d(id, dp, cp, dpe, cpe)
     WHERE a.id = d.id AND a.id = ANY (p_account_ids);
    UPDATE ledgers l SET head_seq = h.seq, head_hash = h.hash
      FROM unnest(p_ledger_ids, p_head_seqs, p_head_hashes) AS h(id, seq, hash)
     WHERE l.id = h.id;
END
$$;

-- A small batch in one call: the inserts ($13-$21 entries, $22-$31
-- transfers, $32-$39 new holds; created_at is always $4), then the updates.
CREATE FUNCTION ledger_write_small(
    p_hold_ids uuid[], p_hold_states text[], p_hold_resolved_by uuid[], p_now timestamptz,
    p_account_ids bigint[], p_dp bigint[], p_cp bigint[], p_dpe bigint[], p_cpe bigint[],
    p_ledger_ids bigint[], p_head_seqs bigint[], p_head_hashes bytea[],
    e_ids uuid[], e_ledgers bigint[], e_seqs bigint[], e_descriptions text[], e_refs jsonb[], e_value_dates date[],
    e_content_hashes bytea[], e_prev_hashes bytea[], e_hashes bytea[],
    t_ids uuid[], t_entries uuid[], t_ledgers bigint[], t_debits bigint[], t_credits bigint[], t_amounts bigint[],
    t_kinds text[], t_pending uuid[], t_expires timestamptz[], t_codes text[],
    h_ids uuid[], h_ledgers bigint[], h_debits bigint[], h_credits bigint[], h_amounts bigint[],
    h_expires timestamptz[], h_states text[], h_resolved_by uuid[]
) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    INSERT INTO journal_entries (id, ledger_id, seq, description, refs, value_date, created_at, content_hash,
                                 prev_hash, hash)
    SELECT x.i, x.l, x.s, x.d, x.r, x.v, p_now, x.c, x.p, x.h
      FROM unnest(e_ids, e_ledgers, e_seqs, e_descriptions, e_refs, e_value_dates, e_content_hashes,
                  e_prev_hashes, e_hashes) AS x(i, l, s, d, r, v, c, p, h);
    INSERT INTO transfers (id, entry_id, ledger_id, debit_account_id, credit_account_id, amount, kind, pending_id,
                           expires_at, code, created_at)
    SELECT x.i, x.e, x.l, x.dr, x.cr, x.a, x.k, x.p, x.x, x.c, p_now
      FROM unnest(t_ids, t_entries, t_ledgers, t_debits, t_credits, t_amounts, t_kinds, t_pending, t_expires,
                  t_codes) AS x(i, e, l, dr, cr, a, k, p, x, c);
    IF cardinality(h_ids) > 0 THEN
        INSERT INTO holds (transfer_id, ledger_id, debit_account_id, credit_account_id, amount, expires_at, state,
                           resolved_by, resolved_at)
        SELECT x.i, x.l, x.dr, x.cr, x.a, x.x, x.s, x.rb, CASE WHEN x.rb IS NULL THEN NULL ELSE p_now END
          FROM unnest(h_ids, h_ledgers, h_debits, h_credits, h_amounts, h_expires, h_states, h_resolved_by)
               AS x(i, l, dr, cr, a, x, s, rb);
    END IF;
    PERFORM ledger_apply_updates(p_hold_ids, p_hold_states, p_hold_resolved_by, p_now, p_account_ids, p_dp, p_cp,
                                 p_dpe, p_cpe, p_ledger_ids, p_head_seqs, p_head_hashes);
END
$$;

-- The locks-and-reads function's own queries: the same reason.
ALTER FUNCTION ledger_prepare_batch(bigint[], uuid[], uuid[], bigint[]) SET plan_cache_mode = force_generic_plan;

-- A statement entry a person books as a movement outside the scheme (bank
-- charges, interest, the sponsor's own transfers) against external:<category>
-- (settlement.statements.flows._book_external).
ALTER TABLE statement_entries DROP CONSTRAINT statement_entries_match_kind_check;
ALTER TABLE statement_entries ADD CONSTRAINT statement_entries_match_kind_check
    CHECK (match_kind IN ('payment', 'batch', 'return', 'top_up', 'opening_balance', 'external'));

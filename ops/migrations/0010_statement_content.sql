-- What a day statement says (its balances and the fingerprints of its entries),
-- so a second statement with the same id and date but other content (a bank's
-- corrected statement) is refused instead of booking the difference on top of
-- the first (settlement.statements.flows). NULL for statements imported before.
ALTER TABLE statements ADD COLUMN content_sha256 text CHECK (content_sha256 ~ '^[0-9a-f]{64}$');

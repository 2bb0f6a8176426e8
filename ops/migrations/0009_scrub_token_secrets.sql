-- API token secrets are shown once and stored only as hashes (DESIGN.md
-- "Security"). Until this version the idempotency store kept the whole answer
-- of POST /v1/organisations/{id}/tokens for replays, secret included. The API
-- now stores that answer without the secret (settlement.api.orgs); this
-- removes the secrets stored before. Replays of those requests answer
-- `token: null`, as new ones do.
UPDATE idempotency_keys
SET response = jsonb_set(response, '{token}', 'null'::jsonb)
WHERE method = 'POST'
  AND path ~ '^/v1/organisations/[0-9]+/tokens$'
  AND jsonb_typeof(response) = 'object'
  AND response ? 'token'
  AND response->'token' <> 'null'::jsonb;

-- An operator token may expire (unix ms); NULL never does. Expired tokens answer 401 like
-- revoked ones and stay listed, so the audit trail keeps naming them.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;

-- Sessions are now keyed by the SHA-256 of their token and their data is
-- sealed under the master keys (pkg/auth). Rows from before hold the token
-- and the staff member's bearer token in the clear: delete them, so nothing
-- readable is left behind (everyone signs in again once).
DELETE FROM sessions;

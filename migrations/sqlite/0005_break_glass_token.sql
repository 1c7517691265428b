-- A break-glass grant belongs to the token that opened it, not to every token of its principal.
ALTER TABLE break_glass_grants ADD COLUMN token_id TEXT NOT NULL DEFAULT '';

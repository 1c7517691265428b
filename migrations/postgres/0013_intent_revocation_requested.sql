-- A revocation that meets a lease intent (PENDING: its issue may still be creating the user)
-- does not drop anything itself; it sets this flag, and the intent can then never be activated.
-- The scheduler drops its user at once and again when the intent's grace period ends, so a
-- user its issue commits after the first drop is dropped too.
ALTER TABLE leases ADD COLUMN revocation_requested BOOLEAN NOT NULL DEFAULT FALSE;

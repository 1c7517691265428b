-- Room on every page of `leases` for a row's next version. A scheduler claim changes only
-- `claimed_by` and `claim_expires_at`, which no index covers; with room on its page the new
-- version stays there and touches no index (a heap-only update), where a full page costs an
-- entry in each of the table's seven indexes. Pages written from now on keep 30% free; pages
-- written before gain it when the table is rewritten (VACUUM FULL).
ALTER TABLE leases SET (fillfactor = 70);

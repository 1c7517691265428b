-- A job's progress counts its leases by backend and state. With both in the index, the count
-- reads the index alone instead of every lease row the job touched.
DROP INDEX leases_revocation_job;
CREATE INDEX leases_revocation_job ON leases (revocation_job, backend, state) WHERE revocation_job IS NOT NULL;

-- The lookups by tenant and state, role or principal only ever ask for live leases (PENDING,
-- ACTIVE, IRREVOCABLE): mass-revocation selectors, their dry runs and the lease-count metrics.
-- As partial indexes over live leases they no longer grow with the history of revoked ones, and
-- marking a lease REVOKED adds no entry to them.
DROP INDEX leases_tenant_role;
DROP INDEX leases_tenant_principal;
DROP INDEX leases_state;
CREATE INDEX leases_live_role ON leases (tenant, role) WHERE state IN ('PENDING', 'ACTIVE', 'IRREVOCABLE');
CREATE INDEX leases_live_principal ON leases (tenant, principal) WHERE state IN ('PENDING', 'ACTIVE', 'IRREVOCABLE');
CREATE INDEX leases_live_state ON leases (tenant, state) WHERE state IN ('PENDING', 'ACTIVE', 'IRREVOCABLE');

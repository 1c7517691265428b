//! Evaluating a tenant's policies: explicit deny wins, a matching allow allows, nothing
//! matching denies. Statements are indexed by principal so a decision looks only at the
//! statements that name the caller, its groups, or a principal glob.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;
use utoipa::ToSchema;

use super::document::{Effect, Statement};
use super::{Action, Glob};

/// Who is asking, with the facts conditions are checked against.
#[derive(Debug, Clone, Default)]
pub struct Subject<'a> {
    pub principal: &'a str,
    pub mfa: bool,
    pub source_cluster: Option<&'a str>,
    pub source_ip: Option<IpAddr>,
    pub has_ticket: bool,
}

/// The statement that decided, as `policy` name and `index` within it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatementRef {
    pub policy: String,
    pub index: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub decided_by: Option<StatementRef>,
}

struct Indexed {
    policy: String,
    index: usize,
    statement: Statement,
}

/// One tenant's policies and group memberships, compiled.
#[derive(Default)]
pub struct PolicySet {
    statements: Vec<Indexed>,
    by_principal: HashMap<String, Vec<usize>>,
    by_glob: Vec<usize>,
    groups_of: HashMap<String, Vec<String>>,
}

impl PolicySet {
    /// `policies` are (name, statements) in name order; `memberships` are (group, member).
    pub fn build(
        policies: Vec<(String, Vec<Statement>)>,
        memberships: Vec<(String, String)>,
    ) -> Self {
        let mut set = Self::default();
        for (policy, statements) in policies {
            for (index, statement) in statements.into_iter().enumerate() {
                let position = set.statements.len();
                if statement.principal.is_exact() {
                    set.by_principal
                        .entry(statement.principal.as_str().to_owned())
                        .or_default()
                        .push(position);
                } else {
                    set.by_glob.push(position);
                }
                set.statements.push(Indexed {
                    policy: policy.clone(),
                    index,
                    statement,
                });
            }
        }
        for (group, member) in memberships {
            set.groups_of.entry(member).or_default().push(group);
        }
        set
    }

    pub fn groups_of(&self, principal: &str) -> &[String] {
        self.groups_of.get(principal).map_or(&[], Vec::as_slice)
    }

    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    /// # Panics
    /// Never: candidate positions come from the index built over `statements`.
    pub fn evaluate(&self, subject: &Subject<'_>, action: Action, resource: &str) -> Decision {
        let groups = self.groups_of(subject.principal);
        let mut candidates: Vec<usize> = Vec::new();
        for name in std::iter::once(subject.principal).chain(groups.iter().map(String::as_str)) {
            if let Some(positions) = self.by_principal.get(name) {
                candidates.extend(positions);
            }
        }
        for &position in &self.by_glob {
            let glob: &Glob = &self.statements[position].statement.principal;
            if std::iter::once(subject.principal)
                .chain(groups.iter().map(String::as_str))
                .any(|name| glob.matches(name))
            {
                candidates.push(position);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();

        let mut allowed_by = None;
        for position in candidates {
            let indexed = &self.statements[position];
            let statement = &indexed.statement;
            if statement.actions & action.bit() == 0
                || !statement.resources.iter().any(|r| r.matches(resource))
                || !conditions_hold(statement, subject)
            {
                continue;
            }
            let reference = StatementRef {
                policy: indexed.policy.clone(),
                index: indexed.index,
            };
            match statement.effect {
                Effect::Deny => {
                    return Decision {
                        allowed: false,
                        decided_by: Some(reference),
                    };
                }
                Effect::Allow => {
                    allowed_by.get_or_insert(reference);
                }
            }
        }
        Decision {
            allowed: allowed_by.is_some(),
            decided_by: allowed_by,
        }
    }
}

fn conditions_hold(statement: &Statement, subject: &Subject<'_>) -> bool {
    let c = &statement.conditions;
    (!c.mfa || subject.mfa)
        && (!c.ticket_required || subject.has_ticket)
        && c.source_cluster.as_ref().is_none_or(|clusters| {
            subject
                .source_cluster
                .is_some_and(|cluster| clusters.iter().any(|c| c == cluster))
        })
        && c.source_ip.as_ref().is_none_or(|blocks| {
            subject
                .source_ip
                .is_some_and(|ip| blocks.iter().any(|b| b.contains(ip)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyDocument;

    fn set(policies: &[(&str, serde_json::Value)], groups: &[(&str, &str)]) -> PolicySet {
        PolicySet::build(
            policies
                .iter()
                .map(|(name, doc)| {
                    let doc: PolicyDocument = serde_json::from_value(doc.clone()).expect("doc");
                    ((*name).to_owned(), doc.compile().expect("compile"))
                })
                .collect(),
            groups
                .iter()
                .map(|(g, m)| ((*g).to_owned(), (*m).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn deny_wins_allow_allows_nothing_denies() {
        let policies = set(
            &[
                (
                    "payments",
                    serde_json::json!({"statements":[
                        {"effect":"allow","principal":"service:prod:payments-api","actions":["secrets:read"],"resources":["prod/payments/*"],"conditions":{"sourceCluster":"prod-us-east-1"}},
                        {"effect":"allow","principal":"group:payments-oncall","actions":["secrets:rotate"],"resources":["prod/payments/*"],"conditions":{"mfa":true}}
                    ]}),
                ),
                (
                    "zz-deny",
                    serde_json::json!({"statements":[
                        {"effect":"deny","principal":"service:prod:*","actions":["secrets:read"],"resources":["prod/payments/frozen"]}
                    ]}),
                ),
            ],
            &[("group:payments-oncall", "user:alice")],
        );
        let api = Subject {
            principal: "service:prod:payments-api",
            source_cluster: Some("prod-us-east-1"),
            ..Subject::default()
        };
        let cases = [
            (
                api.clone(),
                Action::SecretsRead,
                "prod/payments/stripe",
                true,
                Some(("payments", 0)),
                "allowed by statement 0",
            ),
            (
                api.clone(),
                Action::SecretsRead,
                "prod/payments-ledger/x",
                false,
                None,
                "sibling prefix",
            ),
            (
                api.clone(),
                Action::SecretsWrite,
                "prod/payments/stripe",
                false,
                None,
                "other action",
            ),
            (
                api.clone(),
                Action::SecretsRead,
                "prod/payments/frozen",
                false,
                Some(("zz-deny", 0)),
                "explicit deny wins",
            ),
            (
                Subject {
                    source_cluster: Some("staging"),
                    ..api.clone()
                },
                Action::SecretsRead,
                "prod/payments/stripe",
                false,
                None,
                "wrong cluster",
            ),
            (
                Subject {
                    principal: "user:alice",
                    mfa: true,
                    ..Subject::default()
                },
                Action::SecretsRotate,
                "prod/payments/stripe",
                true,
                Some(("payments", 1)),
                "via group with mfa",
            ),
            (
                Subject {
                    principal: "user:alice",
                    ..Subject::default()
                },
                Action::SecretsRotate,
                "prod/payments/stripe",
                false,
                None,
                "group without mfa",
            ),
            (
                Subject {
                    principal: "user:alice",
                    mfa: true,
                    ..Subject::default()
                },
                Action::SecretsRead,
                "prod/payments/stripe",
                false,
                None,
                "rotate does not imply read",
            ),
        ];
        for (subject, action, resource, allowed, by, case) in cases {
            let decision = policies.evaluate(&subject, action, resource);
            assert_eq!(decision.allowed, allowed, "case: {case}");
            assert_eq!(
                decision.decided_by.map(|r| (r.policy, r.index)),
                by.map(|(p, i): (&str, usize)| (p.to_owned(), i)),
                "case: {case}"
            );
        }
    }
}

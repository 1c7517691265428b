//! A synthetic policy estate for `leasehold bench policy` and the criterion benchmark:
//! `policies` policies of three statements each (an allow for a team's service, an allow for the
//! team's on-call group with conditions, a deny on the team's frozen secrets), one glob-principal
//! policy, and `resources` resources spread across the teams.

use super::document::Statement;
use super::{PolicyDocument, PolicySet};

/// Compiles a generated document; the unit test proves each one is valid.
fn compile(json: serde_json::Value) -> Vec<Statement> {
    serde_json::from_value::<PolicyDocument>(json)
        .ok()
        .and_then(|d| d.compile().ok())
        .unwrap_or_default()
}

pub struct Estate {
    pub set: PolicySet,
    pub principals: Vec<String>,
    pub resources: Vec<String>,
}

/// Builds the estate; deterministic for the same sizes.
///
pub fn estate(policies: usize, resources: usize) -> Estate {
    let teams = policies.max(1);
    let mut compiled: Vec<(String, Vec<Statement>)> = Vec::with_capacity(policies + 1);
    let mut memberships = Vec::new();
    for team in 0..teams {
        let statements = compile(serde_json::json!({"statements": [
            {"effect":"allow","principal":format!("service:prod:team-{team}"),"actions":["secrets:read","secrets:list"],"resources":[format!("prod/team-{team}/*")]},
            {"effect":"allow","principal":format!("group:team-{team}-oncall"),"actions":["secrets:rotate","secrets:read-break-glass"],"resources":[format!("prod/team-{team}/**")],"conditions":{"mfa":true,"ticketRequired":true}},
            {"effect":"deny","principal":format!("service:prod:team-{team}"),"actions":["secrets:read"],"resources":[format!("prod/team-{team}/frozen-*")]},
        ]}));
        compiled.push((format!("team-{team:04}"), statements));
        memberships.push((
            format!("group:team-{team}-oncall"),
            format!("user:oncall-{team}"),
        ));
    }
    let glob = compile(serde_json::json!({"statements": [
        {"effect":"allow","principal":"service:staging:*","actions":["secrets:read"],"resources":["staging/**"]}
    ]}));
    compiled.push(("zz-staging".into(), glob));

    let principals = (0..teams)
        .flat_map(|t| [format!("service:prod:team-{t}"), format!("user:oncall-{t}")])
        .collect();
    let resources = (0..resources)
        .map(|i| {
            let team = i % teams;
            if i % 10 == 0 {
                format!("prod/team-{team}/frozen-{i}")
            } else {
                format!("prod/team-{team}/secret-{i}")
            }
        })
        .collect();
    Estate {
        set: PolicySet::build(compiled, memberships),
        principals,
        resources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Subject};

    #[test]
    fn the_estate_is_what_it_claims() {
        let estate = estate(10, 100);
        assert_eq!(
            estate.set.statement_count(),
            31,
            "3 statements per policy plus the glob"
        );
        let allowed = estate.set.evaluate(
            &Subject {
                principal: "service:prod:team-1",
                ..Subject::default()
            },
            Action::SecretsRead,
            "prod/team-1/secret-11",
        );
        assert!(allowed.allowed);
        let frozen = estate.set.evaluate(
            &Subject {
                principal: "service:prod:team-0",
                ..Subject::default()
            },
            Action::SecretsRead,
            "prod/team-0/frozen-10",
        );
        assert!(!frozen.allowed && frozen.decided_by.is_some());
    }
}

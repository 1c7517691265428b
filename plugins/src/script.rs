//! Turning a role's statement templates into one script per request, and revoking a batch of
//! users in as few round trips (and statements, see `list_form`) as the target allows. Shared
//! by both database plugins.

use futures_util::future::join_all;

use crate::list_form::revocation_script;
use crate::template::{Dialect, Purpose, Template, Values, parse_all};
use crate::{PluginError, RenewUser, RevokeUser};

/// Users revoked per round trip; chunks run in parallel up to the pool's size.
const REVOKE_CHUNK: usize = 50;

/// The statements rendered with `values`, joined into one script.
pub(crate) fn render(
    dialect: Dialect,
    purpose: Purpose,
    statements: &[String],
    values: &Values<'_>,
) -> Result<String, PluginError> {
    render_parsed(dialect, &parse_all(dialect, purpose, statements)?, values)
}

/// Parsed statements rendered with `values`, joined into one script.
fn render_parsed(
    dialect: Dialect,
    templates: &[Template],
    values: &Values<'_>,
) -> Result<String, PluginError> {
    let rendered: Result<Vec<String>, PluginError> = templates
        .iter()
        .map(|t| t.render(dialect, values))
        .collect();
    Ok(rendered?.join(";\n"))
}

/// The renewal script of `user`, or `None` when the role has no renewal statements.
pub(crate) fn renewal(dialect: Dialect, user: &RenewUser) -> Result<Option<String>, PluginError> {
    if user.statements.is_empty() {
        return Ok(None);
    }
    render(
        dialect,
        Purpose::Renewal,
        &user.statements,
        &Values {
            name: &user.username,
            password: None,
            password_hash: None,
            expiration: Some(user.expires_at),
        },
    )
    .map(Some)
}

/// A role's statement texts, and what parsing them gave.
type ParsedStatements<'a> = (&'a [String], Result<Vec<Template>, PluginError>);

/// The revocation scripts of `users`, each role's statements parsed once: a batch usually
/// holds many users of few roles.
fn revocations(dialect: Dialect, users: &[RevokeUser]) -> Vec<Result<String, PluginError>> {
    let mut parsed: Option<ParsedStatements<'_>> = None;
    users
        .iter()
        .map(|user| {
            let templates = match &parsed {
                Some((statements, templates)) if *statements == user.statements.as_slice() => {
                    templates
                }
                _ => {
                    let templates = parse_all(dialect, Purpose::Revocation, &user.statements);
                    &parsed.insert((&user.statements, templates)).1
                }
            };
            let values = Values {
                name: &user.username,
                password: None,
                password_hash: None,
                expiration: None,
            };
            render_parsed(dialect, templates.as_ref().map_err(Clone::clone)?, &values)
        })
        .collect()
}

/// One script for a chunk: in list form when its users share their revocation statements (the
/// usual case, users of one role), otherwise each user's script in turn.
fn chunk_script(dialect: Dialect, chunk: &[RevokeUser]) -> Result<String, PluginError> {
    match chunk {
        [first, rest @ ..] if rest.iter().all(|u| u.statements == first.statements) => {
            let templates = parse_all(dialect, Purpose::Revocation, &first.statements)?;
            let names: Vec<&str> = chunk.iter().map(|u| u.username.as_str()).collect();
            revocation_script(dialect, &templates, &names)
        }
        _ => {
            let scripts: Result<Vec<String>, PluginError> =
                revocations(dialect, chunk).into_iter().collect();
            Ok(scripts?.join(";\n"))
        }
    }
}

/// Runs revocation scripts on one target.
pub(crate) trait RevokeTarget: Sync {
    /// Runs `script` in one round trip.
    fn run(&self, script: &str) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// Runs one user's `script`; a user that no longer exists counts as revoked.
    fn run_unless_gone(&self, script: &str)
    -> impl Future<Output = Result<(), PluginError>> + Send;
}

/// Revokes `users` in chunks run in parallel: each chunk in one round trip when all of it
/// succeeds, otherwise user by user, so one failing user never fails the others.
pub(crate) async fn revoke_batch(
    dialect: Dialect,
    users: &[RevokeUser],
    target: &impl RevokeTarget,
) -> Vec<Result<(), PluginError>> {
    let chunks = users.chunks(REVOKE_CHUNK).map(|chunk| async move {
        if let Ok(script) = chunk_script(dialect, chunk)
            && target.run(&script).await.is_ok()
        {
            return chunk.iter().map(|_| Ok(())).collect::<Vec<_>>();
        }
        let mut results = Vec::with_capacity(chunk.len());
        for script in revocations(dialect, chunk) {
            results.push(match script {
                Ok(script) => target.run_unless_gone(&script).await,
                Err(e) => Err(e),
            });
        }
        results
    });
    join_all(chunks).await.into_iter().flatten().collect()
}

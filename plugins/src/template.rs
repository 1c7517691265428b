//! Statement templates: SQL text with `{{name}}`, `{{password}}`, `{{password_hash}}` and
//! `{{expiration}}` placeholders.
//!
//! The template text comes from an operator; the substituted values do not, so every
//! substitution is quoted for its dialect by this module and never by the template's author:
//! `{{name}}` is an identifier in PostgreSQL (`"lh_…"`) and an account-name string in MySQL
//! (`'lh_…'`, written `{{name}}@'%'`), the others are string literals. A value that cannot be
//! quoted safely (a NUL byte, or a backslash in MySQL, whose meaning depends on `sql_mode`) is
//! refused rather than guessed at.

use chrono::{DateTime, Utc};

use crate::PluginError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    Name,
    /// PostgreSQL: the SCRAM-SHA-256 verifier; MySQL/MariaDB: the password itself.
    Password,
    /// MySQL/MariaDB only: the `mysql_native_password` hash (`*` and 40 hex digits).
    PasswordHash,
    Expiration,
}

impl Placeholder {
    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "name" => Some(Self::Name),
            "password" => Some(Self::Password),
            "password_hash" => Some(Self::PasswordHash),
            "expiration" => Some(Self::Expiration),
            _ => None,
        }
    }
}

/// Which statements a template is for; decides which placeholders make sense in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Creation,
    Renewal,
    Revocation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Value(Placeholder),
}

/// A parsed, validated template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

/// The values substituted into a template, unquoted. No `Debug`: it holds password forms.
pub struct Values<'a> {
    pub name: &'a str,
    pub password: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub expiration: Option<DateTime<Utc>>,
}

impl Template {
    /// # Errors
    /// `InvalidInput` naming the problem: an unterminated `{{`, an unknown placeholder, or one
    /// that makes no sense for `purpose` in `dialect` (a password in a revocation statement, a
    /// password hash in PostgreSQL).
    pub fn parse(dialect: Dialect, purpose: Purpose, text: &str) -> Result<Self, PluginError> {
        if text.trim().is_empty() {
            return Err(PluginError::invalid("a statement must not be empty"));
        }
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                segments.push(Segment::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| {
                PluginError::invalid("a statement has '{{' without a closing '}}'")
            })?;
            let name = &after[..end];
            let placeholder = Placeholder::parse(name).ok_or_else(|| {
                PluginError::invalid(format!(
                    "unknown placeholder {{{{{}}}}}; use {{{{name}}}}, {{{{password}}}}, {{{{password_hash}}}} or {{{{expiration}}}}",
                    name.chars().take(32).collect::<String>()
                ))
            })?;
            check_allowed(dialect, purpose, placeholder)?;
            segments.push(Segment::Value(placeholder));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_owned()));
        }
        if (dialect, purpose) == (Dialect::Postgres, Purpose::Creation) {
            check_no_transaction_control(text)?;
        }
        Ok(Self { segments })
    }

    /// The statement with every placeholder replaced by its quoted value.
    ///
    /// # Errors
    /// `InvalidInput` when a value the template needs is missing or cannot be quoted safely.
    pub fn render(&self, dialect: Dialect, values: &Values<'_>) -> Result<String, PluginError> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Value(Placeholder::Name) => {
                    out.push_str(&quote_name(dialect, values.name)?)
                }
                Segment::Value(Placeholder::Password) => {
                    let password = values
                        .password
                        .ok_or_else(|| PluginError::invalid("this statement has no password"))?;
                    out.push_str(&quote_literal(dialect, password)?);
                }
                Segment::Value(Placeholder::PasswordHash) => {
                    let hash = values
                        .password_hash
                        .ok_or_else(|| PluginError::invalid("this statement has no password"))?;
                    out.push_str(&quote_literal(dialect, hash)?);
                }
                Segment::Value(Placeholder::Expiration) => {
                    let expiration = values
                        .expiration
                        .ok_or_else(|| PluginError::invalid("this statement has no expiry"))?;
                    let text = match dialect {
                        Dialect::Postgres => expiration.format("%Y-%m-%d %H:%M:%S+00"),
                        Dialect::Mysql => expiration.format("%Y-%m-%d %H:%M:%S"),
                    };
                    out.push_str(&quote_literal(dialect, &text.to_string())?);
                }
            }
        }
        Ok(out)
    }

    /// The text before and after the placeholder, when the template's only placeholder is one
    /// `{{name}}` (`DROP ROLE {{name}}`, `GRANT {{name}} TO CURRENT_USER`).
    pub(crate) fn around_single_name(&self) -> Option<(&str, &str)> {
        match self.segments.as_slice() {
            [Segment::Text(head), Segment::Value(Placeholder::Name)] => Some((head, "")),
            [
                Segment::Text(head),
                Segment::Value(Placeholder::Name),
                Segment::Text(tail),
            ] => Some((head, tail)),
            _ => None,
        }
    }
}

/// Quotes a user name for `{{name}}`: an identifier in PostgreSQL, an account-name string in
/// MySQL.
///
/// # Errors
/// `InvalidInput` for a NUL byte, or a backslash in MySQL.
pub(crate) fn quote_name(dialect: Dialect, name: &str) -> Result<String, PluginError> {
    match dialect {
        Dialect::Postgres if name.contains('\0') => {
            Err(PluginError::invalid("a name contains a NUL byte"))
        }
        Dialect::Postgres => Ok(quote_identifier(dialect, name)),
        Dialect::Mysql => quote_literal(dialect, name),
    }
}

fn check_allowed(
    dialect: Dialect,
    purpose: Purpose,
    placeholder: Placeholder,
) -> Result<(), PluginError> {
    match (dialect, purpose, placeholder) {
        (Dialect::Postgres, _, Placeholder::PasswordHash) => Err(PluginError::invalid(
            "{{password_hash}} is for MySQL/MariaDB; PostgreSQL's {{password}} is already a SCRAM-SHA-256 verifier",
        )),
        (
            _,
            Purpose::Renewal | Purpose::Revocation,
            Placeholder::Password | Placeholder::PasswordHash,
        ) => Err(PluginError::invalid(
            "only creation statements may use {{password}} or {{password_hash}}",
        )),
        (_, Purpose::Revocation, Placeholder::Expiration) => Err(PluginError::invalid(
            "revocation statements may not use {{expiration}}",
        )),
        _ => Ok(()),
    }
}

/// PostgreSQL creation statements run inside the transaction the broker commits only once the
/// lease is recorded (see `CredentialBackend::prepare`); a statement that ended it early would
/// let the user exist before the broker can revoke it.
fn check_no_transaction_control(text: &str) -> Result<(), PluginError> {
    for opening in statement_openings(text) {
        let ends_transaction = match opening.as_slice() {
            [first, ..]
                if [
                    "BEGIN",
                    "START",
                    "COMMIT",
                    "END",
                    "ROLLBACK",
                    "ABORT",
                    "SAVEPOINT",
                    "RELEASE",
                ]
                .contains(&first.as_str()) =>
            {
                true
            }
            [first, second, ..] => first == "PREPARE" && second == "TRANSACTION",
            _ => false,
        };
        if ends_transaction {
            return Err(PluginError::invalid(format!(
                "`{}` controls the transaction; PostgreSQL creation statements run inside the broker's own transaction, which it commits once the lease is recorded, so leave transaction control out",
                opening.join(" ")
            )));
        }
    }
    Ok(())
}

/// The first two words of every statement in `sql`, upper-cased. Comments are skipped, and
/// nothing inside a string literal, a quoted identifier or a dollar-quoted body counts.
fn statement_openings(sql: &str) -> Vec<Vec<String>> {
    let bytes = sql.as_bytes();
    let mut openings = vec![Vec::new()];
    let mut at_start = true;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"--") {
            i += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        } else if rest.starts_with(b"/*") {
            i += block_comment_len(rest);
        } else if rest[0] == b'\'' || rest[0] == b'"' {
            let escapes = rest[0] == b'\'' && i > 0 && bytes[i - 1].eq_ignore_ascii_case(&b'e');
            i += quoted_len(rest, escapes);
            at_start = false;
        } else if let Some(len) = dollar_quoted_len(rest) {
            i += len;
            at_start = false;
        } else if rest[0] == b';' {
            openings.push(Vec::new());
            at_start = true;
            i += 1;
        } else if rest[0].is_ascii_alphabetic() || rest[0] == b'_' {
            let len = rest
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$'))
                .unwrap_or(rest.len());
            if let Some(words) = openings.last_mut()
                && at_start
                && words.len() < 2
            {
                words.push(sql[i..i + len].to_ascii_uppercase());
            }
            i += len;
        } else {
            if !rest[0].is_ascii_whitespace() {
                at_start = false;
            }
            i += 1;
        }
    }
    openings.retain(|words| !words.is_empty());
    openings
}

/// `/* … */`, which nests in PostgreSQL; an unterminated one runs to the end.
fn block_comment_len(text: &[u8]) -> usize {
    let mut depth = 0;
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if text[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    text.len()
}

/// `'…'` or `"…"` with the quote doubled inside (and, in an `E'…'` string, backslash escapes).
fn quoted_len(text: &[u8], backslash_escapes: bool) -> usize {
    let quote = text[0];
    let mut i = 1;
    while i < text.len() {
        if backslash_escapes && text[i] == b'\\' {
            i += 2;
        } else if text[i] == quote {
            if text.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    text.len()
}

/// `$tag$ … $tag$` (the tag may be empty); `None` when `text` does not open one (`$1` does not).
fn dollar_quoted_len(text: &[u8]) -> Option<usize> {
    if text.first() != Some(&b'$') {
        return None;
    }
    let tag_len = text[1..]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))?;
    let tag = &text[..tag_len + 2];
    if tag.get(1).is_some_and(u8::is_ascii_digit) || tag.last() != Some(&b'$') {
        return None;
    }
    let body = &text[tag.len()..];
    let end = body
        .windows(tag.len())
        .position(|window| window == tag)
        .map_or(body.len(), |at| at + tag.len());
    Some(tag.len() + end)
}

/// Parses every template of one purpose.
///
/// # Errors
/// The first invalid template, numbered from 1.
pub fn parse_all(
    dialect: Dialect,
    purpose: Purpose,
    texts: &[String],
) -> Result<Vec<Template>, PluginError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Template::parse(dialect, purpose, text)
                .map_err(|e| PluginError::invalid(format!("statement {}: {}", i + 1, e.message)))
        })
        .collect()
}

/// Quotes an identifier (a role or group name): PostgreSQL `"…"`, MySQL `` `…` ``, with the quote
/// character doubled inside. Callers pass names already checked to hold no NUL byte.
pub fn quote_identifier(dialect: Dialect, value: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("\"{}\"", value.replace('"', "\"\"")),
        Dialect::Mysql => format!("`{}`", value.replace('`', "``")),
    }
}

/// Quotes a string literal.
///
/// # Errors
/// `InvalidInput` for a NUL byte, or a backslash in MySQL.
pub fn quote_literal(dialect: Dialect, value: &str) -> Result<String, PluginError> {
    if value.contains('\0') {
        return Err(PluginError::invalid("a value contains a NUL byte"));
    }
    match dialect {
        Dialect::Postgres if value.contains('\\') => Ok(format!(
            "E'{}'",
            value.replace('\\', "\\\\").replace('\'', "''")
        )),
        Dialect::Postgres => Ok(format!("'{}'", value.replace('\'', "''"))),
        Dialect::Mysql if value.contains('\\') => Err(PluginError::invalid(
            "a value contains a backslash, which MySQL cannot quote the same way in every sql_mode",
        )),
        Dialect::Mysql => Ok(format!("'{}'", value.replace('\'', "''"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(name: &'a str) -> Values<'a> {
        Values {
            name,
            password: Some("pw'1"),
            password_hash: Some("*ABC"),
            expiration: DateTime::from_timestamp(1_800_000_000, 0),
        }
    }

    #[test]
    fn substitutions_are_quoted_for_each_dialect() {
        let pg = Template::parse(
            Dialect::Postgres,
            Purpose::Creation,
            "CREATE ROLE {{name}} PASSWORD {{password}} VALID UNTIL {{ expiration }}",
        )
        .expect("valid");
        assert_eq!(
            pg.render(Dialect::Postgres, &values("a\"b"))
                .expect("renders"),
            "CREATE ROLE \"a\"\"b\" PASSWORD 'pw''1' VALID UNTIL '2027-01-15 08:00:00+00'"
        );
        let my = Template::parse(
            Dialect::Mysql,
            Purpose::Creation,
            "CREATE USER {{name}}@'%' IDENTIFIED BY PASSWORD {{password_hash}}",
        )
        .expect("valid");
        assert_eq!(
            my.render(Dialect::Mysql, &values("x'; DROP USER root; --"))
                .expect("renders"),
            "CREATE USER 'x''; DROP USER root; --'@'%' IDENTIFIED BY PASSWORD '*ABC'"
        );
    }

    #[test]
    fn unsafe_values_are_refused_not_guessed() {
        let my = Template::parse(Dialect::Mysql, Purpose::Revocation, "DROP USER {{name}}")
            .expect("valid");
        assert!(my.render(Dialect::Mysql, &values("a\\'b")).is_err());
        let pg = Template::parse(Dialect::Postgres, Purpose::Revocation, "DROP ROLE {{name}}")
            .expect("valid");
        assert!(pg.render(Dialect::Postgres, &values("a\0b")).is_err());
        assert_eq!(
            quote_literal(Dialect::Postgres, "a\\'b").expect("quotable"),
            "E'a\\\\''b'"
        );
    }

    #[test]
    fn transaction_words_inside_statements_are_not_transaction_control() {
        let allowed = [
            "CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}",
            "DO $$ BEGIN EXECUTE 'GRANT r TO ' || quote_ident('x'); END $$",
            "DO $body$ BEGIN NULL; END; $body$",
            "COMMENT ON ROLE {{name}} IS 'begin; commit; end'",
            "CREATE ROLE \"commit\"; -- COMMIT\nGRANT r TO {{name}}",
            "SELECT $1; /* COMMIT; */ GRANT r TO {{name}}",
            "COMMENT ON ROLE {{name}} IS E'it\\'s; COMMIT'",
            "PREPARE q AS SELECT 1",
        ];
        for text in allowed {
            Template::parse(Dialect::Postgres, Purpose::Creation, text)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        Template::parse(
            Dialect::Mysql,
            Purpose::Creation,
            "CREATE USER {{name}}@'%'; COMMIT",
        )
        .expect("MySQL statements commit on their own anyway");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        let cases = [
            (
                Dialect::Postgres,
                Purpose::Creation,
                "CREATE ROLE {{nam}}",
                "unknown placeholder",
            ),
            (
                Dialect::Postgres,
                Purpose::Creation,
                "CREATE ROLE {{name",
                "without a closing",
            ),
            (
                Dialect::Postgres,
                Purpose::Revocation,
                "ALTER ROLE {{name}} PASSWORD {{password}}",
                "only creation",
            ),
            (
                Dialect::Postgres,
                Purpose::Creation,
                "x {{password_hash}}",
                "MySQL/MariaDB",
            ),
            (
                Dialect::Mysql,
                Purpose::Revocation,
                "x {{expiration}}",
                "revocation",
            ),
            (Dialect::Mysql, Purpose::Creation, "  ", "empty"),
            (
                Dialect::Postgres,
                Purpose::Creation,
                "CREATE ROLE {{name}}; commit",
                "`COMMIT` controls the transaction",
            ),
            (
                Dialect::Postgres,
                Purpose::Creation,
                "/* a comment */ END",
                "`END` controls",
            ),
            (
                Dialect::Postgres,
                Purpose::Creation,
                "GRANT r TO {{name}};\n  Prepare Transaction 'x'",
                "`PREPARE TRANSACTION` controls",
            ),
        ];
        for (dialect, purpose, text, expected) in cases {
            let error = Template::parse(dialect, purpose, text).expect_err(text);
            assert!(
                error.message.contains(expected),
                "{text}: {}",
                error.message
            );
        }
    }
}

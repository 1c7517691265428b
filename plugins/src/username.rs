//! Usernames for leases, from a template such as `lh_{{role}}_{{principal}}_{{unix_time}}_{{random}}`.
//!
//! Every substituted value is folded to `[a-z0-9_]`, so a hostile role or principal name can
//! never reach a statement as anything but letters, digits and underscores. A name longer than
//! the target allows is cut deterministically: the random part is always kept whole (it is what
//! makes the name unique) and the text around it is shortened, the text after it first.

use rand::RngExt;

use crate::PluginError;

/// The template used when a role names none.
pub const DEFAULT_TEMPLATE: &str = "lh_{{role}}_{{principal}}_{{unix_time}}_{{random}}";

/// Characters of the random part: 36^10 ≈ 3.7e15 names per (template, role, principal, second).
const RANDOM_LEN: usize = 10;
const RANDOM_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Role,
    Principal,
    UnixTime,
    Random,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Value(Part),
}

/// A validated username template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameTemplate {
    segments: Vec<Segment>,
}

/// What a username is made from.
#[derive(Debug, Clone, Copy)]
pub struct UsernameInputs<'a> {
    pub role: &'a str,
    pub principal: &'a str,
    pub unix_time: i64,
}

impl UsernameTemplate {
    /// # Errors
    /// `InvalidInput` when the template has text outside `[a-z0-9_]`, an unknown placeholder, or
    /// no `{{random}}` (without it two leases could get the same name).
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        let mut segments = Vec::new();
        let mut rest = text;
        loop {
            let (literal, placeholder) = match rest.find("{{") {
                Some(start) => (&rest[..start], Some(&rest[start + 2..])),
                None => (rest, None),
            };
            if !literal.chars().all(is_name_char) {
                return Err(PluginError::invalid(
                    "usernameTemplate: text outside placeholders may only use a-z, 0-9 and '_'",
                ));
            }
            if !literal.is_empty() {
                segments.push(Segment::Text(literal.to_owned()));
            }
            let Some(after) = placeholder else { break };
            let end = after.find("}}").ok_or_else(|| {
                PluginError::invalid("usernameTemplate: '{{' without a closing '}}'")
            })?;
            let part = match after[..end].trim() {
                "role" => Part::Role,
                "principal" => Part::Principal,
                "unix_time" => Part::UnixTime,
                "random" => Part::Random,
                _ => {
                    return Err(PluginError::invalid(
                        "usernameTemplate: placeholders are {{role}}, {{principal}}, {{unix_time}} and {{random}}",
                    ));
                }
            };
            segments.push(Segment::Value(part));
            rest = &after[end + 2..];
        }
        let randoms = segments
            .iter()
            .filter(|s| **s == Segment::Value(Part::Random))
            .count();
        if randoms != 1 {
            return Err(PluginError::invalid(
                "usernameTemplate must contain {{random}} exactly once; it keeps names unique",
            ));
        }
        Ok(Self { segments })
    }

    /// A fresh username, at most `max_len` characters.
    pub fn generate(&self, inputs: UsernameInputs<'_>, max_len: usize) -> String {
        let mut rng = rand::rng();
        let random: String = (0..RANDOM_LEN)
            .map(|_| char::from(RANDOM_ALPHABET[rng.random_range(0..RANDOM_ALPHABET.len())]))
            .collect();
        self.render(inputs, &random, max_len)
    }

    /// Renders with a given random part; deterministic, so the cut is testable.
    fn render(&self, inputs: UsernameInputs<'_>, random: &str, max_len: usize) -> String {
        let mut before = String::new();
        let mut after = String::new();
        let mut seen_random = false;
        for segment in &self.segments {
            let text = match segment {
                Segment::Text(text) => text.clone(),
                Segment::Value(Part::Role) => fold(inputs.role),
                Segment::Value(Part::Principal) => fold(inputs.principal),
                Segment::Value(Part::UnixTime) => inputs.unix_time.to_string(),
                Segment::Value(Part::Random) => {
                    seen_random = true;
                    continue;
                }
            };
            if seen_random {
                after.push_str(&text);
            } else {
                before.push_str(&text);
            }
        }
        let room = max_len.saturating_sub(random.len());
        after.truncate(room.min(after.len()));
        before.truncate(room.saturating_sub(after.len()).min(before.len()));
        format!("{before}{random}{after}")
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// Lowercases and replaces every character outside `[a-z0-9_]` with `_`.
fn fold(value: &str) -> String {
    value
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if is_name_char(c) { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUTS: UsernameInputs<'static> = UsernameInputs {
        role: "payments-rw",
        principal: "service:prod:payments-api",
        unix_time: 1_800_000_000,
    };

    #[test]
    fn names_fold_hostile_input_to_safe_characters() {
        let template = UsernameTemplate::parse(DEFAULT_TEMPLATE).expect("valid");
        let hostile = UsernameInputs {
            role: "x\"; DROP ROLE postgres; --",
            principal: "ü'`\\",
            unix_time: 1,
        };
        let name = template.render(hostile, "r4nd0m", 63);
        assert_eq!(name, "lh_x___drop_role_postgres__________1_r4nd0m");
        assert!(name.chars().all(is_name_char));
    }

    #[test]
    fn long_names_are_cut_deterministically_keeping_the_random_part() {
        let template = UsernameTemplate::parse(DEFAULT_TEMPLATE).expect("valid");
        let full = template.render(INPUTS, "abcdefghij", 200);
        assert_eq!(
            full,
            "lh_payments_rw_service_prod_payments_api_1800000000_abcdefghij"
        );
        for limit in [32, 63, 80] {
            let cut = template.render(INPUTS, "abcdefghij", limit);
            assert!(cut.len() <= limit);
            assert!(cut.ends_with("abcdefghij"));
            assert_eq!(cut, template.render(INPUTS, "abcdefghij", limit));
        }
        assert_eq!(
            template.render(INPUTS, "abcdefghij", 32),
            "lh_payments_rw_serviceabcdefghij"
        );
        let suffix = UsernameTemplate::parse("{{random}}_{{principal}}").expect("valid");
        assert_eq!(suffix.render(INPUTS, "abcdefghij", 16), "abcdefghij_servi");
    }

    #[test]
    fn generated_names_differ() {
        let template = UsernameTemplate::parse(DEFAULT_TEMPLATE).expect("valid");
        let a = template.generate(INPUTS, 32);
        let b = template.generate(INPUTS, 32);
        assert_ne!(a, b);
        assert!(a.len() <= 32);
    }

    #[test]
    fn templates_without_random_or_with_odd_text_are_refused() {
        for bad in [
            "lh_{{role}}",
            "lh-{{random}}",
            "{{random}}{{random}}",
            "{{random}}_{{tenant}}",
            "{{random",
            "x\"{{random}}",
        ] {
            assert!(UsernameTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}

//! Globs over `environment/path` resources and over principals.
//!
//! `*` matches any run of characters except `/`; `**` matches any run including `/`; every
//! other character matches itself. So `prod/payments/*` matches `prod/payments/stripe-key` but
//! neither `prod/payments-ledger/x` nor `prod/payments/a/b`; `prod/payments/**` matches both
//! nested paths under `prod/payments/` and nothing outside it.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    /// `*`: within one segment.
    Star,
    /// `**`: across segments.
    DoubleStar,
}

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '*' {
                if !literal.is_empty() {
                    tokens.push(Token::Literal(std::mem::take(&mut literal)));
                }
                if chars.peek() == Some(&'*') {
                    chars.next();
                    while chars.peek() == Some(&'*') {
                        chars.next();
                    }
                    tokens.push(Token::DoubleStar);
                } else {
                    tokens.push(Token::Star);
                }
            } else {
                literal.push(c);
            }
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Self {
            source: pattern.to_owned(),
            tokens,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_exact(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Literal(_)))
    }

    pub fn matches(&self, text: &str) -> bool {
        match_tokens(&self.tokens, text)
    }
}

/// One position of the pattern automaton.
#[derive(Clone, Copy)]
enum State {
    Byte(u8),
    /// Consumes any byte but `/`, or nothing.
    Star,
    /// Consumes any byte, or nothing.
    DoubleStar,
}

/// Simulates the pattern as an automaton over the text: `active[i]` says the first `i` states
/// can match the text read so far. Time is O(pattern × text) whatever the pattern, so no
/// pattern can make a decision slow.
fn match_tokens(tokens: &[Token], text: &str) -> bool {
    let states: Vec<State> = tokens
        .iter()
        .flat_map(|token| match token {
            Token::Literal(literal) => literal.bytes().map(State::Byte).collect::<Vec<_>>(),
            Token::Star => vec![State::Star],
            Token::DoubleStar => vec![State::DoubleStar],
        })
        .collect();
    let n = states.len();
    // A wildcard may match nothing, so reaching it also reaches the state after it.
    let skip_empty = |active: &mut [bool]| {
        for i in 0..n {
            if active[i] && !matches!(states[i], State::Byte(_)) {
                active[i + 1] = true;
            }
        }
    };
    let mut active = vec![false; n + 1];
    active[0] = true;
    skip_empty(&mut active);
    for c in text.bytes() {
        let mut next = vec![false; n + 1];
        for i in (0..n).filter(|&i| active[i]) {
            match states[i] {
                State::Byte(b) if b == c => next[i + 1] = true,
                State::Star if c != b'/' => next[i] = true,
                State::DoubleStar => next[i] = true,
                _ => {}
            }
        }
        skip_empty(&mut next);
        if !next.contains(&true) {
            return false;
        }
        active = next;
    }
    active[n]
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn adversarial_patterns_stay_fast() {
        let pattern = format!("{}**Q", "**e".repeat(150));
        let text = "e".repeat(600);
        let started = std::time::Instant::now();
        assert!(!Glob::new(&pattern).matches(&text));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "linear, not exponential"
        );
    }

    #[test]
    fn wildcard_semantics() {
        let cases = [
            (
                "prod/payments/*",
                "prod/payments/stripe-api-key",
                true,
                "one segment",
            ),
            (
                "prod/payments/*",
                "prod/payments-ledger/x",
                false,
                "sibling prefix",
            ),
            (
                "prod/payments/*",
                "prod/payments/a/b",
                false,
                "star stays in its segment",
            ),
            (
                "prod/payments/*",
                "prod/payments/",
                true,
                "star matches empty",
            ),
            (
                "prod/payments/**",
                "prod/payments/a/b",
                true,
                "double star crosses",
            ),
            (
                "prod/payments/**",
                "prod/paymentsx",
                false,
                "double star after slash",
            ),
            ("prod/*/db", "prod/payments/db", true, "middle star"),
            ("prod/*/db", "prod/a/b/db", false, "middle star one segment"),
            ("*", "anything", true, "bare star"),
            ("*", "a/b", false, "bare star is one segment"),
            ("**", "a/b", true, "bare double star"),
            (
                "prod/payments/stripe-api-key",
                "prod/payments/stripe-api-key",
                true,
                "exact",
            ),
            (
                "prod/payments/stripe-api-key",
                "prod/payments/stripe-api-key2",
                false,
                "exact is exact",
            ),
            (
                "service:prod:*",
                "service:prod:payments-api",
                true,
                "principal glob",
            ),
            (
                "service:prod:*",
                "service:staging:payments-api",
                false,
                "principal glob env",
            ),
        ];
        for (pattern, text, expected, case) in cases {
            assert_eq!(Glob::new(pattern).matches(text), expected, "case: {case}");
        }
    }
}

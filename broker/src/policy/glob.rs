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

fn match_tokens(tokens: &[Token], text: &str) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match first {
        Token::Literal(literal) => text
            .strip_prefix(literal.as_str())
            .is_some_and(|remaining| match_tokens(rest, remaining)),
        Token::Star | Token::DoubleStar => {
            let crosses = matches!(first, Token::DoubleStar);
            // Try every split point, shortest first; a `*` stops at the first `/`.
            for (index, c) in text.char_indices() {
                if match_tokens(rest, &text[index..]) {
                    return true;
                }
                if c == '/' && !crosses {
                    return false;
                }
            }
            match_tokens(rest, "")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

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

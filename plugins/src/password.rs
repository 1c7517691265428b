//! Passwords from the operating system's cryptographic generator, under a configurable policy.

use rand::RngExt;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::PluginError;

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
/// No quote, backslash, `$`, `@` or space: nothing a connection string, a shell or a SQL literal
/// treats specially.
const SYMBOLS: &[u8] = b"-_.~!#%^*+=";

pub const MIN_LENGTH: usize = 16;
pub const MAX_LENGTH: usize = 128;

/// How generated passwords look. Every class in use appears at least once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub length: usize,
    pub symbols: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            length: 32,
            symbols: false,
        }
    }
}

impl PasswordPolicy {
    /// # Errors
    /// `InvalidInput` when the length is outside 16–128.
    pub fn new(length: usize, symbols: bool) -> Result<Self, PluginError> {
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
            return Err(PluginError::invalid(format!(
                "passwordPolicy.length must be between {MIN_LENGTH} and {MAX_LENGTH}"
            )));
        }
        Ok(Self { length, symbols })
    }

    fn classes(&self) -> Vec<&'static [u8]> {
        let mut classes = vec![LOWER, UPPER, DIGITS];
        if self.symbols {
            classes.push(SYMBOLS);
        }
        classes
    }

    pub fn generate(&self) -> SecretString {
        let classes = self.classes();
        let alphabet: Vec<u8> = classes.concat();
        let mut rng = rand::rng();
        loop {
            let password = Zeroizing::new(
                (0..self.length)
                    .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                    .collect::<String>(),
            );
            let has_every_class = classes
                .iter()
                .all(|class| password.bytes().any(|b| class.contains(&b)));
            if has_every_class {
                return SecretString::from(password.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn passwords_follow_the_policy() {
        for symbols in [false, true] {
            let policy = PasswordPolicy::new(20, symbols).expect("valid");
            for _ in 0..50 {
                let password = policy.generate();
                let text = password.expose_secret();
                assert_eq!(text.len(), 20);
                assert!(text.bytes().any(|b| b.is_ascii_digit()));
                assert!(text.bytes().any(|b| b.is_ascii_uppercase()));
                assert_eq!(symbols, text.bytes().any(|b| SYMBOLS.contains(&b)));
                assert!(!text.contains(['\'', '"', '\\', '$', '@', ' ']));
            }
        }
        assert!(PasswordPolicy::new(8, false).is_err());
        assert!(PasswordPolicy::new(129, false).is_err());
    }
}

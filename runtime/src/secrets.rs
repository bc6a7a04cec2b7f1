//! Secrets: the values a pipeline reads with `${secret:NAME}` and the AWS
//! credentials in the environment. Every text Sluice writes about its work
//! (its output on standard output and standard error, log lines, metrics,
//! the `error` of dead-letter envelopes, Lambda's error answers) goes
//! through [`redact`], which writes `***` for each of them. Records
//! themselves are data and are written as they are.

use std::borrow::Cow;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Shortest secret: a shorter value would be found all over ordinary text.
pub const MIN_LEN: usize = 4;

/// The environment variables holding AWS credentials.
const AWS_CREDENTIALS: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Credentials shorter than this (an emulator's `testing`) are not real
/// ones, and are left alone.
const MIN_CREDENTIAL_LEN: usize = 16;

static ANY: AtomicBool = AtomicBool::new(false);
/// The texts to replace, longest first (a secret inside another is masked
/// as part of the longer one).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Marks `value` secret from now on, in the forms it takes in text and in
/// JSON (escaped). A value shorter than [`MIN_LEN`] is refused: the loader
/// reports it.
pub fn register(value: &str) -> bool {
    if value.len() < MIN_LEN {
        return false;
    }
    let escaped = serde_json::to_string(value).unwrap_or_default();
    let escaped = escaped
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(value);
    if let Ok(mut s) = SECRETS.write() {
        for form in [value, escaped] {
            if !s.iter().any(|k| k == form) {
                s.push(form.to_owned());
            }
        }
        s.sort_by_key(|k| std::cmp::Reverse(k.len()));
        ANY.store(true, Ordering::Release);
    }
    true
}

/// Marks the AWS credentials of the environment secret.
pub fn register_environment() {
    for name in AWS_CREDENTIALS {
        if let Ok(v) = std::env::var(name)
            && v.len() >= MIN_CREDENTIAL_LEN
        {
            register(&v);
        }
    }
}

/// `text` with every secret replaced by [`MASK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    if !ANY.load(Ordering::Acquire) {
        return Cow::Borrowed(text);
    }
    let Ok(secrets) = SECRETS.read() else {
        return Cow::Borrowed(text);
    };
    let mut out = Cow::Borrowed(text);
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), MASK));
        }
    }
    out
}

/// [`redact`] of an owned text.
pub fn redact_owned(text: String) -> String {
    match redact(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(o) => o,
    }
}

/// `println!` with secrets redacted.
#[macro_export]
macro_rules! outln {
    () => { println!() };
    ($($t:tt)*) => { println!("{}", $crate::secrets::redact(&format!($($t)*))) };
}

/// `print!` with secrets redacted.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { print!("{}", $crate::secrets::redact(&format!($($t)*))) };
}

/// `eprintln!` with secrets redacted.
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => { eprintln!("{}", $crate::secrets::redact(&format!($($t)*))) };
}

/// `eprint!` with secrets redacted.
#[macro_export]
macro_rules! err {
    ($($t:tt)*) => { eprint!("{}", $crate::secrets::redact(&format!($($t)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_text_and_in_json() {
        assert!(register("s3cr3t-\"quoted\"-value"));
        assert!(register("s3cr3t"));
        assert!(!register("abc"), "too short");
        assert_eq!(
            redact("a s3cr3t-\"quoted\"-value and s3cr3t, not abc"),
            "a *** and ***, not abc"
        );
        let json = serde_json::json!({ "e": "key s3cr3t-\"quoted\"-value" }).to_string();
        assert_eq!(redact(&json), r#"{"e":"key ***"}"#);
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }
}

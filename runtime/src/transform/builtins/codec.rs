//! Hashing, encodings, UUIDs and JSON text inside a record.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use md5::Md5;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rhai::{Dynamic, Engine, INT};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Out, fail};
use crate::transform::convert;

pub fn register(e: &mut Engine) {
    e.register_fn("sha256", |s: &str| hex::encode(Sha256::digest(s)))
        .register_fn("md5", |s: &str| hex::encode(Md5::digest(s)))
        .register_fn("hash64", |s: &str| {
            xxhash_rust::xxh3::xxh3_64(s.as_bytes()) as INT
        })
        .register_fn("hash_bucket", |s: &str, buckets: INT| {
            if buckets <= 0 {
                return fail(
                    "hash_bucket",
                    format!("the number of buckets must be positive, not {buckets}"),
                );
            }
            Ok((xxhash_rust::xxh3::xxh3_64(s.as_bytes()) % buckets as u64) as INT)
        })
        .register_fn("base64_encode", |s: &str| STANDARD_ANY_PAD.encode(s))
        .register_fn("base64url_encode", |s: &str| URL_SAFE_ANY_PAD.encode(s))
        .register_fn("base64_decode", |s: &str| {
            let bytes = STANDARD_ANY_PAD.decode(s);
            text("base64_decode", bytes.map_err(|e| e.to_string()))
        })
        .register_fn("base64url_decode", |s: &str| {
            let bytes = URL_SAFE_ANY_PAD.decode(s);
            text("base64url_decode", bytes.map_err(|e| e.to_string()))
        })
        .register_fn("hex_encode", |s: &str| hex::encode(s))
        .register_fn("hex_decode", |s: &str| {
            text("hex_decode", hex::decode(s).map_err(|e| e.to_string()))
        })
        .register_fn("url_encode", |s: &str| {
            utf8_percent_encode(s, NON_ALPHANUMERIC_KEPT).to_string()
        })
        .register_fn("url_decode", |s: &str| {
            match percent_decode_str(s).decode_utf8() {
                Ok(t) => Ok(t.into_owned()),
                Err(_) => fail("url_decode", "the decoded bytes are not UTF-8 text"),
            }
        })
        .register_fn("uuid", || Uuid::new_v4().to_string())
        .register_fn("uuid_v5", |namespace: &str, name: &str| {
            let ns = match namespace {
                "dns" => Uuid::NAMESPACE_DNS,
                "url" => Uuid::NAMESPACE_URL,
                "oid" => Uuid::NAMESPACE_OID,
                "x500" => Uuid::NAMESPACE_X500,
                other => match Uuid::parse_str(other) {
                    Ok(u) => u,
                    Err(_) => {
                        return fail(
                            "uuid_v5",
                            format!(
                                "the namespace {other:?} is neither \"dns\", \"url\", \"oid\", \"x500\" nor a UUID"
                            ),
                        );
                    }
                },
            };
            Ok(Uuid::new_v5(&ns, name.as_bytes()).to_string())
        })
        .register_fn("parse_json", |s: &str| -> Out<Dynamic> {
            match serde_json::from_str(s) {
                Ok(v) => Ok(convert::to_dynamic(v)),
                Err(e) => fail("parse_json", format!("not JSON: {e}")),
            }
        })
        // Rhai's own `to_json` of a map writes non-finite numbers as `inf`:
        // these, found first, replace it. One per type, not one taking any
        // value: a function with a `Dynamic` parameter makes Rhai look for
        // such versions of other calls too, on every record.
        .register_fn("to_json", |m: rhai::Map| to_json(m.into()))
        .register_fn("to_json", |a: rhai::Array| to_json(a.into()))
        .register_fn("to_json", |v: INT| to_json(v.into()))
        .register_fn("to_json", |v: rhai::FLOAT| to_json(v.into()))
        .register_fn("to_json", |v: bool| to_json(v.into()))
        .register_fn("to_json", |v: rhai::ImmutableString| to_json(v.into()))
        .register_fn("to_json", |v: char| to_json(v.into()))
        .register_fn("to_json", |()| to_json(Dynamic::UNIT));
}

fn to_json(v: Dynamic) -> Out<String> {
    let mut out = Vec::new();
    match convert::write_json_of(&mut out, &v, "value") {
        Ok(()) => Ok(String::from_utf8(out).expect("JSON is UTF-8")),
        Err(why) => fail("to_json", why),
    }
}

/// Standard Base64, decoding with or without padding.
const STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe Base64, written without padding, read with or without.
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Characters `url_encode` leaves as they are: RFC 3986's unreserved ones.
const NON_ALPHANUMERIC_KEPT: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Decoded bytes as text.
fn text(function: &str, bytes: Result<Vec<u8>, String>) -> Out<String> {
    match bytes {
        Ok(b) => match String::from_utf8(b) {
            Ok(s) => Ok(s),
            Err(_) => fail(function, "the decoded bytes are not UTF-8 text"),
        },
        Err(why) => fail(function, format!("invalid input: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{error, json};

    #[test]
    fn hashes_are_lower_case_hex_and_stable() {
        assert_eq!(
            json(r#"sha256("abc")"#),
            r#""ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad""#
        );
        assert_eq!(
            json(r#"md5("abc")"#),
            r#""900150983cd24fb0d6963f7d28e17f72""#
        );
        // XXH3-64 of "abc", as a signed 64-bit integer.
        assert_eq!(json(r#"hash64("abc")"#), "8696274497037089104");
        assert_eq!(json(r#"hash_bucket("abc", 16)"#), "0");
        assert_eq!(json(r#"hash_bucket("customer-7", 16)"#), "8");
        assert_eq!(
            error(r#"hash_bucket("x", 0)"#),
            "hash_bucket: the number of buckets must be positive, not 0"
        );
    }

    #[test]
    fn encodes_and_decodes() {
        assert_eq!(json(r#"base64_encode("héllo?")"#), r#""aMOpbGxvPw==""#);
        assert_eq!(json(r#"base64_decode("aMOpbGxvPw==")"#), r#""héllo?""#);
        assert_eq!(json(r#"base64_decode("aMOpbGxvPw")"#), r#""héllo?""#);
        assert_eq!(json(r#"base64url_encode("héllo?")"#), r#""aMOpbGxvPw""#);
        assert_eq!(json(r#"base64url_decode("aMOpbGxvPw")"#), r#""héllo?""#);
        assert_eq!(json(r#"hex_encode("hi")"#), r#""6869""#);
        assert_eq!(json(r#"hex_decode("6869")"#), r#""hi""#);
        assert_eq!(
            json(r#"url_encode("a b&c=d/é~")"#),
            r#""a%20b%26c%3Dd%2F%C3%A9~""#
        );
        assert_eq!(json(r#"url_decode("a%20b%26c")"#), r#""a b&c""#);
        assert_eq!(
            error(r#"base64_decode("!!")"#),
            "base64_decode: invalid input: Invalid symbol 33, offset 0."
        );
        assert_eq!(
            error(r#"hex_decode("ff")"#),
            "hex_decode: the decoded bytes are not UTF-8 text"
        );
    }

    #[test]
    fn uuids_are_random_or_name_based() {
        let a = json("uuid()");
        assert_eq!(a.len(), 38, "{a}");
        assert_ne!(a, json("uuid()"));
        assert_eq!(
            json(r#"uuid_v5("dns", "example.com")"#),
            r#""cfbff0d1-9375-5685-968c-48ce8b15ae17""#
        );
        assert!(error(r#"uuid_v5("cats", "x")"#).starts_with("uuid_v5: the namespace \"cats\""));
    }

    #[test]
    fn json_text_is_parsed_and_written() {
        assert_eq!(
            json(r#"parse_json("{\"a\":[1,2.5,null],\"b\":\"x\"}")"#),
            r#"{"a":[1,2.5,null],"b":"x"}"#
        );
        assert_eq!(
            json(r#"to_json(#{ b: [1, ()], a: "x" })"#),
            r#""{\"a\":\"x\",\"b\":[1,null]}""#
        );
        assert!(error(r#"parse_json("{")"#).starts_with("parse_json: not JSON: EOF while parsing"));
        assert_eq!(
            error("to_json(#{ f: 1.0 / 0.0 })"),
            "to_json: `value.f` is infinite, which JSON cannot hold"
        );
    }
}

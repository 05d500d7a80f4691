//! RFC 8785 JSON Canonicalization Scheme (JCS), for the subset Custody
//! uses: objects, arrays, strings, integers within ±(2^53 − 1), booleans.
//! Floats and `null` are refused (no Custody format needs them, and JCS
//! number formatting for floats is where implementations disagree).
//!
//! Encoding: no whitespace; object members sorted by the UTF-16 code units
//! of their names; strings escaped exactly as ECMAScript `JSON.stringify`
//! does (`\"`, `\\`, `\b \t \n \f \r`, other controls as `\u00xx` in
//! lower-case hex, everything else as UTF-8).
//!
//! Validation parses and re-encodes, then compares bytes: any whitespace,
//! other escape, member order, duplicate member or number form is refused.

use crate::EnvelopeError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Largest integer magnitude allowed (exactly representable as an IEEE double).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Canonical bytes of any serde value in the subset.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EnvelopeError> {
    let v =
        serde_json::to_value(value).map_err(|_| EnvelopeError::Canonical("not serializable"))?;
    encode_value(&v)
}

/// Canonical bytes of a JSON value in the subset.
pub fn encode_value(value: &Value) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::new();
    write_value(&mut out, value)?;
    Ok(out)
}

/// Parses `bytes` as JSON and checks that they are exactly the canonical
/// encoding of what they contain.
pub fn validate(bytes: &[u8]) -> Result<Value, EnvelopeError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|_| EnvelopeError::Canonical("not valid JSON"))?;
    let again = encode_value(&v)?;
    if again != bytes {
        return Err(EnvelopeError::Canonical("not in canonical form"));
    }
    Ok(v)
}

/// [`validate`], then deserializes into `T`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, EnvelopeError> {
    let v = validate(bytes)?;
    serde_json::from_value(v).map_err(|_| EnvelopeError::Canonical("unexpected structure"))
}

/// Appends the canonical encoding of a value.
pub fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), EnvelopeError> {
    match value {
        Value::Null => return Err(EnvelopeError::Canonical("null is not allowed")),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                write_int(out, u, false)?;
            } else if let Some(i) = n.as_i64() {
                write_int(out, i.unsigned_abs(), i < 0)?;
            } else {
                return Err(EnvelopeError::Canonical("only integers are allowed"));
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, v)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_int(out: &mut Vec<u8>, magnitude: u64, negative: bool) -> Result<(), EnvelopeError> {
    if magnitude > MAX_SAFE_INTEGER {
        return Err(EnvelopeError::Canonical("integer out of range"));
    }
    if negative && magnitude != 0 {
        out.push(b'-');
    }
    out.extend_from_slice(magnitude.to_string().as_bytes());
    Ok(())
}

/// Appends a JSON string in canonical form.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x09 => Some(b"\\t"),
            0x0a => Some(b"\\n"),
            0x0c => Some(b"\\f"),
            0x0d => Some(b"\\r"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_by_utf16_and_escapes_like_ecmascript() {
        // U+10000 (surrogates D800..) sorts before U+E000 in UTF-16 order,
        // after it in UTF-8 order.
        let v = json!({"\u{e000}": 1, "\u{10000}": 2, "b": [true, false, -5], "a": "x\"\\\n\u{1}\u{7f}é"});
        let s = String::from_utf8(encode_value(&v).unwrap()).unwrap();
        assert_eq!(
            s,
            "{\"a\":\"x\\\"\\\\\\n\\u0001\u{7f}é\",\"b\":[true,false,-5],\"\u{10000}\":2,\"\u{e000}\":1}"
        );
        assert_eq!(validate(s.as_bytes()).unwrap(), v);
    }

    #[test]
    fn refuses_non_canonical_forms() {
        for bad in [
            &b"{\"b\":1,\"a\":2}"[..],
            b"{ \"a\":1}",
            b"{\"a\":1,\"a\":1}",
            b"{\"a\":1.0}",
            b"{\"a\":1e2}",
            b"{\"a\":-0}",
            b"{\"a\":null}",
            b"{\"a\":\"\\u0041\"}",
            b"{\"a\":\"\\/\"}",
            b"{\"a\":9007199254740992}",
            b"[1,2]\n",
            b"",
        ] {
            assert!(
                matches!(validate(bad), Err(EnvelopeError::Canonical(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(validate(b"{\"a\":9007199254740991,\"b\":-9007199254740991}").is_ok());
    }
}

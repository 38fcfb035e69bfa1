//! JSON as text: a value's kind as messages name it, and a walk over text
//! that serde_json has already accepted, to find where its parts stand
//! (serde_json's values keep no positions, and its maps sort their keys).
//! Datasets and counterfactual pairs use it here; `import::locate` for
//! other tools' files.

use serde_json::Value;

/// A JSON value's kind, as messages name it.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// The walk below reads text serde_json has accepted, so it checks nothing.

/// Past the white space at `i`.
pub fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// Past the string whose opening quote is at `i`.
pub fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while let Some(&c) = b.get(i) {
        i += match c {
            b'\\' => 2,
            b'"' => return i + 1,
            _ => 1,
        };
    }
    i
}

/// Past the value that starts at `i`.
pub fn skip_value(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'"') => skip_string(b, i),
        Some(b'{' | b'[') => {
            let (mut depth, mut i) = (0usize, i);
            while let Some(&c) = b.get(i) {
                match c {
                    b'"' => {
                        i = skip_string(b, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            i
        }
        _ => {
            let mut i = i;
            while b
                .get(i)
                .is_some_and(|c| !matches!(c, b',' | b']' | b'}') && !c.is_ascii_whitespace())
            {
                i += 1;
            }
            i
        }
    }
}

// serde_json's `Map` keeps no positions (and sorts its keys), so the
// entries of an object are found again in the text, which serde_json has
// already accepted: the walk below checks nothing.

/// The entries of the JSON object at byte `start` of `text`, in written
/// order: each key with the byte offsets of the key and of its value.
pub fn object_entries(text: &str, start: usize) -> Vec<(String, usize, usize)> {
    let b = text.as_bytes();
    let mut at = skip_ws(b, start) + 1;
    let mut entries = Vec::new();
    loop {
        at = skip_ws(b, at);
        if b.get(at) != Some(&b'"') {
            return entries;
        }
        let key_at = at;
        at = skip_string(b, at);
        let key = serde_json::from_str(&text[key_at..at]).unwrap_or_default();
        let value_at = skip_ws(b, skip_ws(b, at) + 1);
        at = skip_ws(b, skip_value(b, value_at));
        entries.push((key, key_at, value_at));
        if b.get(at) != Some(&b',') {
            return entries;
        }
        at += 1;
    }
}

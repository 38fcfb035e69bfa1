//! Checking a judge's evidence: is the quote it gives really in the message
//! it cites? Compared after normalizing case, punctuation and spacing, so a
//! quote that drops a comma still counts; words are matched whole; an
//! ellipsis in the quote stands for omitted text, and its parts must
//! appear in order.

/// Whether `quote` is found in `message`.
pub fn quoted_in(quote: &str, message: &str) -> bool {
    // Padded with spaces, so that parts match whole words only.
    let text = format!(" {} ", normalized(message));
    let mut from = 0;
    let mut any = false;
    for part in quote.split(['…']).flat_map(|p| p.split("...")) {
        let part = normalized(part);
        if part.is_empty() {
            continue;
        }
        let part = format!(" {part} ");
        match text[from..].find(&part) {
            // The space after the part may start the next one.
            Some(at) => from += at + part.len() - 1,
            None => return false,
        }
        any = true;
    }
    any
}

/// Lowercase words separated by single spaces.
fn normalized(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::quoted_in;

    #[test]
    fn quotes_match_through_case_punctuation_and_ellipses() {
        let m = "Let me restart: we should, once again, compute the total.";
        assert!(quoted_in("we should once again compute", m));
        assert!(quoted_in("LET ME RESTART … the total", m));
        assert!(!quoted_in("the total … let me restart", m));
        assert!(!quoted_in("we must compute", m));
        assert!(!quoted_in(" … ", m));
        // Whole words only: "he" is not in "the total".
        assert!(!quoted_in("he", m));
        assert!(quoted_in("compute the", m));
    }
}

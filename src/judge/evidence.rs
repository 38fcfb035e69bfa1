//! Checking a judge's evidence: is the quote it gives really in the message
//! it cites? Compared after normalizing case, punctuation and spacing, so a
//! quote that drops a comma still counts; words are matched whole; an
//! ellipsis in the quote stands for omitted text, and its parts must
//! appear in order.

/// Whether `quote` is found in `message`.
pub fn quoted_in(quote: &str, message: &str) -> bool {
    quoted_spans(quote, message).is_some()
}

/// Where in `message` (byte ranges, in order) each part of `quote` is
/// found, or `None` when it is not: what the viewer highlights.
pub fn quoted_spans(quote: &str, message: &str) -> Option<Vec<std::ops::Range<usize>>> {
    let text = words(message);
    let mut from = 0;
    let mut spans = Vec::new();
    for part in quote.split(['…']).flat_map(|p| p.split("...")) {
        let part: Vec<String> = words(part).into_iter().map(|(_, w)| w).collect();
        if part.is_empty() {
            continue;
        }
        let at = (from..=text.len().checked_sub(part.len())?).find(|&i| {
            text[i..i + part.len()]
                .iter()
                .zip(&part)
                .all(|((_, w), p)| w == p)
        })?;
        spans.push(text[at].0.start..text[at + part.len() - 1].0.end);
        from = at + part.len();
    }
    (!spans.is_empty()).then_some(spans)
}

/// The words of `text` (runs of letters and digits), lowercased, with
/// where each is.
fn words(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                words.push((s..i, text[s..i].to_lowercase()));
                start = None;
            }
            _ => {}
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::{quoted_in, quoted_spans};

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

    #[test]
    fn spans_cover_each_part_of_the_quote_in_the_original_text() {
        let m = "Let me restart: we should, once again, compute the Total.";
        let spans = quoted_spans("we should once again … the total", m).unwrap();
        let found: Vec<&str> = spans.iter().map(|r| &m[r.clone()]).collect();
        assert_eq!(found, ["we should, once again", "the Total"]);
        assert_eq!(quoted_spans("the total … we should", m), None);
        // Non-ASCII words keep their byte ranges.
        let m = "Ünïcode — straße ends here";
        let spans = quoted_spans("STRASSE", m);
        assert_eq!(spans, None);
        let spans = quoted_spans("straße ends", m).unwrap();
        assert_eq!(&m[spans[0].clone()], "straße ends");
    }
}

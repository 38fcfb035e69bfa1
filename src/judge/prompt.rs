//! A failure judge's prompt for one trace: the judge file's template over
//! the task, the numbered transcript and the modes, with the transcript
//! fitted into `max_trace_tokens` when it is given.
//!
//! Fitting keeps every message, and of each long one its head and tail: the
//! longest messages are cut to one common length (the largest that fits),
//! so short messages stay whole. What was cut is marked in place
//! (`[… N characters cut …]`) and counted, and the judgement records it.

use crate::model::judged::TraceView;
use crate::scenario::judge_file::JudgeFile;

/// Characters a token stands for, as the fitting budgets them.
pub const CHARS_PER_TOKEN: usize = 4;

/// The least of a message kept when cutting: its head and tail.
const MIN_KEPT: usize = 48;

/// A rendered prompt and what fitting cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub system: String,
    pub user: String,
    /// Messages shortened, and characters cut from them.
    pub cut: (usize, usize),
}

/// The header of the message at `position`, as the judge cites it.
fn header(position: usize, sender: Option<&str>) -> String {
    format!("[turn {position}] {}: ", sender.unwrap_or("(unknown)"))
}

/// The prompt of `judge` for `view`, its transcript fitted into
/// `max_tokens` (prompt and system message together) when given.
pub fn render(
    judge: &JudgeFile,
    view: &TraceView,
    max_tokens: Option<usize>,
) -> Result<Prompt, String> {
    let modes: Vec<&crate::scenario::judge_file::JudgeMode> =
        view.modes.iter().filter_map(|&m| judge.mode(m)).collect();
    let fill = |transcript: &str, truncated: bool| {
        let mut ctx = serde_json::Map::new();
        ctx.insert("task".into(), view.task.clone().into());
        ctx.insert("transcript".into(), transcript.into());
        ctx.insert(
            "modes".into(),
            serde_json::to_value(&modes).expect("modes serialize"),
        );
        ctx.insert("truncated".into(), truncated.into());
        judge.user.render(&ctx)
    };
    let frame = match max_tokens {
        Some(_) => fill("", true)?.chars().count() + judge.system.chars().count(),
        None => 0,
    };
    let entries: Vec<(String, &str)> = view
        .messages
        .iter()
        .map(|m| (header(m.position, m.sender.as_deref()), m.text.as_str()))
        .collect();
    let (transcript, cut) = fit(&entries, "\n\n", frame, max_tokens);
    Ok(Prompt {
        system: judge.system.clone(),
        user: fill(&transcript, cut.0 > 0)?,
        cut,
    })
}

/// `entries` (a header, then a message's text) joined by `separator`, the
/// longest texts cut to one common length so that the whole, with `frame`
/// characters of prompt around it, fits in `max_tokens` when given; and
/// (messages cut, characters cut).
pub(super) fn fit(
    entries: &[(String, &str)],
    separator: &str,
    frame: usize,
    max_tokens: Option<usize>,
) -> (String, (usize, usize)) {
    let lengths: Vec<usize> = entries.iter().map(|(_, t)| t.chars().count()).collect();
    let cap = max_tokens.and_then(|tokens| {
        let headers: usize = entries
            .iter()
            .map(|(h, _)| h.chars().count() + separator.chars().count())
            .sum();
        let room = (tokens * CHARS_PER_TOKEN).saturating_sub(frame + headers);
        common_cap(&lengths, room)
    });
    let mut cut = (0, 0);
    let mut transcript = String::new();
    for ((head, text), &len) in entries.iter().zip(&lengths) {
        if !transcript.is_empty() {
            transcript.push_str(separator);
        }
        transcript.push_str(head);
        match cap {
            Some(cap) if len > cap => {
                let marker = |n: usize| format!(" [… {n} characters cut …] ");
                let keep = cap
                    .saturating_sub(marker(len).chars().count())
                    .max(MIN_KEPT);
                let dropped = len.saturating_sub(keep);
                if dropped == 0 {
                    transcript.push_str(text);
                    continue;
                }
                let head: String = text.chars().take(keep - keep / 2).collect();
                let tail: String = text.chars().skip(len - keep / 2).collect();
                transcript.push_str(&head);
                transcript.push_str(&marker(dropped));
                transcript.push_str(&tail);
                cut = (cut.0 + 1, cut.1 + dropped);
            }
            _ => transcript.push_str(text),
        }
    }
    (transcript, cut)
}

/// The largest length `c` with Σ min(len, c) ≤ `room`: every message
/// longer than `c` is cut to it. `None` when everything fits.
fn common_cap(lengths: &[usize], room: usize) -> Option<usize> {
    if lengths.iter().sum::<usize>() <= room {
        return None;
    }
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable();
    let mut used = 0;
    for (i, &len) in sorted.iter().enumerate() {
        let rest = sorted.len() - i;
        // Every message from here on gets the same share of what is left.
        let share = (room - used) / rest;
        if len > share {
            return Some(share.max(MIN_KEPT));
        }
        used += len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_cap_cuts_only_the_longest_messages() {
        // 10 + 20 fit whole; the 1000 and 500 share the remaining 170 - 30.
        assert_eq!(common_cap(&[10, 1000, 20, 500], 170), Some(70));
        assert_eq!(common_cap(&[10, 20], 30), None);
        // Never below the floor, even when nothing fits.
        assert_eq!(common_cap(&[1000, 1000], 10), Some(MIN_KEPT));
    }
}

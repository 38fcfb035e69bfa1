//! An external command that canonicalizes answers (`normalize: [{command:
//! [...]}]`): answers with the same canonical form are one answer, for
//! equivalences no built-in step knows (algebraic expressions, units, code).
//!
//! One long-lived process per step, started on first use in the scenario's
//! directory, fed one JSON string per line on stdin and answering one line
//! each (a JSON string, or plain text); every answer is asked once and
//! cached. Next to command verifiers, this is the only place that starts
//! processes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

/// How long the command may take to answer one line.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A canonicalizing command and its running process.
#[derive(Debug)]
pub struct Canonicalizer {
    argv: Vec<String>,
    dir: PathBuf,
    timeout: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    process: Option<Process>,
    cache: HashMap<String, String>,
}

#[derive(Debug)]
struct Process {
    child: Child,
    stdin: ChildStdin,
    /// Lines the command prints, read on their own thread so that waiting
    /// for one can time out.
    lines: Receiver<std::io::Result<String>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Canonicalizer {
    /// `argv` runs in `dir` (the scenario's directory) when first needed,
    /// and may take `timeout` to answer each line.
    pub fn new(argv: Vec<String>, dir: PathBuf, timeout: Duration) -> Self {
        Canonicalizer {
            argv,
            dir,
            timeout,
            state: Mutex::new(State::default()),
        }
    }

    /// The canonical form of `answer`. A command that cannot start, exits or
    /// prints nothing is an error (and is started afresh next time).
    pub fn canonical(&self, answer: &str) -> Result<String, String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = state.cache.get(answer) {
            return Ok(known.clone());
        }
        let asked = self.ask(&mut state.process, answer);
        if asked.is_err() {
            state.process = None;
        }
        let canonical =
            asked.map_err(|e| format!("answer command `{}`: {e}", self.argv.join(" ")))?;
        state.cache.insert(answer.to_owned(), canonical.clone());
        Ok(canonical)
    }

    fn ask(&self, process: &mut Option<Process>, answer: &str) -> Result<String, String> {
        let p = match process {
            Some(p) => p,
            None => process.insert(self.start()?),
        };
        let line = serde_json::to_string(answer).expect("a string serializes");
        writeln!(p.stdin, "{line}")
            .and_then(|()| p.stdin.flush())
            .map_err(|e| format!("cannot write to it: {e}"))?;
        match p.lines.recv_timeout(self.timeout) {
            Err(RecvTimeoutError::Disconnected) => Err("it exited without answering".into()),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "it did not answer within {} s",
                self.timeout.as_secs_f64()
            )),
            Ok(Err(e)) => Err(format!("cannot read its answer: {e}")),
            Ok(Ok(reply)) => {
                let reply = reply.trim_end_matches(['\n', '\r']);
                Ok(match serde_json::from_str::<serde_json::Value>(reply) {
                    Ok(serde_json::Value::String(s)) => s,
                    _ => reply.trim().to_owned(),
                })
            }
        }
    }

    fn start(&self) -> Result<Process, String> {
        let mut child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start it: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, lines) = channel();
        // Ends when the command closes its output (it exits or is killed).
        std::thread::spawn(move || {
            for line in stdout.lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Process {
            child,
            stdin,
            lines,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Canonicalizer {
        Canonicalizer::new(
            vec!["sh".into(), "-c".into(), script.into()],
            std::env::temp_dir(),
            Duration::from_secs(10),
        )
    }

    #[test]
    fn answers_are_canonicalized_once_each() {
        // Upper-cases each JSON line and counts the lines it has read.
        let c = sh(r#"n=0; while IFS= read -r l; do n=$((n+1)); echo "$l $n" | tr a-z A-Z; done"#);
        assert_eq!(c.canonical("x").unwrap(), "\"X\" 1");
        assert_eq!(c.canonical("y").unwrap(), "\"Y\" 2");
        // Cached: the process is not asked again.
        assert_eq!(c.canonical("x").unwrap(), "\"X\" 1");
        // A JSON string reply is decoded.
        let c = sh(r#"while IFS= read -r l; do printf '%s\n' "$l"; done"#);
        assert_eq!(c.canonical("a \"b\"\nc").unwrap(), "a \"b\"\nc");
    }

    #[test]
    fn a_failing_command_is_an_error_and_restarts() {
        let c = sh("read -r l; echo one; exit 0");
        assert_eq!(c.canonical("a").unwrap(), "one");
        // Gone before or after reading the answer: either way it failed.
        let e = c.canonical("b").unwrap_err();
        assert!(
            e.contains("exited without answering") || e.contains("cannot write to it"),
            "{e}"
        );
        // Started afresh.
        assert_eq!(c.canonical("c").unwrap(), "one");
        let missing = Canonicalizer::new(
            vec!["/nonexistent/canon".into()],
            std::env::temp_dir(),
            Duration::from_secs(10),
        );
        assert!(
            missing
                .canonical("a")
                .unwrap_err()
                .contains("cannot start it")
        );
    }

    #[test]
    fn a_command_that_does_not_answer_times_out() {
        let silent = Canonicalizer::new(
            vec![
                "sh".into(),
                "-c".into(),
                "while read -r l; do :; done".into(),
            ],
            std::env::temp_dir(),
            Duration::from_millis(200),
        );
        let e = silent.canonical("a").unwrap_err();
        assert!(e.contains("did not answer within 0.2 s"), "{e}");
    }
}

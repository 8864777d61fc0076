//! The README's shell examples, run in order in one shell against a real quell, so that they
//! cannot drift from what quell does.
//!
//! Every ```` ```sh ```` block is run unless the line before it is
//! `<!-- readme-test: skip -->`; the block after `<!-- readme-test: env -->` names quell
//! (`SMTP`, `Q`, `KEY`): the test keeps its `KEY` (quell gets it as its API key) and points
//! `SMTP` and `Q` at the quell it started on free ports. In a block, a line `$ command` (with
//! `\` continuations) is a command whose output must be the lines under it, compared after
//! times and ids are blanked; a line `...` there stands for any lines, `…` within a line for
//! any text. A block without `$` lines is a script whose commands must each succeed. Every
//! command must exit 0 (a refusal example says `; echo "exit $?"`), and `curl` fails on an
//! HTTP error unless the command prints the status itself (`-w`). `<link from the message>`
//! is the unsubscribe link in the last message quell delivered, as a reader would copy it.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::support::{Quell, WAIT};

/// One command and the output the README shows for it (`None`: not shown).
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    expected: Option<Vec<String>>,
}

/// The README's runnable blocks as steps, and the `NAME=VALUE` pairs of the env block.
fn steps(readme: &str) -> (Vec<Step>, Vec<(String, String)>) {
    let lines: Vec<&str> = readme.lines().collect();
    let mut steps = Vec::new();
    let mut env = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "```sh" {
            i += 1;
            continue;
        }
        let mark = if i > 0 { lines[i - 1].trim() } else { "" };
        let start = i + 1;
        let mut end = start;
        while lines[end].trim() != "```" {
            end += 1;
        }
        let body = &lines[start..end];
        i = end + 1;
        match mark {
            "<!-- readme-test: skip -->" => continue,
            "<!-- readme-test: env -->" => {
                for word in body.iter().flat_map(|l| l.split_whitespace()) {
                    let (k, v) = word.split_once('=').expect("NAME=VALUE");
                    env.push((k.to_string(), v.to_string()));
                }
                continue;
            }
            _ => {}
        }
        let prompted = body.iter().any(|l| l.starts_with("$ "));
        let mut j = 0;
        while j < body.len() {
            let raw = body[j];
            let at = start + j + 1;
            j += 1;
            let text = if prompted {
                match raw.strip_prefix("$ ") {
                    Some(rest) => rest,
                    None if raw.trim_start().starts_with('#') => continue,
                    None => panic!("README line {at}: output without a command: {raw}"),
                }
            } else {
                raw
            };
            if text.trim().is_empty() || text.trim_start().starts_with('#') {
                continue;
            }
            let mut command = text.to_string();
            while command.ends_with('\\') && j < body.len() {
                command.push('\n');
                command.push_str(body[j]);
                j += 1;
            }
            let mut expected = None;
            if prompted {
                let mut out = Vec::new();
                while j < body.len() && !body[j].starts_with("$ ") {
                    if !body[j].trim_start().starts_with('#') {
                        out.push(body[j].to_string());
                    }
                    j += 1;
                }
                if !out.is_empty() {
                    expected = Some(out);
                }
            }
            steps.push(Step {
                line: at,
                command,
                expected,
            });
        }
    }
    (steps, env)
}

/// `text` with dates, times and quell's ids blanked, trimmed.
fn normalise(text: &str) -> String {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let digits = |from: usize, n: usize| {
        chars.len() >= from + n && chars[from..from + n].iter().all(char::is_ascii_digit)
    };
    while i < chars.len() {
        // 2026-11-27T13:24:58Z, 2026-11-27 13:53:13
        if digits(i, 4)
            && chars.get(i + 4) == Some(&'-')
            && digits(i + 5, 2)
            && chars.get(i + 7) == Some(&'-')
            && digits(i + 8, 2)
        {
            let mut end = i + 10;
            if matches!(chars.get(end), Some('T' | ' '))
                && digits(end + 1, 2)
                && chars.get(end + 3) == Some(&':')
            {
                end += 9;
                if chars.get(end) == Some(&'Z') {
                    end += 1;
                }
            }
            out.push_str("<time>");
            i = end;
            continue;
        }
        // Queue and task ids: 20 upper-case hex digits.
        let hex = |c: &char| c.is_ascii_digit() || ('A'..='F').contains(c);
        if chars.len() >= i + 20
            && chars[i..i + 20].iter().all(hex)
            && chars.get(i + 20).is_none_or(|c| !c.is_ascii_alphanumeric())
            && (i == 0 || !chars[i - 1].is_ascii_alphanumeric())
        {
            out.push_str("<id>");
            i += 20;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Whether `line` matches the README's `pattern`, `…` standing for any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let mut rest = line;
    for (n, part) in parts.iter().enumerate() {
        if n == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if n == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Whether `actual` (lines) matches `expected`, a `...` line standing for any lines.
fn output_matches(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| output_matches(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, more)| line_matches(first, line) && output_matches(rest, more)),
    }
}

/// One bash that keeps its variables from command to command.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    out: Lines<BufReader<ChildStdout>>,
    n: u32,
}

impl Shell {
    fn start(dir: &std::path::Path, env: &[(String, String)]) -> Shell {
        let mut child = Command::new("bash")
            .arg("--noprofile")
            .arg("--norc")
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env_remove("QUELL_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("bash");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Shell {
            child,
            stdin,
            out,
            n: 0,
        }
    }

    /// Runs `command`; its exit status and output lines (stdout and stderr).
    async fn run(&mut self, command: &str) -> (i32, Vec<String>) {
        self.n += 1;
        let end = format!("__readme_step_{}_done__", self.n);
        let script = format!("{{\n{command}\n}} </dev/null 2>&1\nprintf '\\n{end} %s\\n' $?\n");
        self.stdin.write_all(script.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        let mut lines = Vec::new();
        let status = tokio::time::timeout(WAIT, async {
            loop {
                let line = self.out.next_line().await.unwrap().expect("bash exited");
                if let Some(rest) = line.strip_prefix(&end) {
                    return rest.trim().parse::<i32>().unwrap();
                }
                lines.push(line);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("`{command}` did not finish: {lines:?}"));
        // The marker starts on a line of its own: drop the empty line a complete output leaves.
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        (status, lines)
    }
}

/// The unsubscribe link in the last message delivered, once it has been.
async fn last_link(q: &Quell, base: &str) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            let found = q.upstream.received().iter().rev().find_map(|m| {
                let text = m.text();
                let at = text.find(&format!("{base}/u/"))?;
                let link: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "/:._-~".contains(*c))
                    .collect();
                Some(link)
            });
            if let Some(link) = found {
                return link;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a delivered message with an unsubscribe link")
}

#[tokio::test]
async fn the_readme_examples_run_in_order() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let (steps, env) = steps(&readme);
    assert!(steps.len() >= 30, "{} steps found", steps.len());
    let key = env
        .iter()
        .find(|(k, _)| k == "KEY")
        .map(|(_, v)| v.clone())
        .expect("the env block names KEY");
    let q = Quell::start_with(|c| c.http.api_keys = vec![key.as_str().into()]).await;
    let base = format!("http://{}", q.http);
    let mut env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k == "KEY").collect();
    env.push(("SMTP".into(), q.smtp.to_string()));
    env.push(("Q".into(), base.clone()));
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(dir.path(), &env);
    // curl fails on an HTTP error, unless the command prints the status itself.
    let (status, _) = shell
        .run(
            r#"curl() { case " $* " in *" -w "*) command curl "$@" ;; *) command curl --fail-with-body "$@" ;; esac; }"#,
        )
        .await;
    assert_eq!(status, 0);
    for step in &steps {
        let command = if step.command.contains("<link from the message>") {
            step.command
                .replace("<link from the message>", &last_link(&q, &base).await)
        } else {
            step.command.clone()
        };
        let (status, output) = shell.run(&command).await;
        let shown = output.join("\n");
        assert_eq!(
            status, 0,
            "README line {}: `{}` exited {status}:\n{shown}",
            step.line, step.command
        );
        if let Some(expected) = &step.expected {
            let expected: Vec<String> = expected.iter().map(|l| normalise(l)).collect();
            let actual: Vec<String> = output.iter().map(|l| normalise(l)).collect();
            assert!(
                output_matches(&expected, &actual),
                "README line {}: `{}` printed\n{shown}\nbut the README shows\n{}",
                step.line,
                step.command,
                expected.join("\n")
            );
        }
    }
    shell.child.kill().await.ok();
}

#[test]
fn outputs_match_with_gaps_and_blanked_times() {
    let e = |v: &[&str]| v.iter().map(|s| normalise(s)).collect::<Vec<_>>();
    assert!(output_matches(
        &e(&["...", "<** 550 5.7.1 x", "...", "exit 24"]),
        &e(&["a", "b", "<** 550 5.7.1 x", "c", "exit 24"])
    ));
    assert!(!output_matches(
        &e(&["...", "exit 24"]),
        &e(&["exit 24", "more"])
    ));
    assert!(output_matches(
        &e(&[r#"{"created_at":"2026-11-27 13:53:13","id":"01A21D2E3AFA13D0DE10"}"#]),
        &e(&[r#"{"created_at":"2027-01-02 03:04:05","id":"01A21D61138DDF3F7565"}"#])
    ));
    assert!(output_matches(
        &e(&[r#"{"items":[…],"next":"…"}"#]),
        &e(&[r#"{"items":[1,2],"next":"abc"}"#])
    ));
    assert!(!output_matches(
        &e(&["{\"added\":true}"]),
        &e(&["{\"added\":false}"])
    ));
}

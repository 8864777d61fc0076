//! The admin command line (`quell suppress …`, `quell queue …`, `quell forget …`): the real binary run against an
//! in-process quell, with a temp config whose `http.listen` and `api_keys` point at it. Exit
//! codes per SPEC §1: 0 ok, 1 runtime failure (server down, an id not queued), 2 bad config or
//! usage (also a key the server refuses).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use quell::store::{List, Reason, Scope, Status, SuppressionKey};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::support::tls::TestCert;
use crate::support::{message, queue_id, Quell, Script, API_KEY};

const BIN: &str = env!("CARGO_BIN_EXE_quell");

/// A config file for the CLI: the HTTP address and keys, and `extra` TOML appended.
fn config(dir: &Path, listen: &str, keys: &[&str], extra: &str) -> PathBuf {
    let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    let path = dir.join("quell.toml");
    std::fs::write(
        &path,
        format!(
            "[http]\nlisten = \"{listen}\"\napi_keys = [{}]\n{extra}",
            keys.join(", ")
        ),
    )
    .unwrap();
    path
}

/// A quell and a config file pointing the CLI at it.
struct Setup {
    q: Quell,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Setup {
        Setup::with(Quell::start().await)
    }

    fn with(q: Quell) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), &q.http.to_string(), &[API_KEY], "");
        Setup {
            q,
            config,
            _dir: dir,
        }
    }

    async fn run(&self, args: &[&str]) -> Run {
        run(&self.config, args, None).await
    }

    fn entry(&self, scope: Scope, address: &str, list: List) -> Option<quell::store::Suppression> {
        let key = SuppressionKey::new(scope, address, list);
        self.q.state.store.suppression_get(&key).unwrap()
    }
}

/// A finished CLI run.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts exit 0 (showing stderr otherwise).
    fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "stderr: {}\nstdout: {}",
            self.stderr,
            self.stdout
        );
        self
    }
}

/// Runs `quell ARGS -c CONFIG`, with `stdin` fed when given, and no QUELL_* from the test's
/// environment.
async fn run(config: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("-c")
        .arg(config)
        .env_remove("QUELL_CONFIG")
        .env_remove("QUELL_HTTP__API_KEYS")
        .env_remove("QUELL_HTTP__LISTEN")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn quell");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI finished in time")
        .unwrap();
    Run::from(out)
}

#[tokio::test]
async fn add_list_remove_round_trip() {
    let s = Setup::start().await;
    let out = s
        .run(&[
            "suppress",
            "add",
            "Bob@Example.net",
            "carol@example.net",
            "--scope",
            "domain:mg.example.com",
            "--reason",
            "unsub",
            "--tag",
            "news",
            "--detail",
            "asked by phone",
        ])
        .await
        .ok();
    assert!(
        out.stdout
            .contains("added 2 entries to domain:mg.example.com"),
        "{}",
        out.stdout
    );
    let e = s
        .entry(
            Scope::Domain("mg.example.com".into()),
            "bob@example.net",
            List::Unsubscribes,
        )
        .expect("bob suppressed");
    assert_eq!(
        (e.reason, e.tags.as_slice(), e.detail.as_str()),
        (Reason::Unsub, &["news".to_string()][..], "asked by phone")
    );
    s.run(&["suppress", "add", "dave@example.net"]).await.ok();
    assert_eq!(
        s.entry(Scope::Global, "dave@example.net", List::Unsubscribes)
            .map(|e| e.reason),
        Some(Reason::Custom),
        "global and custom by default"
    );

    let table = s.run(&["suppress", "list"]).await.ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SCOPE"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[1].contains("domain:mg.example.com") && lines[1].contains("bob@example.net"));
    assert!(lines[1].contains("asked by phone") && lines[1].contains("news"));
    assert!(lines[3].contains("global") && lines[3].contains("dave@example.net"));

    let json = s
        .run(&[
            "suppress",
            "list",
            "--scope",
            "domain:mg.example.com",
            "--json",
        ])
        .await
        .ok()
        .stdout;
    let items: serde_json::Value = serde_json::from_str(&json).expect("JSON output");
    let addresses: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, ["bob@example.net", "carol@example.net"]);
    let one = s
        .run(&[
            "suppress",
            "list",
            "--address",
            "CAROL@example.net",
            "--json",
        ])
        .await
        .ok();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&one.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // --limit cuts the listing and says so.
    let limited = s.run(&["suppress", "list", "--limit", "1"]).await.ok();
    assert_eq!(limited.stdout.lines().count(), 2, "{}", limited.stdout);
    assert!(limited.stderr.contains("--limit"), "{}", limited.stderr);

    let out = s
        .run(&[
            "suppress",
            "remove",
            "bob@example.net",
            "--scope",
            "domain:mg.example.com",
        ])
        .await
        .ok();
    assert!(
        out.stdout.contains("bob@example.net: removed 1 entry"),
        "{}",
        out.stdout
    );
    assert!(s
        .entry(
            Scope::Domain("mg.example.com".into()),
            "bob@example.net",
            List::Unsubscribes
        )
        .is_none());
    // Removing what is not there: reported, the rest still done, exit 1.
    let out = s
        .run(&[
            "suppress",
            "remove",
            "nobody@example.net",
            "dave@example.net",
            "--list",
            "unsubscribes",
        ])
        .await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("nobody@example.net: not suppressed in global"),
        "{}",
        out.stderr
    );
    assert!(s
        .entry(Scope::Global, "dave@example.net", List::Unsubscribes)
        .is_none());
    let empty = s.run(&["suppress", "list", "--scope", "global"]).await.ok();
    assert_eq!(empty.stdout.trim(), "no suppression entries");
}

#[tokio::test]
async fn import_a_mailgun_csv() {
    let s = Setup::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unsubscribes.csv");
    std::fs::write(
        &file,
        "address,tags,created_at\r\n\
         alice@example.net,*,\"Fri, 21 Oct 2011 11:02:55 UTC\"\r\n\
         bob@example.net,\"news,promo\",\r\n\
         not-an-address,*,\r\n\
         carol@example.net,*,yesterday\r\n",
    )
    .unwrap();
    let out = s
        .run(&[
            "suppress",
            "import",
            file.to_str().unwrap(),
            "--scope",
            "domain:mg.example.com",
        ])
        .await
        .ok();
    assert!(
        out.stdout
            .contains("Mailgun unsubscribes CSV, scope domain:mg.example.com"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("2 rows applied (2 added, 0 re-subscribed), 2 rejected"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("row 4: address \"not-an-address\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("row 5: created_at \"yesterday\""),
        "{}",
        out.stdout
    );
    let scope = Scope::Domain("mg.example.com".into());
    let alice = s
        .entry(scope.clone(), "alice@example.net", List::Unsubscribes)
        .unwrap();
    assert_eq!(
        (alice.reason, alice.created_at),
        (Reason::Unsub, 1_319_194_975)
    );
    let bob = s
        .entry(scope.clone(), "bob@example.net", List::Unsubscribes)
        .unwrap();
    assert_eq!(bob.tags, ["news", "promo"]);
    assert_eq!(s.q.state.store.suppression_count(), 2);

    // Bounces by their header: hard bounces, the error as detail.
    std::fs::write(
        &file,
        "address,code,error,created_at\ngone@example.net,550,mailbox does not exist,\n",
    )
    .unwrap();
    s.run(&["suppress", "import", file.to_str().unwrap()])
        .await
        .ok();
    let gone = s
        .entry(Scope::Global, "gone@example.net", List::Bounces)
        .unwrap();
    assert_eq!(
        (gone.reason, gone.code, gone.detail.as_str()),
        (Reason::HardBounce, Some(550), "mailbox does not exist")
    );
}

#[tokio::test]
async fn import_a_headerless_csv_from_stdin_with_a_bad_row() {
    let s = Setup::start().await;
    s.run(&["suppress", "add", "back@example.net", "--reason", "unsub"])
        .await
        .ok();
    s.run(&["suppress", "add", "manual@example.net"]).await.ok();
    let csv = "u1@example.net,true\n\
               U2@Example.net,2024-05-01T10:00:00Z\n\
               user-42,true\n\
               back@example.net,false\n\
               manual@example.net,FALSE\n\
               u3@example.net,2024-02-30\n\
               u4@example.net,1\n";
    let out = run(&s.config, &["suppress", "import", "-"], Some(csv))
        .await
        .ok();
    assert!(
        out.stdout
            .contains("headerless distinct_id,unsubscribed CSV"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("5 rows applied (3 added, 2 re-subscribed), 2 rejected"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("row 3: address \"user-42\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("row 6: \"2024-02-30\" looks like a date"),
        "{}",
        out.stdout
    );
    let u2 = s
        .entry(Scope::Global, "u2@example.net", List::Unsubscribes)
        .unwrap();
    assert_eq!((u2.reason, u2.created_at), (Reason::Unsub, 1_714_557_600));
    assert!(s
        .entry(Scope::Global, "u1@example.net", List::Unsubscribes)
        .is_some());
    assert!(s
        .entry(Scope::Global, "u4@example.net", List::Unsubscribes)
        .is_some());
    assert!(s
        .entry(Scope::Global, "u3@example.net", List::Unsubscribes)
        .is_none());
    // `false` removes the unsub entry, never a manual one.
    assert!(s
        .entry(Scope::Global, "back@example.net", List::Unsubscribes)
        .is_none());
    assert_eq!(
        s.entry(Scope::Global, "manual@example.net", List::Unsubscribes)
            .map(|e| e.reason),
        Some(Reason::Custom)
    );

    // An unknown header is a usage error, and nothing is written.
    let before = s.q.state.store.suppression_count();
    let out = run(
        &s.config,
        &["suppress", "import", "-"],
        Some("email,status\na@x.io,true\n"),
    )
    .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("row 1 is neither a header"),
        "{}",
        out.stderr
    );
    assert_eq!(s.q.state.store.suppression_count(), before);
    let out = s
        .run(&["suppress", "import", "/nonexistent/file.csv"])
        .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
}

#[tokio::test]
async fn import_more_rows_than_one_batch_in_file_order() {
    let s = Setup::start().await;
    // 2500 rows: three batches, and the same address suppressed, re-subscribed, suppressed
    // again across them — the last row must win.
    let mut csv = String::new();
    for i in 0..2500 {
        match i {
            10 | 1500 => csv.push_str("flip@example.net,true\n"),
            1200 => csv.push_str("flip@example.net,false\n"),
            _ => csv.push_str(&format!("u{i}@example.net,true\n")),
        }
    }
    csv.push_str("flop@example.net,true\nflop@example.net,false\n");
    let out = run(&s.config, &["suppress", "import", "-"], Some(&csv))
        .await
        .ok();
    assert!(out.stdout.contains("2502 rows applied"), "{}", out.stdout);
    assert!(s
        .entry(Scope::Global, "flip@example.net", List::Unsubscribes)
        .is_some());
    assert!(s
        .entry(Scope::Global, "flop@example.net", List::Unsubscribes)
        .is_none());
    assert_eq!(s.q.state.store.suppression_count(), 2497 + 1);
}

#[tokio::test]
async fn export_writes_csv_that_import_reads_back() {
    let s = Setup::start().await;
    s.run(&[
        "suppress",
        "add",
        "a@example.net",
        "--scope",
        "sender:app@example.com",
        "--reason",
        "spam",
    ])
    .await
    .ok();
    s.run(&[
        "suppress",
        "add",
        "b@example.net",
        "--tag",
        "x",
        "--tag",
        "y",
        "--detail",
        "said \"no\", twice",
    ])
    .await
    .ok();
    let out = s.run(&["suppress", "export"]).await.ok();
    let mut reader = csv::Reader::from_reader(out.stdout.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec![
            "scope",
            "address",
            "list",
            "reason",
            "tags",
            "created_at",
            "expires_at",
            "detail"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].iter().take(4).collect::<Vec<_>>(),
        ["global", "b@example.net", "unsubscribes", "custom"]
    );
    assert_eq!((&rows[0][4], &rows[0][7]), ("x;y", "said \"no\", twice"));
    assert_eq!(
        rows[1].iter().take(4).collect::<Vec<_>>(),
        [
            "sender:app@example.com",
            "a@example.net",
            "complaints",
            "spam"
        ]
    );
    let only = s
        .run(&["suppress", "export", "--scope", "global"])
        .await
        .ok();
    assert_eq!(only.stdout.lines().count(), 2);

    // Into an empty quell, the export restores the same entries.
    let other = Setup::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.csv");
    std::fs::write(&file, &out.stdout).unwrap();
    let restored = other
        .run(&["suppress", "import", file.to_str().unwrap()])
        .await
        .ok();
    assert!(
        restored
            .stdout
            .contains("quell export CSV, scope as in the file"),
        "{}",
        restored.stdout
    );
    let again = other.run(&["suppress", "export"]).await.ok();
    assert_eq!(again.stdout, out.stdout);

    // A row only the server can judge (a list that does not hold its reason) is refused by it,
    // named by its row, and the rest of its batch still applied.
    std::fs::write(
        &file,
        "scope,address,list,reason
         global,c@example.net,bounces,spam
         global,d@example.net,complaints,spam
",
    )
    .unwrap();
    let out = other
        .run(&["suppress", "import", file.to_str().unwrap()])
        .await
        .ok();
    assert!(
        out.stdout
            .contains("1 row applied (1 added, 0 re-subscribed), 1 rejected"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("row 2: list \"bounces\" does not hold reason \"spam\""),
        "{}",
        out.stdout
    );
    assert!(other
        .entry(Scope::Global, "d@example.net", List::Complaints)
        .is_some());
}

#[tokio::test]
async fn queue_list_retry_delete() {
    let s = Setup::with(
        Quell::start_with(|c| {
            c.queue.retry_initial = Duration::from_secs(3600);
            c.queue.retry_max = Duration::from_secs(3600);
        })
        .await,
    );
    let empty = s.run(&["queue", "list"]).await.ok();
    assert_eq!(empty.stdout.trim(), "the queue is empty");
    s.q.upstream.script(Script::Defer);
    let first = queue_id(
        &s.q.send("app@example.com", &["later@example.net"], &message("", "x"))
            .await,
    );
    let second = queue_id(
        &s.q.send("app@example.com", &["never@example.net"], &message("", "y"))
            .await,
    );
    s.q.wait_status(&format!("{first}.1"), Status::Deferred)
        .await;
    s.q.wait_status(&format!("{second}.1"), Status::Deferred)
        .await;

    let list = s.run(&["queue", "list"]).await.ok().stdout;
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("ID"), "{list}");
    assert!(
        lines[1].starts_with(&first) && lines[1].contains("later@example.net"),
        "{list}"
    );
    assert!(lines[2].starts_with(&second), "{list}");
    assert_eq!(lines[3], "2 queued messages");
    let json: serde_json::Value =
        serde_json::from_str(&s.run(&["queue", "list", "--json"]).await.ok().stdout).unwrap();
    assert_eq!(
        json[0]["recipients"],
        serde_json::json!(["later@example.net"])
    );

    s.q.upstream.script(Script::Accept);
    let out = s.run(&["queue", "retry", &first]).await.ok();
    assert!(
        out.stdout
            .contains(&format!("{first}: delivery attempt scheduled now")),
        "{}",
        out.stdout
    );
    s.q.wait_status(&format!("{first}.1"), Status::Sent).await;

    let out = s.run(&["queue", "delete", &second, "NOSUCHID"]).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "{second}: deleted; 1 waiting recipient recorded as bounced"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("NOSUCHID: not in the queue"),
        "{}",
        out.stderr
    );
    let record =
        s.q.state
            .store
            .message_get(&format!("{second}.1"))
            .unwrap()
            .unwrap();
    assert_eq!(record.status, Status::Bounced);
    assert_eq!(
        s.run(&["queue", "list"]).await.ok().stdout.trim(),
        "the queue is empty"
    );
    let out = s.run(&["queue", "retry", &second]).await;
    assert_eq!(out.code, Some(1));
}

#[tokio::test]
async fn server_down_is_exit_1_with_the_address() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &format!("0.0.0.0:{port}"), &[API_KEY], "");
    for args in [
        &["suppress", "list"][..],
        &["queue", "list"],
        &["suppress", "add", "a@x.io"],
    ] {
        let out = run(&config, args, None).await;
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim(),
            format!("cannot reach quell at http://127.0.0.1:{port}: connection refused — is it running?")
        );
    }
}

#[tokio::test]
async fn a_refused_key_or_no_key_is_exit_2() {
    let s = Setup::start().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = s.q.http.to_string();
    let wrong = config(dir.path(), &listen, &["wrong-key-0123456789abcdef"], "");
    let out = run(&wrong, &["suppress", "list"], None).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "quell at http://{listen} refused the API key (the first of http.api_keys in this config)"
        )
    );
    assert!(!out.stderr.contains("wrong-key"), "the key is never shown");

    let none = config(dir.path(), &listen, &[], "");
    let out = run(&none, &["queue", "list"], None).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        "http.api_keys is empty: the management API is disabled"
    );

    // QUELL_* overrides apply as for `serve`: the key from the environment is used.
    let out = Command::new(BIN)
        .args(["suppress", "list", "-c"])
        .arg(&none)
        .env_remove("QUELL_CONFIG")
        .env("QUELL_HTTP__API_KEYS", API_KEY)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server without `http.api_keys` says its management API is off and which key turns it
/// on, to an HTTP client and through the CLI, instead of calling the key wrong.
#[tokio::test]
async fn a_server_without_api_keys_says_its_api_is_disabled() {
    let s = Setup::with(Quell::start_with(|c| c.http.api_keys.clear()).await);
    let http = reqwest::Client::new();
    for request in [
        http.get(s.q.url("/api/suppressions")),
        http.get(s.q.url("/v3/example.com/unsubscribes"))
            .basic_auth("api", Some(API_KEY)),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            body["message"],
            "the management API is disabled: set http.api_keys in quell's config to enable it"
        );
    }
    let out = s.run(&["suppress", "list"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "quell at http://{} has its management API disabled: set http.api_keys in its config \
             (and the same key here) and restart it",
            s.q.http
        )
    );
}

#[tokio::test]
async fn bad_usage_and_bad_config_are_exit_2() {
    let s = Setup::start().await;
    for args in [
        &["suppress"][..],
        &["suppress", "add"],
        &["suppress", "add", "not-an-address"],
        &["suppress", "add", "a@x.io", "--scope", "everyone"],
        &["suppress", "add", "a@x.io", "--reason", "bored"],
        &["suppress", "remove", "a@x.io", "--list", "spam"],
        &["suppress", "list", "--limit", "0"],
        &["suppress", "frobnicate"],
        &["queue", "retry"],
        &["queue", "list", "--bogus"],
    ] {
        let out = s.run(args).await;
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.trim().is_empty(), "{args:?} says why");
    }
    assert_eq!(s.q.state.store.suppression_count(), 0);
    let dir = tempfile::tempdir().unwrap();
    let bad = config(dir.path(), "nowhere", &[API_KEY], "");
    let out = run(&bad, &["suppress", "list"], None).await;
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("http.listen"), "{}", out.stderr);
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::new(dir.path());
    let (cert_file, key_file) = (cert.cert_file.clone(), cert.key_file.clone());
    let q = Quell::start_with(move |c| {
        c.http.tls = Some(quell::config::TlsFiles {
            cert_file,
            key_file,
        });
    })
    .await;
    let tls = format!(
        "[http.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        cert.cert_file, cert.key_file
    );
    let config = config(dir.path(), &q.http.to_string(), &[API_KEY], &tls);
    run(&config, &["suppress", "add", "a@example.net"], None)
        .await
        .ok();
    let out = run(&config, &["suppress", "list"], None).await.ok();
    assert!(out.stdout.contains("a@example.net"), "{}", out.stdout);
}

#[tokio::test]
async fn forget_erases_and_waits_for_the_task() {
    let s = Setup::start().await;
    s.run(&["suppress", "add", "gone-c7@example.net"])
        .await
        .ok();
    s.run(&["suppress", "add", "kept-c7@example.net"])
        .await
        .ok();
    let out = s
        .run(&["forget", "gone-c7@example.net", "--ccpa"])
        .await
        .ok();
    assert!(
        out.stdout
            .contains("erased 1 suppression entry (kept as tombstones)"),
        "{}",
        out.stdout
    );
    let store = &s.q.state.store;
    assert!(s
        .entry(Scope::Global, "gone-c7@example.net", List::Unsubscribes)
        .is_none());
    let tombstone = store.tombstone_of("gone-c7@example.net");
    assert!(s
        .entry(Scope::Global, &tombstone, List::Unsubscribes)
        .is_some());
    assert!(s
        .entry(Scope::Global, "kept-c7@example.net", List::Unsubscribes)
        .is_some());

    let out = s
        .run(&["forget", "other@example.net", "--no-wait"])
        .await
        .ok();
    assert!(out.stdout.contains("accepted"), "{}", out.stdout);

    // A refused request (an empty id) is a usage error; a wrong key too.
    let refused = s.run(&["forget", " "]).await;
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("distinct_ids[0]"),
        "{}",
        refused.stderr
    );
    let dir = tempfile::tempdir().unwrap();
    let wrong = config(dir.path(), &s.q.http.to_string(), &["wrong-key"], "");
    let out = run(&wrong, &["forget", "a@example.net"], None).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
}

#[tokio::test]
async fn forget_with_the_server_down_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config(dir.path(), &format!("127.0.0.1:{port}"), &[API_KEY], "");
    let out = run(&cfg, &["forget", "a@example.net"], None).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("is it running?"), "{}", out.stderr);
}

//! What a `2xx` promises: every write path's change survives a `kill -9` sent the moment its
//! answer arrived. The real binary, restarted on the same store each time.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::process::{spawn, write_config, Running};
use crate::support::{message, FakeUpstream, SmtpClient, API_KEY, WAIT};

/// A store directory and config that survive the restarts, and the upstream.
struct Node {
    _dir: tempfile::TempDir,
    config: PathBuf,
    upstream: FakeUpstream,
}

impl Node {
    async fn new() -> Node {
        let upstream = FakeUpstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), upstream.addr.port(), "");
        Node {
            _dir: dir,
            config,
            upstream,
        }
    }

    async fn start(&self) -> Running {
        spawn(&self.config).await
    }
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Asserts a 2xx and returns the JSON body (`Null` when there is none).
pub(crate) async fn ok(response: reqwest::Response, what: &str) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_success(), "{what}: {status} {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// The entries of `address` as `"scope list"`, from the admin API.
async fn entries(q: &Running, address: &str) -> Vec<String> {
    let v = ok(
        http()
            .get(q.url("/api/suppressions"))
            .query(&[("address", address)])
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap(),
        "list",
    )
    .await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{} {}", i["scope"], i["list"]).replace('"', ""))
        .collect()
}

pub(crate) fn mandrill(q: &Running, call: &str, body: Value) -> reqwest::RequestBuilder {
    http()
        .post(q.url(&format!("/api/1.0/{call}.json")))
        .json(&body)
}

pub(crate) async fn mailgun(q: &Running, path: &str) -> reqwest::RequestBuilder {
    http()
        .post(q.url(&format!("/v3/example.com/{path}")))
        .basic_auth("api", Some(API_KEY))
}

#[tokio::test]
async fn mailgun_adds_removals_and_imports_survive_kill_9_after_their_answer() {
    let node = Node::new().await;
    let q = node.start().await;
    for i in 0..5 {
        let r = mailgun(&q, "unsubscribes")
            .await
            .json(&json!({"address": format!("u{i}@example.net"), "tags": ["news"]}))
            .send()
            .await
            .unwrap();
        ok(r, "unsubscribes add").await;
    }
    let r = mailgun(&q, "bounces")
        .await
        .form(&[
            ("address", "b@example.net"),
            ("code", "550"),
            ("error", "gone"),
        ])
        .send()
        .await
        .unwrap();
    ok(r, "bounces form add").await;
    q.kill_9().await;

    let q = node.start().await;
    for i in 0..5 {
        let a = format!("u{i}@example.net");
        assert_eq!(
            entries(&q, &a).await,
            ["domain:example.com unsubscribes"],
            "{a}"
        );
    }
    assert_eq!(
        entries(&q, "b@example.net").await,
        ["domain:example.com bounces"]
    );
    let r = http()
        .delete(q.url("/v3/example.com/unsubscribes/u0@example.net"))
        .basic_auth("api", Some(API_KEY))
        .send()
        .await
        .unwrap();
    ok(r, "delete one").await;
    let r = http()
        .delete(q.url("/v3/example.com/bounces"))
        .basic_auth("api", Some(API_KEY))
        .send()
        .await
        .unwrap();
    ok(r, "clear").await;
    q.kill_9().await;

    let q = node.start().await;
    assert!(
        entries(&q, "u0@example.net").await.is_empty(),
        "removal lost"
    );
    assert!(entries(&q, "b@example.net").await.is_empty(), "clear lost");
    assert_eq!(entries(&q, "u1@example.net").await.len(), 1);

    // An import is answered 202 before its rows are applied: the upload itself is kept.
    let mut csv = String::from("address\n");
    for i in 0..2000 {
        csv.push_str(&format!("c{i}@example.net\n"));
    }
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("c.csv"),
    );
    let r = mailgun(&q, "complaints/import")
        .await
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    q.kill_9().await;

    let q = node.start().await;
    tokio::time::timeout(WAIT, async {
        while entries(&q, "c1999@example.net").await.is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the kept import is applied after the restart");
    assert_eq!(
        entries(&q, "c0@example.net").await,
        ["domain:example.com complaints"]
    );
    q.kill_9().await;
}

/// Runs `write` (which asserts its own 2xx), kills quell at once, restarts it and runs `check`.
async fn survives(
    node: &Node,
    write: impl AsyncFnOnce(&Running),
    check: impl AsyncFnOnce(&Running),
) {
    let q = node.start().await;
    write(&q).await;
    q.kill_9().await;
    let q = node.start().await;
    check(&q).await;
    q.kill_9().await;
}

#[tokio::test]
async fn mandrill_mixpanel_and_admin_writes_survive_kill_9_after_their_answer() {
    let node = Node::new().await;
    let global = ["global unsubscribes"];
    survives(
        &node,
        async |q| {
            let r = mandrill(
                q,
                "rejects/add",
                json!({"key": API_KEY, "email": "r@example.net"}),
            );
            assert_eq!(
                ok(r.send().await.unwrap(), "rejects/add").await["added"],
                json!(true)
            );
        },
        async |q| assert_eq!(entries(q, "r@example.net").await, global),
    )
    .await;
    survives(
        &node,
        async |q| {
            let r = mandrill(
                q,
                "rejects/delete",
                json!({"key": API_KEY, "email": "r@example.net"}),
            );
            ok(r.send().await.unwrap(), "rejects/delete").await;
        },
        async |q| assert!(entries(q, "r@example.net").await.is_empty()),
    )
    .await;
    survives(
        &node,
        async |q| {
            let r = mandrill(
                q,
                "allowlists/add",
                json!({"key": API_KEY, "email": "w@example.net"}),
            );
            ok(r.send().await.unwrap(), "allowlists/add").await;
        },
        async |q| {
            let r = mandrill(q, "allowlists/list", json!({"key": API_KEY}));
            let listed = ok(r.send().await.unwrap(), "allowlists/list").await;
            assert_eq!(listed[0]["email"], json!("w@example.net"), "{listed}");
        },
    )
    .await;
    survives(
        &node,
        async |q| {
            let r = http()
                .post(q.url("/engage"))
                .json(&json!([{"$token": API_KEY, "$distinct_id": "m@example.net",
                               "$set": {"$unsubscribed": true}}]));
            assert_eq!(
                ok(r.send().await.unwrap(), "engage").await["status"],
                json!(1)
            );
        },
        async |q| assert_eq!(entries(q, "m@example.net").await, global),
    )
    .await;
    survives(
        &node,
        async |q| {
            let r = http()
                .post(q.url("/engage/import"))
                .bearer_auth(API_KEY)
                .header("content-type", "text/csv")
                .body("i1@example.net,true\ni2@example.net,true\nm@example.net,false\n");
            ok(r.send().await.unwrap(), "engage/import").await;
        },
        async |q| {
            assert_eq!(entries(q, "i1@example.net").await, global);
            assert_eq!(entries(q, "i2@example.net").await, global);
            assert!(entries(q, "m@example.net").await.is_empty());
        },
    )
    .await;
    survives(
        &node,
        async |q| {
            let r = http()
                .post(q.url("/api/suppressions"))
                .bearer_auth(API_KEY)
                .json(&json!([{"scope": "domain:shop.example", "address": "a@example.net", "reason": "custom"}]));
            ok(r.send().await.unwrap(), "admin add").await;
        },
        async |q| {
            assert_eq!(
                entries(q, "a@example.net").await,
                ["domain:shop.example unsubscribes"]
            )
        },
    )
    .await;
    survives(
        &node,
        async |q| {
            let r = http()
                .delete(q.url("/api/suppressions"))
                .query(&[
                    ("scope", "domain:shop.example"),
                    ("address", "a@example.net"),
                ])
                .bearer_auth(API_KEY);
            ok(r.send().await.unwrap(), "admin delete").await;
        },
        async |q| assert!(entries(q, "a@example.net").await.is_empty()),
    )
    .await;
}

/// The `/u/<token>` path in a delivered copy's `List-Unsubscribe` header (folded or not).
pub(crate) fn unsubscribe_path(text: &str) -> String {
    let start = text
        .find("List-Unsubscribe:")
        .expect("List-Unsubscribe header");
    let value: String = text[start..]
        .split_once('<')
        .expect("a link")
        .1
        .split('>')
        .next()
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let at = value.find("/u/").expect("/u/ link");
    value[at..].to_string()
}

#[tokio::test]
async fn a_one_click_unsubscribe_survives_kill_9_after_its_answer() {
    let node = Node::new().await;
    let q = node.start().await;
    let mut c = SmtpClient::connect(q.smtp).await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<reader@example.net>", "250").await;
    c.expect("DATA", "354").await;
    let reply = c
        .data(&message("", "Bye: *|UNSUB:https://shop.example/bye|*"))
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let copy = node.upstream.wait_for(1).await;
    let path = unsubscribe_path(&copy[0].text());
    let r = http()
        .post(q.url(&path))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    q.kill_9().await;

    let q = node.start().await;
    assert_eq!(
        entries(&q, "reader@example.net").await,
        ["sender:app@example.com unsubscribes"]
    );
    q.kill_9().await;
}

#[tokio::test]
async fn a_hard_bounce_suppression_survives_kill_9_once_the_copy_is_bounced() {
    let node = Node::new().await;
    node.upstream
        .script_rcpt("gone@example.net", crate::support::Script::Bounce);
    let q = node.start().await;
    let mut c = SmtpClient::connect(q.smtp).await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<gone@example.net>", "250").await;
    c.expect("DATA", "354").await;
    let reply = c.data(&message("", "hello")).await;
    let md_id = quell::id::md_id(&crate::support::queue_id(&reply), 1);
    // The entry is synced before the record says `bounced`.
    tokio::time::timeout(WAIT, async {
        loop {
            let r = http()
                .get(q.url(&format!("/api/messages/{md_id}")))
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap();
            if r.status().is_success() && r.json::<Value>().await.unwrap()["status"] == "bounced" {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the copy bounced");
    q.kill_9().await;

    let q = node.start().await;
    assert_eq!(entries(&q, "gone@example.net").await, ["global bounces"]);
    q.kill_9().await;
}

/// One line of an `strace -f -y` trace: the calls that matter here, completed.
#[derive(Debug)]
struct Call {
    /// The call with its arguments (paths shown by `-y`), as written when it started.
    text: String,
}

/// The completed calls of a trace, in the order they returned: a call interrupted by another
/// thread's (`<unfinished ...>`) counts where it resumed.
fn completed_calls(trace: &str) -> Vec<Call> {
    let mut pending: std::collections::HashMap<String, String> = Default::default();
    let mut calls = Vec::new();
    for line in trace.lines() {
        // `PID call…`; strace pads short pids with spaces.
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(start) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid.to_string(), start.to_string());
        } else if rest.starts_with("<... ") {
            if let Some(start) = pending.remove(pid) {
                calls.push(Call {
                    text: format!("{start} {rest}"),
                });
            }
        } else {
            calls.push(Call {
                text: rest.to_string(),
            });
        }
    }
    calls
}

#[tokio::test]
async fn a_syscall_trace_shows_a_covering_sync_before_every_acknowledgement() {
    let node = Node::new().await;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let trace_arg = trace.to_str().unwrap();
    let q = crate::support::process::spawn_under(
        &[
            "strace",
            "-f",
            "-y",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2,sendto,write,writev",
            "-o",
            trace_arg,
        ],
        &node.config,
    )
    .await;
    let mut c = SmtpClient::connect(q.smtp).await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<reader@example.net>", "250").await;
    c.expect("DATA", "354").await;
    let reply = c.data(&message("", "traced")).await;
    let queue_id = crate::support::queue_id(&reply);
    let r = mailgun(&q, "unsubscribes")
        .await
        .json(&json!({"address": "traced@example.net"}))
        .send()
        .await
        .unwrap();
    ok(r, "unsubscribes add").await;
    // The traced quell is strace's child: kill it by its own pid, named by the trace.
    let text = std::fs::read_to_string(&trace).unwrap();
    let quell_pid = text.split_whitespace().next().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-9", &quell_pid])
        .status()
        .unwrap();
    let mut child = q.child;
    child.wait().await.unwrap();
    let calls = completed_calls(&std::fs::read_to_string(&trace).unwrap());
    let position = |what: &str, found: &dyn Fn(&str) -> bool| {
        calls
            .iter()
            .position(|c| found(&c.text))
            .unwrap_or_else(|| {
                let sync_lines: Vec<&str> = calls
                    .iter()
                    .map(|c| c.text.as_str())
                    .filter(|t| t.contains("sync") || t.contains("rename"))
                    .collect();
                panic!("no {what} in the trace: {sync_lines:#?}")
            })
    };
    let synced_between = |from: usize, to: usize, found: &dyn Fn(&str) -> bool| {
        calls[from..to]
            .iter()
            .any(|c| found(&c.text) && c.text.ends_with("= 0"))
    };
    let is_log_sync = |t: &str| {
        (t.starts_with("fdatasync(") || t.starts_with("fsync(")) && t.contains("/data/db>")
    };

    // SMTP: the file synced, renamed into place, its directory and sled's log synced, then 250.
    let file_synced = position("spool file sync", &|t| {
        t.starts_with("fdatasync(") && t.contains(&format!("spool/tmp/{queue_id}>"))
    });
    let renamed = position("spool rename", &|t| {
        t.starts_with("rename") && t.contains(&format!("spool/{queue_id}\""))
    });
    let acknowledged = position("the 250", &|t| {
        t.contains(&format!("250 2.0.0 Ok: queued as {}", &queue_id[..8]))
    });
    assert!(file_synced < renamed && renamed < acknowledged);
    assert!(
        synced_between(renamed, acknowledged, &|t| t.starts_with("fsync(")
            && t.contains("/data/spool>")),
        "the spool directory is synced after the rename and before the 250"
    );
    assert!(
        synced_between(renamed, acknowledged, &is_log_sync),
        "sled's log is synced after the queue entry and before the 250"
    );

    // HTTP: sled's log synced after the 250 and before the API's 200.
    let answered = position("the API answer", &|t| t.contains("HTTP/1.1 200 OK"));
    assert!(
        synced_between(acknowledged, answered, &is_log_sync),
        "sled's log is synced before the 200"
    );
}

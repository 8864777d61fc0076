//! A full disk is a temporary condition (issue 10): below `storage.min_free` new mail gets
//! `452 4.3.1` at MAIL, API changes `507`, `/readyz` says not ready; delivery goes on; when
//! space returns everything is accepted again without a restart; and quell does not start on a
//! full disk, leaving its store as it was. The store is put on a small tmpfs the test mounts
//! (root, as in CI).

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::process::{spawn, write_config, BIN};
use crate::support::{message, FakeUpstream, Quell, Script, SmtpClient, API_KEY};

const MIB: u64 = 1024 * 1024;
/// The floor the tests configure.
const FLOOR: u64 = 6 * MIB;

/// A tmpfs of `size` mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn ballast(&self) -> PathBuf {
        self.path().join("ballast")
    }

    /// Fills the file system until `left` bytes are free.
    fn fill_to(&self, left: u64) {
        let free = quell::store::free_space(self.path()).unwrap();
        assert!(free > left, "{free} free");
        std::fs::write(self.ballast(), vec![0u8; (free - left) as usize]).unwrap();
    }

    fn free(&self) {
        std::fs::remove_file(self.ballast()).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

async fn mail_from(c: &mut SmtpClient) -> String {
    c.cmd("MAIL FROM:<app@example.com>").await
}

#[tokio::test]
async fn below_the_floor_mail_and_changes_wait_and_are_taken_again_when_space_returns() {
    let fs = Tmpfs::mount(24 * MIB);
    let q = Quell::start_with(|c| {
        c.storage.path = fs.path().join("data");
        c.storage.min_free = FLOOR;
    })
    .await;
    let http = reqwest::Client::new();
    let mailgun_add = |address: &str| {
        http.post(q.url("/v3/example.com/unsubscribes"))
            .basic_auth("api", Some(API_KEY))
            .json(&json!({ "address": address }))
            .send()
    };

    let mut c = q.client().await;
    c.expect("EHLO app.test", "250").await;
    fs.fill_to(FLOOR / 2);

    let reply = mail_from(&mut c).await;
    assert!(reply.starts_with("452 4.3.1"), "{reply}");
    let r = mailgun_add("later@example.net").await.unwrap();
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("insufficient storage"),
        "{body}"
    );
    let r = http
        .post(q.url("/api/1.0/rejects/add.json"))
        .json(&json!({"key": API_KEY, "email": "later@example.net"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["status"],
        "error"
    );
    let r = http.get(q.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(q
        .state
        .store
        .suppressions_of(
            &quell::store::Scope::Domain("example.com".into()),
            "later@example.net"
        )
        .unwrap()
        .is_empty());

    // Space returns: the same session and the APIs are served again, no restart.
    fs.free();
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<reader@example.net>", "250").await;
    c.expect("DATA", "354").await;
    let reply = c.data(&message("", "after the disk was freed")).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    q.upstream.wait_for(1).await;
    assert_eq!(
        mailgun_add("later@example.net").await.unwrap().status(),
        200
    );
    let r = http.get(q.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// The names and contents of every file under `dir`.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn quell_does_not_start_on_a_full_disk_and_its_store_is_left_as_it_was() {
    let fs = Tmpfs::mount(24 * MIB);
    let upstream = FakeUpstream::start().await;
    upstream.script(Script::Defer);
    let config = write_config(
        fs.path(),
        upstream.addr.port(),
        &format!("min_free = {FLOOR}\n"),
    );
    // The extra key lands in [storage], the config's last table.
    let q = spawn(&config).await;
    let mut c = SmtpClient::connect(q.smtp).await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    c.expect("RCPT TO:<queued@example.net>", "250").await;
    c.expect("DATA", "354").await;
    let reply = c.data(&message("", "waits for the upstream")).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    upstream.wait_attempts("queued@example.net", 1).await;
    q.kill_9().await;

    fs.fill_to(FLOOR / 2);
    let before = snapshot(&fs.path().join("data"));
    let out = tokio::process::Command::new(BIN)
        .args(["serve", "-c"])
        .arg(&config)
        .env_remove("QUELL_CONFIG")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("storage.min_free"), "{stderr}");
    assert!(
        before == snapshot(&fs.path().join("data")),
        "the store was touched"
    );

    // Space back: it starts and delivers what it had acknowledged.
    fs.free();
    upstream.script(Script::Accept);
    let q = spawn(&config).await;
    let got = upstream.wait_for(1).await;
    assert_eq!(got[0].to, ["queued@example.net"]);
    q.kill_9().await;
}

//! What an acknowledgement promises (issue 10): a `250` after DATA, and a `2xx` to an API
//! change, survive a power cut. The real binary runs with its store on a FUSE file system that
//! keeps only what was synced (`support/powercut`); mail and API changes flow concurrently, the
//! power is cut at a random operation, quell is killed, and it restarts on what a disk would
//! hold: the store must open, every acknowledged message must be queued (its file in the
//! spool, and delivered once the upstream answers) and every acknowledged change in force.
//!
//! Needs root and `/dev/fuse` (CI has both); skipped, loudly, without `/dev/fuse`.
//! `QUELL_POWERCUT_SEED=N` replays a run's cut points.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::support::powercut::{self, Disk, Image};
use crate::support::process::{spawn, write_config_at, Running};
use crate::support::{FakeUpstream, SmtpClient, API_KEY, WAIT};

/// Power cuts in one run.
const CYCLES: usize = 8;
/// The share of cuts that come while quell starts (recovering from the previous cut), at an
/// operation drawn from `1..=START_CUT_WITHIN`; a start that needs fewer is cut under load.
const START_CUTS: f64 = 0.25;
const START_CUT_WITHIN: u64 = 150;
/// The power goes off at a changing file-system operation drawn from `1..=CUT_WITHIN` after
/// the load starts (a message takes about a dozen, an API change a few).
const CUT_WITHIN: u64 = 600;
const SMTP_CLIENTS: usize = 3;
/// Hang guard for one request while the power is on.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The write APIs, each adding one suppression entry per request.
#[derive(Clone, Copy, Debug)]
enum Api {
    MailgunUnsubscribe,
    MandrillReject,
    MixpanelEngage,
    AdminAdd,
}

impl Api {
    const ALL: [Api; 4] = [
        Api::MailgunUnsubscribe,
        Api::MandrillReject,
        Api::MixpanelEngage,
        Api::AdminAdd,
    ];

    fn name(self) -> &'static str {
        match self {
            Api::MailgunUnsubscribe => "mailgun",
            Api::MandrillReject => "mandrill",
            Api::MixpanelEngage => "mixpanel",
            Api::AdminAdd => "admin",
        }
    }

    /// The entry it makes, as the admin API lists it.
    fn entry(self) -> &'static str {
        match self {
            Api::MailgunUnsubscribe => "domain:example.com unsubscribes",
            _ => "global unsubscribes",
        }
    }

    fn request(self, http: &reqwest::Client, base: &str, address: &str) -> reqwest::RequestBuilder {
        match self {
            Api::MailgunUnsubscribe => http
                .post(format!("{base}/v3/example.com/unsubscribes"))
                .basic_auth("api", Some(API_KEY))
                .json(&json!({ "address": address })),
            Api::MandrillReject => http
                .post(format!("{base}/api/1.0/rejects/add.json"))
                .json(&json!({ "key": API_KEY, "email": address })),
            Api::MixpanelEngage => http.post(format!("{base}/engage")).json(&json!([{
                "$token": API_KEY,
                "$distinct_id": address,
                "$set": { "$unsubscribed": true },
            }])),
            Api::AdminAdd => http
                .post(format!("{base}/api/suppressions"))
                .bearer_auth(API_KEY)
                .json(&json!([{ "scope": "global", "address": address, "reason": "custom" }])),
        }
    }

    /// Whether an answer acknowledges the change. Mixpanel answers `200` with
    /// `{"status": 0}` when it did nothing.
    fn acknowledged(self, status: reqwest::StatusCode, body: Option<&Value>) -> bool {
        match self {
            Api::MixpanelEngage => {
                status.is_success() && body.is_some_and(|b| b["status"] == json!(1))
            }
            _ => status.is_success(),
        }
    }
}

/// An acknowledged message: `250` after its DATA.
#[derive(Debug)]
struct Message {
    queue_id: String,
    /// Unique text in its body (naming the cycle).
    marker: String,
}

/// An acknowledged change: a `2xx` answer.
#[derive(Debug)]
struct Change {
    api: Api,
    /// Unique, naming the cycle.
    address: String,
}

#[derive(Debug, Default)]
struct Acked {
    messages: Vec<Message>,
    changes: Vec<Change>,
}

/// A minimal SMTP client that reports failures instead of panicking: the power goes off
/// under it.
struct Smtp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Smtp {
    async fn connect(addr: SocketAddr) -> std::io::Result<Smtp> {
        let (r, w) = TcpStream::connect(addr).await?.into_split();
        let mut c = Smtp {
            reader: BufReader::new(r),
            writer: w,
        };
        c.reply().await?;
        Ok(c)
    }

    async fn reply(&mut self) -> std::io::Result<String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(REQUEST_TIMEOUT, self.reader.read_line(&mut line))
                .await
                .map_err(|_| std::io::Error::other("no reply in time"))??;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(all);
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> std::io::Result<String> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        self.reply().await
    }

    /// One transaction; the queue id if it was acknowledged.
    async fn send(&mut self, rcpt: &str, marker: &str) -> std::io::Result<Option<String>> {
        if !self
            .cmd("MAIL FROM:<app@example.com>")
            .await?
            .starts_with("250")
        {
            return Ok(None);
        }
        if !self
            .cmd(&format!("RCPT TO:<{rcpt}>"))
            .await?
            .starts_with("250")
            || !self.cmd("DATA").await?.starts_with("354")
        {
            self.cmd("RSET").await?;
            return Ok(None);
        }
        let body = format!(
            "From: app@example.com\r\nTo: {rcpt}\r\nSubject: power cut\r\n\r\n{marker}\r\n.\r\n"
        );
        self.writer.write_all(body.as_bytes()).await?;
        let reply = self.reply().await?;
        Ok(reply
            .starts_with("250")
            .then(|| crate::support::queue_id(&reply)))
    }
}

/// Sends mail until the power goes off (or quell stops answering).
async fn mail(
    smtp: SocketAddr,
    cycle: usize,
    client: usize,
    off: watch::Receiver<bool>,
    acked: Arc<Mutex<Acked>>,
) {
    let Ok(mut c) = Smtp::connect(smtp).await else {
        return;
    };
    if c.cmd("EHLO load.test").await.is_err() {
        return;
    }
    for n in 0.. {
        if *off.borrow() {
            return;
        }
        let rcpt = format!("m{cycle}-{client}-{n}@example.net");
        let marker = format!("powercut-{cycle}-{client}-{n}");
        match c.send(&rcpt, &marker).await {
            Ok(Some(queue_id)) => acked
                .lock()
                .unwrap()
                .messages
                .push(Message { queue_id, marker }),
            Ok(None) | Err(_) => return,
        }
    }
}

/// Makes changes through `api` until the power goes off (or quell stops answering).
async fn change(
    api: Api,
    base: String,
    cycle: usize,
    off: watch::Receiver<bool>,
    acked: Arc<Mutex<Acked>>,
) {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    for n in 0.. {
        if *off.borrow() {
            return;
        }
        let address = format!("{}{cycle}-{n}@example.net", api.name());
        let Ok(response) = api.request(&http, &base, &address).send().await else {
            return;
        };
        let status = response.status();
        let body = response.json::<Value>().await.ok();
        if !api.acknowledged(status, body.as_ref()) {
            return;
        }
        acked.lock().unwrap().changes.push(Change { api, address });
    }
}

/// Runs mail and API changes against `q` until the power goes off, then kills quell (the
/// machine goes down with its disk); returns what was acknowledged.
async fn load_until_the_power_goes_off(q: Running, disk: &Disk, cycle: usize) -> Acked {
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..SMTP_CLIENTS {
        tasks.spawn(mail(q.smtp, cycle, client, disk.power(), acked.clone()));
    }
    for api in Api::ALL {
        tasks.spawn(change(
            api,
            format!("http://{}", q.http),
            cycle,
            disk.power(),
            acked.clone(),
        ));
    }
    let went_off = disk.wait_off(WAIT).await;
    q.kill_9().await;
    tokio::time::timeout(WAIT, tasks.join_all())
        .await
        .expect("the clients end once quell is gone");
    assert!(
        went_off,
        "cycle {cycle}: the power cut never came ({} operations): did the load stall?",
        disk.operations()
    );
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

/// Starts quell on `disk`; `None` if the power went off first (quell is then killed: what it
/// does without a disk does not matter). A quell that exits before it is ready with the power
/// on fails the test with its log (a store that does not open).
async fn start(config: &std::path::Path, disk: &Disk) -> Option<Running> {
    // The power is off before quell sees its first failed operation, so a start that fails
    // for want of power is always taken for one.
    let q = tokio::select! {
        biased;
        () = disk.off() => None,
        q = spawn(config) => Some(q),
    };
    disk.cancel_cut();
    match q {
        Some(q) if disk.is_off() => {
            q.kill_9().await;
            None
        }
        q => q,
    }
}

/// The ids of every queued transaction, from the admin API.
async fn queued(q: &Running) -> HashSet<String> {
    let http = reqwest::Client::new();
    let mut ids = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut request = http
            .get(q.url("/api/queue"))
            .bearer_auth(API_KEY)
            .query(&[("limit", "1000")]);
        if let Some(after) = &after {
            request = request.query(&[("after", after)]);
        }
        let page: Value = request.send().await.unwrap().json().await.unwrap();
        for item in page["items"].as_array().expect("items") {
            ids.insert(item["id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return ids,
        }
    }
}

/// The entries of `address` as `"scope list"`, from the admin API.
async fn entries(http: &reqwest::Client, q: &Running, address: &str) -> Vec<String> {
    let v: Value = http
        .get(q.url("/api/suppressions"))
        .query(&[("address", address)])
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{} {}", i["scope"], i["list"]).replace('"', ""))
        .collect()
}

/// Every acknowledged message has its file in the spool of the state that survived.
fn check_spool(image: &Image, acked: &Acked, after: &str) {
    let lost: Vec<&Message> = acked
        .messages
        .iter()
        .filter(|m| match image.get(&format!("data/spool/{}", m.queue_id)) {
            Some(Image::File(bytes)) => !String::from_utf8_lossy(bytes).contains(&m.marker),
            _ => true,
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{after}: {} of {} acknowledged messages have no whole spool file: {lost:?}\n\
         the disk holds {:?}, data/ {:?}, data/spool/ {:?}",
        lost.len(),
        acked.messages.len(),
        image.names(""),
        image.names("data"),
        image.names("data/spool")
    );
}

/// Every acknowledged message is queued (none was delivered: the upstream never answers).
async fn check_queue(q: &Running, acked: &Acked, after: &str) {
    let queued = queued(q).await;
    let lost: Vec<&Message> = acked
        .messages
        .iter()
        .filter(|m| !queued.contains(&m.queue_id))
        .collect();
    assert!(
        lost.is_empty(),
        "{after}: {} of {} acknowledged messages are not queued: {lost:?}",
        lost.len(),
        acked.messages.len()
    );
}

/// Every acknowledged change is listed.
async fn check_changes(q: &Running, acked: &Acked, after: &str) {
    let http = reqwest::Client::new();
    let mut lost = Vec::new();
    for c in &acked.changes {
        if !entries(&http, q, &c.address)
            .await
            .iter()
            .any(|e| e == c.api.entry())
        {
            lost.push(c);
        }
    }
    assert!(
        lost.is_empty(),
        "{after}: {} of {} acknowledged changes are lost: {lost:?}",
        lost.len(),
        acked.changes.len()
    );
}

/// What the machine restarts on after the cut (quell is gone): what `disk` kept, written out
/// to a fresh directory and read back.
fn restart_state(disk: Disk) -> Image {
    let durable = disk.durable();
    disk.unmount();
    let (_dir, root) = powercut::materialise(&durable);
    let image = Image::read(&root).unwrap();
    assert_eq!(image, durable);
    image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledgement_survives_power_cuts_at_random_moments() {
    if !powercut::available() {
        eprintln!(
            "\n*** SKIPPED every_acknowledgement_survives_power_cuts_at_random_moments: \
             /dev/fuse is absent, so no power cut can be simulated here ***\n"
        );
        return;
    }
    let seed = std::env::var("QUELL_POWERCUT_SEED")
        .ok()
        .map(|s| s.parse().expect("QUELL_POWERCUT_SEED is a number"))
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("power cut seed {seed} (QUELL_POWERCUT_SEED={seed} replays the cut points)");
    let mut rng = StdRng::seed_from_u64(seed);

    // While the power is on, deliveries hang on an upstream that never answers, so that
    // everything acknowledged stays queued; the last start delivers to a real sink.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let sink = FakeUpstream::start().await;
    let config_dir = tempfile::tempdir().unwrap();

    let mut image = Image::empty();
    let mut acked = Acked::default();
    for cycle in 0..CYCLES {
        let disk = Disk::mount(&image);
        let config = write_config_at(
            config_dir.path(),
            &disk.path().join("data"),
            silent_port,
            "",
        );
        let start_cut = rng.random_bool(START_CUTS).then(|| {
            let cut = rng.random_range(1..=START_CUT_WITHIN);
            disk.cut_after(cut);
            cut
        });
        let Some(q) = start(&config, &disk).await else {
            eprintln!(
                "cycle {cycle}: power cut at operation {} of the start",
                start_cut.expect("a cut during the start")
            );
            image = restart_state(disk);
            check_spool(&image, &acked, &format!("after cut {cycle} (seed {seed})"));
            continue;
        };
        let after = format!("after {cycle} power cuts (seed {seed})");
        check_queue(&q, &acked, &after).await;
        check_changes(&q, &acked, &after).await;

        let cut = rng.random_range(1..=CUT_WITHIN);
        let before = disk.operations();
        disk.cut_after(cut);
        let new = load_until_the_power_goes_off(q, &disk, cycle).await;
        let (file_syncs, dir_syncs) = disk.syncs();
        eprintln!(
            "cycle {cycle}: power cut at operation {cut} of the load ({before} at start), \
             {} messages and {} changes acknowledged, {file_syncs} file and {dir_syncs} \
             directory syncs",
            new.messages.len(),
            new.changes.len(),
        );
        acked.messages.extend(new.messages);
        acked.changes.extend(new.changes);

        image = restart_state(disk);
        check_spool(&image, &acked, &format!("after cut {cycle} (seed {seed})"));
    }

    // The last restart: on the materialised directory itself, with an upstream that answers.
    let (_dir, root) = powercut::materialise(&image);
    let config = write_config_at(config_dir.path(), &root.join("data"), sink.addr.port(), "");
    let q = spawn(&config).await;
    // The oldest may be delivered already: the sink's count below is the check.
    check_changes(&q, &acked, &format!("after the last cut (seed {seed})")).await;
    let delivered: HashSet<String> = sink
        .wait_for(acked.messages.len())
        .await
        .iter()
        .map(|r| r.text())
        .flat_map(|text| {
            text.split_whitespace()
                .filter(|w| w.starts_with("powercut-"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let undelivered: Vec<&Message> = acked
        .messages
        .iter()
        .filter(|m| !delivered.contains(&m.marker))
        .collect();
    assert!(undelivered.is_empty(), "never delivered: {undelivered:?}");
    // Every acknowledged change is in force where it matters: at RCPT.
    let mut c = SmtpClient::connect(q.smtp).await;
    c.expect("EHLO app.test", "250").await;
    c.expect("MAIL FROM:<app@example.com>", "250").await;
    for change in &acked.changes {
        c.expect(&format!("RCPT TO:<{}>", change.address), "550")
            .await;
    }
    q.kill_9().await;
    assert!(
        !acked.messages.is_empty() && !acked.changes.is_empty(),
        "the load acknowledged nothing: {acked:?}"
    );
    drop(silent);
}

/// The file system itself: after a cut only what was synced is there, as on a disk.
#[test]
fn the_power_cut_disk_keeps_only_what_was_synced() {
    if !powercut::available() {
        eprintln!("\n*** SKIPPED: /dev/fuse is absent ***\n");
        return;
    }
    use std::fs::{self, File};
    use std::io::Write;
    use std::os::fd::AsRawFd;

    let mut seed = std::collections::BTreeMap::new();
    seed.insert("old".into(), Image::File(b"kept".to_vec()));
    seed.insert("gone".into(), Image::File(b"removed, unsynced".to_vec()));
    let disk = Disk::mount(&Image::Dir(seed));
    let root = disk.path().to_path_buf();
    let sync_dir = |p: &std::path::Path| File::open(p).unwrap().sync_all().unwrap();

    let mut r = File::create(root.join("r")).unwrap();
    fs::create_dir(root.join("d")).unwrap();
    fs::create_dir(root.join("e")).unwrap();
    sync_dir(&root);
    // A synced file whose directory was not synced since it was created: gone.
    let mut a = File::create(root.join("e/a")).unwrap();
    a.write_all(b"a").unwrap();
    a.sync_data().unwrap();
    // A file whose entry was synced but not its data: there, empty.
    File::create(root.join("d/b"))
        .unwrap()
        .write_all(b"b")
        .unwrap();
    // A synced file (its entry too), then overwritten without a sync: the synced bytes.
    let mut c = File::create(root.join("d/c")).unwrap();
    c.write_all(b"c1").unwrap();
    c.sync_all().unwrap();
    // Renamed, file synced, directory synced before the rename only: the old name.
    let mut t = File::create(root.join("d/t")).unwrap();
    t.write_all(b"t").unwrap();
    t.sync_data().unwrap();
    sync_dir(&root.join("d"));
    fs::rename(root.join("d/t"), root.join("d/renamed")).unwrap();
    fs::write(root.join("d/c"), b"c2").unwrap();
    // sync_file_range is not a sync (the file's entry is durable, its data is not).
    r.write_all(b"range").unwrap();
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    assert_eq!(
        unsafe { libc::sync_file_range(r.as_raw_fd(), 0, 0, flags) },
        0
    );
    // A removal without a directory sync is undone.
    fs::remove_file(root.join("gone")).unwrap();
    // The current state is all there before the cut.
    assert_eq!(fs::read(root.join("d/c")).unwrap(), b"c2");
    assert!(root.join("d/renamed").exists() && !root.join("gone").exists());

    disk.cut();
    assert!(
        fs::write(root.join("after"), b"x").is_err(),
        "the power is off"
    );
    let survived = disk.durable();
    drop((a, c, t, r));
    disk.unmount();

    let file = |path: &str| match survived.get(path) {
        Some(Image::File(bytes)) => Some(String::from_utf8(bytes.clone()).unwrap()),
        _ => None,
    };
    assert_eq!(survived.names("d"), ["b", "c", "t"], "{survived:?}");
    assert_eq!(file("d/b").as_deref(), Some(""));
    assert_eq!(file("d/c").as_deref(), Some("c1"));
    assert_eq!(file("d/t").as_deref(), Some("t"));
    assert!(survived.names("e").is_empty(), "{survived:?}");
    assert_eq!(file("r").as_deref(), Some(""));
    assert_eq!(survived.names(""), ["d", "e", "gone", "old", "r"]);
    assert_eq!(file("old").as_deref(), Some("kept"));
    assert_eq!(file("gone").as_deref(), Some("removed, unsynced"));

    // Written out and mounted again, the survivors are what a restart sees.
    let (_dir, materialised) = powercut::materialise(&survived);
    assert_eq!(fs::read(materialised.join("d/c")).unwrap(), b"c1");
    let again = Disk::mount(&Image::read(&materialised).unwrap());
    assert_eq!(fs::read(again.path().join("d/t")).unwrap(), b"t");
    assert!(!again.path().join("e/a").exists());
    again.unmount();
}

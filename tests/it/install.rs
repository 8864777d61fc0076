//! The systemd install, as the README's "Running under systemd" lays it out, into a temp root:
//! `systemd-analyze verify` accepts the unit, and the unit's own `ExecStartPre=` and
//! `ExecStart=` run as an unprivileged user the way systemd would run them — the config and
//! the DKIM key root-only in /etc/quell, handed over by `LoadCredential=` into
//! `$CREDENTIALS_DIRECTORY` — and quell starts and stops cleanly. (Needs root, as CI has, for
//! the file owners, and `setpriv` and `systemd-analyze`.)

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::process::BIN;
use crate::support::tls::TestCert;
use crate::support::{FakeUpstream, API_KEY, WAIT};

/// The user systemd's `DynamicUser=` would allocate; `nobody` stands in for it.
const SERVICE_UID: u32 = 65534;

/// What systemd reads from the unit and its drop-ins to start the service.
#[derive(Debug, Default)]
struct Service {
    exec_start_pre: Vec<String>,
    exec_start: Vec<String>,
    /// `LoadCredential=ID:PATH`.
    credentials: Vec<(String, String)>,
    environment: Vec<(String, String)>,
    working_directory: Option<String>,
    state_directory: Option<String>,
    dynamic_user: bool,
}

impl Service {
    /// The `[Service]` settings of `files`, in order (a drop-in adds to the unit).
    fn read(files: &[PathBuf]) -> Service {
        let mut s = Service::default();
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            let mut in_service = false;
            for line in text.lines().map(str::trim) {
                if line.starts_with('[') {
                    in_service = line == "[Service]";
                    continue;
                }
                if !in_service || line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (key, value) = line.split_once('=').unwrap();
                let value = value.to_string();
                match key {
                    "ExecStartPre" => s.exec_start_pre.push(value),
                    "ExecStart" => s.exec_start.push(value),
                    "LoadCredential" => {
                        let (id, path) = value.split_once(':').unwrap();
                        s.credentials.push((id.into(), path.into()));
                    }
                    "Environment" => {
                        let (k, v) = value.split_once('=').unwrap();
                        s.environment.push((k.into(), v.into()));
                    }
                    "WorkingDirectory" => s.working_directory = Some(value),
                    "StateDirectory" => s.state_directory = Some(value),
                    "DynamicUser" => s.dynamic_user = value == "yes",
                    _ => {}
                }
            }
        }
        s
    }
}

/// A directory tree standing for `/`.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    /// `/path` inside the root.
    fn at(&self, path: &str) -> PathBuf {
        self.dir.path().join(path.trim_start_matches('/'))
    }

    /// `install -m MODE -D source /dest` (owner root).
    fn install(&self, source: &Path, dest: &str, mode: u32) {
        let to = self.at(dest);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(source, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A unit's word with systemd's `%d` expanded and absolute paths moved into the root.
    fn word(&self, word: &str, credentials: &Path) -> String {
        let word = if word.starts_with('/') {
            self.at(word).display().to_string()
        } else {
            word.to_string()
        };
        word.replace("%d", &credentials.display().to_string())
    }
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

/// A command of the unit, as systemd runs it: as the service's user with no supplementary
/// groups, the unit's environment and `$CREDENTIALS_DIRECTORY`, in its working directory.
fn as_service(root: &Root, service: &Service, line: &str, credentials: &Path) -> Command {
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| root.word(w, credentials))
        .collect();
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={SERVICE_UID}"))
        .arg(format!("--regid={SERVICE_UID}"))
        .arg("--clear-groups")
        .args(&words)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CREDENTIALS_DIRECTORY", credentials);
    for (k, v) in &service.environment {
        c.env(k, root.word(v, credentials));
    }
    if let Some(dir) = &service.working_directory {
        c.current_dir(root.at(dir));
    }
    c
}

#[tokio::test]
async fn the_systemd_install_starts_as_written_as_an_unprivileged_user() {
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "this test installs files owned by root and runs quell as another user: run it as root"
    );
    let upstream = FakeUpstream::start().await;
    let root = Root {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::set_permissions(root.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let scratch = tempfile::tempdir().unwrap();

    // As the README installs it: the binary, the config and keys root-only in /etc/quell,
    // the unit, and a drop-in handing over the files the config names.
    // The binary (0755 already): linked rather than copied where the file system allows.
    let bin = root.at("/usr/local/bin/quell");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    if std::fs::hard_link(BIN, &bin).is_err() {
        root.install(Path::new(BIN), "/usr/local/bin/quell", 0o755);
    }
    root.install(
        Path::new("systemd/quell.service"),
        "/etc/systemd/system/quell.service",
        0o644,
    );
    let shipped = std::fs::read_to_string("config/quell.toml").unwrap();
    // The operator's edits (`sudoedit /etc/quell/quell.toml`): here, ports chosen by the
    // kernel, the test's upstream, a key, DKIM and STARTTLS with files beside the config.
    let edited = shipped
        .replace("listen = \"127.0.0.1:2525\"", "listen = \"127.0.0.1:0\"")
        .replace("listen = \"127.0.0.1:8025\"", "listen = \"127.0.0.1:0\"")
        .replace("port = 25\n", &format!("port = {}\n", upstream.addr.port()))
        .replace("api_keys = []", &format!("api_keys = [\"{API_KEY}\"]"))
        .replace(
            "# [smtp.tls]\n# cert_file = \"smtp-cert.pem\"\n# key_file = \"smtp-key.pem\"",
            "[smtp.tls]\ncert_file = \"smtp-cert.pem\"\nkey_file = \"smtp-key.pem\"",
        )
        .replace(
            "# [dkim]\n# domain = \"example.com\"\n# selector = \"quell\"\n# key_file = \"dkim.pem\"",
            "[dkim]\ndomain = \"example.com\"\nselector = \"quell\"\nkey_file = \"dkim.pem\"",
        );
    assert!(
        edited.contains("[dkim]\n") && edited.contains("[smtp.tls]\n"),
        "config/quell.toml no longer has the commented sections this test enables"
    );
    let config = scratch.path().join("quell.toml");
    std::fs::write(&config, edited).unwrap();
    root.install(&config, "/etc/quell/quell.toml", 0o600);
    let dkim = scratch.path().join("dkim.pem");
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&dkim)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    root.install(&dkim, "/etc/quell/dkim.pem", 0o600);
    let cert = TestCert::new(scratch.path());
    root.install(&cert.cert_file, "/etc/quell/smtp-cert.pem", 0o644);
    root.install(&cert.key_file, "/etc/quell/smtp-key.pem", 0o600);
    let drop_in = scratch.path().join("credentials.conf");
    std::fs::write(
        &drop_in,
        "[Service]\n\
         LoadCredential=dkim.pem:/etc/quell/dkim.pem\n\
         LoadCredential=smtp-cert.pem:/etc/quell/smtp-cert.pem\n\
         LoadCredential=smtp-key.pem:/etc/quell/smtp-key.pem\n",
    )
    .unwrap();
    root.install(
        &drop_in,
        "/etc/systemd/system/quell.service.d/credentials.conf",
        0o644,
    );

    // systemd accepts the unit and the drop-in (with the system's own units beside them).
    let units = root.at("/usr/lib/systemd/system");
    std::fs::create_dir_all(units.parent().unwrap()).unwrap();
    let out = std::process::Command::new("cp")
        .args(["-a", "/usr/lib/systemd/system"])
        .arg(&units)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.dir.path().display()))
        .arg("quell.service")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");

    // What systemd does at start: the state directory for the service's user, and a copy of
    // each credential that only this user can read.
    let service = Service::read(&[
        root.at("/etc/systemd/system/quell.service"),
        root.at("/etc/systemd/system/quell.service.d/credentials.conf"),
    ]);
    assert!(service.dynamic_user, "{service:?}");
    assert_eq!(service.exec_start_pre.len(), 1, "{service:?}");
    assert_eq!(service.exec_start.len(), 1, "{service:?}");
    let state = root.at(&format!(
        "/var/lib/{}",
        service.state_directory.as_deref().unwrap()
    ));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown(&state, SERVICE_UID);
    let credentials = root.at("/run/credentials/quell.service");
    std::fs::create_dir_all(&credentials).unwrap();
    for (id, path) in &service.credentials {
        let copy = credentials.join(id);
        std::fs::copy(root.at(path), &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o400)).unwrap();
        chown(&copy, SERVICE_UID);
    }
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o500)).unwrap();
    chown(&credentials, SERVICE_UID);

    // The installed files themselves stay out of the service user's reach ...
    let direct = as_service(
        &root,
        &service,
        "/usr/local/bin/quell check-config -c /etc/quell/quell.toml",
        &credentials,
    )
    .output()
    .await
    .unwrap();
    assert_eq!(direct.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&direct.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&direct.stderr)
    );

    // ... and the unit's ExecStartPre= passes on what systemd hands over.
    let pre = as_service(&root, &service, &service.exec_start_pre[0], &credentials)
        .output()
        .await
        .unwrap();
    assert!(
        pre.status.success(),
        "ExecStartPre failed: {}{}",
        String::from_utf8_lossy(&pre.stdout),
        String::from_utf8_lossy(&pre.stderr)
    );

    // ExecStart= serves: ready, the store created by the service's user, STARTTLS offered with
    // the handed-over certificate, and SIGTERM stops it with exit 0.
    let mut child = as_service(&root, &service, &service.exec_start[0], &credentials)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut smtp = None;
    let mut seen = Vec::new();
    let ready = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("smtp listening") {
                smtp = line
                    .split("addr=")
                    .nth(1)
                    .and_then(|a| a.split_whitespace().next())
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
            }
            let done = line.contains("quell ready");
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await
    .expect("ready in time");
    assert!(ready, "quell exited: {seen:#?}");
    let store = root.at("/var/lib/quell/data");
    assert_eq!(std::fs::metadata(&store).unwrap().uid(), SERVICE_UID);
    let mut c = crate::support::SmtpClient::connect(smtp.expect("smtp address")).await;
    let ehlo = c.cmd("EHLO app.test").await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    c.cmd("QUIT").await;
    let pid = child.id().unwrap();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

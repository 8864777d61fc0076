//! Every file in config/ parses with the strict loader, and overrides come from QUELL_*.

use std::collections::HashMap;
use std::path::Path;

#[test]
fn every_shipped_config_file_is_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir("config").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            quell::config::load_with_env(&path, Some(HashMap::new()))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn environment_overrides_the_file() {
    let env = HashMap::from([
        ("QUELL_SMTP__LISTEN".to_string(), "0.0.0.0:25".to_string()),
        (
            "QUELL_SMTP__RELAY_NETWORKS".to_string(),
            "10.0.0.0/8,192.168.0.0/16".to_string(),
        ),
        (
            "QUELL_SUPPRESSION__ON_SUPPRESSED".to_string(),
            "drop".to_string(),
        ),
    ]);
    let c = quell::config::load_with_env(Path::new("config/quell.toml"), Some(env)).unwrap();
    assert_eq!(c.smtp.listen.to_string(), "0.0.0.0:25");
    assert_eq!(c.smtp.relay_networks.len(), 2);
    assert_eq!(
        c.suppression.on_suppressed,
        quell::config::OnSuppressed::Drop
    );
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    for (text, key) in [
        ("[smtp]\nlisten = \"x\"\n", "smtp.listen"),
        ("[queue]\nmax_age = \"soon\"\n", "queue.max_age"),
        (
            "[suppression]\non_suppressed = \"bounce\"\n",
            "suppression.on_suppressed",
        ),
        ("[http]\napi_keys = [\"short\"]\n", "http.api_keys"),
        ("[storage]\npaht = \"x\"\n", "paht"),
        ("[storage]\ncache_size = 4096\n", "storage.cache_size"),
        (
            "[smtp]\nrelay_networks = [\"everyone\"]\n",
            "smtp.relay_networks",
        ),
    ] {
        std::fs::write(&p, text).unwrap();
        let e = quell::config::load_with_env(&p, Some(HashMap::new())).unwrap_err();
        assert!(e.to_string().contains(key), "{text:?}: {e}");
    }
}

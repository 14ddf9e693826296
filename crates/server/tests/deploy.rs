//! The files under `deploy/` name settings, binaries, packages, paths and
//! metrics of this workspace; Docker and systemd cannot run here, so these
//! checks read the files and hold every name they use against the code:
//! the example configuration (with its commented lines too) loads, the
//! unit's and the image's command lines parse, the packages and binaries
//! they build exist, and every metric an alert uses is exported.

use std::path::{Path, PathBuf};

use bitcask_server::config::Config;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    let path = workspace().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(argv: &[&str]) -> Config {
    let full: Vec<&str> = std::iter::once("bitcask-server")
        .chain(argv.iter().copied())
        .collect();
    Config::from_args(&full).unwrap_or_else(|e| panic!("{full:?}: {e}"))
}

/// The packages of the workspace and their binaries, from each crate's
/// manifest.
fn packages() -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(workspace().join("crates")).expect("crates") {
        let manifest = entry.expect("entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let table: toml::Table = text.parse().expect("a manifest");
        let name = table["package"]["name"].as_str().expect("name").to_string();
        let bins = table
            .get("bin")
            .and_then(|b| b.as_array())
            .map(|bins| {
                bins.iter()
                    .filter_map(|b| b["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        found.push((name, bins));
    }
    found
}

#[test]
fn the_example_configuration_loads_with_every_commented_setting_too() {
    let path = workspace().join("deploy/config.toml");
    let c = load(&["--config", path.to_str().expect("utf-8")]);
    assert_eq!(c.data_dir, Path::new("/var/lib/bitcask"));
    // Uncomment every `# name = value` line that names a setting (but the
    // token file, which must exist) and load that too.
    let text = read("deploy/config.toml");
    let mut uncommented = String::new();
    let mut examples = 0;
    for line in text.lines() {
        let example = line
            .strip_prefix("# ")
            .filter(|rest| {
                rest.split_once(" = ").is_some_and(|(name, _)| {
                    name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
            })
            .filter(|rest| !rest.starts_with("auth_token_file"));
        match example {
            Some(setting) => {
                uncommented.push_str(setting);
                examples += 1;
            }
            None => uncommented.push_str(line),
        }
        uncommented.push('\n');
    }
    assert!(examples >= 6, "{examples} commented examples found");
    let dir = tempfile::tempdir().expect("tempdir");
    let all = dir.path().join("all.toml");
    std::fs::write(&all, uncommented).expect("write");
    let c = load(&["--config", all.to_str().expect("utf-8")]);
    assert_eq!(c.resp_port, Some(6380));
    assert!(c.scrub_interval.duration().is_some());
    assert!(c.backup_dir.is_some());
}

#[test]
fn the_systemd_unit_runs_a_binary_of_the_workspace_on_the_example_configuration() {
    let unit = read("deploy/bitcask.service");
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("the unit has no {key}="))
            .to_string()
    };
    let exec = value("ExecStart");
    let mut words = exec.split_whitespace();
    let binary = words.next().expect("a binary");
    let name = Path::new(binary)
        .file_name()
        .expect("name")
        .to_str()
        .expect("utf-8");
    assert!(
        packages()
            .iter()
            .any(|(_, bins)| bins.iter().any(|b| b == name)),
        "{name} is no binary of the workspace"
    );
    // Its flags parse, with the example file in place of /etc's.
    let example = workspace().join("deploy/config.toml");
    let flags: Vec<String> = words
        .map(|w| match w {
            "/etc/bitcask/config.toml" => example.to_str().expect("utf-8").to_string(),
            other => other.to_string(),
        })
        .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let config = load(&flags);
    // The data directory is the one systemd creates and lets it write.
    let state = format!("/var/lib/{}", value("StateDirectory"));
    assert_eq!(config.data_dir, Path::new(&state));
    assert!(
        value("ReadWritePaths")
            .split_whitespace()
            .any(|p| p == state)
    );
    // Stopping waits longer than the drain.
    let stop: u64 = value("TimeoutStopSec").parse().expect("seconds");
    assert!(stop > config.shutdown_timeout.as_secs(), "{stop}");
    assert_ne!(value("User"), "root");
}

#[test]
fn the_dockerfile_builds_packages_and_copies_binaries_that_exist() {
    let docker = read("deploy/Dockerfile");
    let packages = packages();
    let build = docker
        .lines()
        .find(|l| l.contains("cargo build"))
        .expect("a cargo build line");
    let mut built = Vec::new();
    let mut words = build.split_whitespace();
    while let Some(word) = words.next() {
        if word == "-p" {
            let package = words.next().expect("a package after -p");
            let bins = &packages
                .iter()
                .find(|(name, _)| name == package)
                .unwrap_or_else(|| panic!("{package} is no package of the workspace"))
                .1;
            built.extend(bins.iter().cloned());
        }
    }
    assert!(
        build.contains("--locked") && build.contains("--release"),
        "{build}"
    );
    for line in docker.lines().filter(|l| l.starts_with("COPY")) {
        let source = line.split_whitespace().nth_back(1).expect("a source");
        if line.contains("--from=build") {
            let bin = source
                .strip_prefix("/src/target/release/")
                .unwrap_or_else(|| panic!("{line}"));
            assert!(built.iter().any(|b| b == bin), "{bin} is not built: {line}");
        } else if source != "." {
            assert!(workspace().join(source).exists(), "{source} does not exist");
        }
    }
    // Every variable it sets is a setting, and the data directory is a volume.
    let help = Config::command_help();
    let env_line = docker
        .split("ENV ")
        .nth(1)
        .expect("an ENV instruction")
        .split("\nVOLUME")
        .next()
        .expect("ENV before VOLUME");
    let mut data_dir = None;
    for pair in env_line.split_whitespace().filter(|w| w.contains('=')) {
        let (name, value) = pair.split_once('=').expect("NAME=value");
        assert!(
            help.contains(&format!("[env: {name}]")),
            "{name} is no setting"
        );
        if name == "BITCASK_DATA_DIR" {
            data_dir = Some(value.to_string());
        }
    }
    let data_dir = data_dir.expect("the image sets BITCASK_DATA_DIR");
    let volume = docker
        .lines()
        .find(|l| l.starts_with("VOLUME"))
        .expect("a VOLUME");
    assert!(volume.contains(&format!("\"{data_dir}\"")), "{volume}");
    assert!(
        docker
            .lines()
            .any(|l| l.starts_with("USER ") && !l.contains("root")),
        "the image runs as a user of its own"
    );
    let health = docker
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .nth(1)
        .expect("a HEALTHCHECK command");
    assert!(
        health.contains("\"bitcask\"") && health.contains("\"health\""),
        "{health}"
    );
    assert!(docker.contains("EXPOSE 8000"), "the default port");
    // The build context leaves the build outputs out.
    let ignored = read(".dockerignore");
    assert!(ignored.lines().any(|l| l == "target"));
}

#[test]
fn every_metric_an_alert_uses_is_exported() {
    let rules = read("deploy/prometheus-alerts.yml");
    let exported = read("crates/server/src/metrics.rs");
    let mut names: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("bitcask_"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        // The name as a whole word: not the start of a longer one.
        let whole = exported.match_indices(base).any(|(at, _)| {
            !exported[at + base.len()..]
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        });
        assert!(whole, "{name} is not exported by metrics.rs");
    }
}

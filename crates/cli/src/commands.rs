//! Each command: what it asks of the store and what it prints. Returns the
//! exit code of a command that ran (0, or 1 for a "no" answer).

use std::io::Read;
use std::path::Path;

use bitcask_client::Condition;
use serde_json::{Map, Value, json};

use crate::cli::{Cli, ClusterAction, Command, ConditionArgs, ConfigAction};
use crate::config;
use crate::failure::{Failure, code};
use crate::local::{Access, Local};
use crate::output;
use crate::remote::Server;
use crate::store::{PutOptions, Store};
use crate::transfer;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<u8, Failure> {
    match &cli.command {
        Command::Config { action } => return config_command(action, cli.json),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "bitcask", &mut std::io::stdout());
            return Ok(code::OK);
        }
        _ => {}
    }
    match &cli.data_dir {
        Some(dir) => run_local(&cli, dir),
        None => run_remote(&cli),
    }
}

/// A command on a server.
fn run_remote(cli: &Cli) -> Result<u8, Failure> {
    let local_only = match cli.command {
        Command::Check => Some("check"),
        Command::Repair => Some("repair"),
        Command::Export { .. } => Some("export"),
        Command::Import { .. } => Some("import"),
        _ => None,
    };
    if let Some(name) = local_only {
        return Err(Failure::usage(format!(
            "`{name}` works on a data directory, not through a server"
        ))
        .hint(format!("bitcask --data-dir DIR {name}")));
    }
    let remote = config::remote(cli.server.as_deref(), cli.token.as_deref(), cli.timeout)?;
    let server = Server::connect(&remote)?;
    match &cli.command {
        Command::Health => health(&server, cli.json),
        Command::Ping => ping(&server, cli.json),
        Command::Cluster { action } => cluster(&server, action, cli.json),
        Command::Watch {
            prefix,
            from_seq,
            ops,
        } => crate::watch::remote(&server, &watching(prefix, *from_seq, ops, cli.json)),
        _ => with_store(Box::new(server), cli),
    }
}

/// `bitcask cluster status|add|remove`.
fn cluster(server: &Server, action: &ClusterAction, as_json: bool) -> Result<u8, Failure> {
    let client = server.client();
    let status = match action {
        ClusterAction::Status => client.cluster()?,
        ClusterAction::Add { node_id, peer_addr } => client.add_member(*node_id, peer_addr)?,
        ClusterAction::Remove { node_id } => client.remove_member(*node_id)?,
    };
    if as_json {
        output::json(&to_json(&status)?)?;
    } else {
        output::line(&output::cluster_table(&status))?;
    }
    Ok(code::OK)
}

/// A command on a data directory.
fn run_local(cli: &Cli, dir: &Path) -> Result<u8, Failure> {
    let access = match &cli.command {
        Command::Health | Command::Ping | Command::Cluster { .. } => {
            return Err(Failure::usage(
                "health, ping and cluster ask a server; leave out --data-dir",
            ));
        }
        Command::Check => return check(dir, cli.json),
        Command::Watch {
            prefix,
            from_seq,
            ops,
        } => {
            return crate::watch::local(dir, &watching(prefix, *from_seq, ops, cli.json));
        }
        Command::Repair => return repair(dir, cli.json),
        Command::Put { .. } | Command::Import { .. } | Command::Batch { .. } => Access::Create,
        Command::Delete { .. } | Command::Merge => Access::Write,
        _ => Access::Read,
    };
    let local = Local::open(dir, access)?;
    match &cli.command {
        Command::Export { output, prefix } => {
            let result = export(&local, output.as_deref(), prefix, cli.json);
            Box::new(local).close()?;
            result
        }
        Command::Import { file } => {
            let imported = transfer::import(local.db(), file.as_deref());
            // Close (and sync) whatever happened: the records before a bad
            // line are kept.
            Box::new(local).close()?;
            let imported = imported?;
            if cli.json {
                output::json(&json!({"records": imported.records, "expired": imported.expired}))?;
            } else {
                output::note(&format!(
                    "imported {} records ({} already expired, skipped)",
                    imported.records, imported.expired
                ));
            }
            Ok(code::OK)
        }
        _ => with_store(Box::new(local), cli),
    }
}

fn watching(
    prefix: &Option<String>,
    from_seq: Option<u64>,
    ops: &[bitcask_client::WatchOp],
    json: bool,
) -> crate::watch::Watching {
    crate::watch::Watching {
        prefix: prefix.clone(),
        from_seq,
        ops: ops.to_vec(),
        json,
    }
}

/// The commands both kinds of store answer; closes the store after.
fn with_store(store: Box<dyn Store>, cli: &Cli) -> Result<u8, Failure> {
    let result = store_command(store.as_ref(), cli);
    let closed = store.close();
    let code = result?;
    closed?;
    Ok(code)
}

fn store_command(store: &dyn Store, cli: &Cli) -> Result<u8, Failure> {
    match &cli.command {
        Command::Put {
            key,
            value,
            ttl,
            condition,
            durable,
        } => {
            let value = read_value(value)?;
            let options = PutOptions {
                ttl: *ttl,
                condition: condition_of(condition),
                durable: *durable,
            };
            let version = store.put(key, &value, options)?;
            if cli.json {
                output::json(&json!({"key": key, "version": version}))?;
            } else {
                output::note(&format!("stored {key:?} (version {version})"));
            }
            Ok(code::OK)
        }
        Command::Get { key } => match store.get(key)? {
            Some((value, version)) => {
                if cli.json {
                    let mut map = Map::new();
                    map.insert("key".into(), key.as_str().into());
                    output::value_fields(&mut map, "value", &value);
                    map.insert("version".into(), version.into());
                    map.insert("found".into(), true.into());
                    output::json(&Value::Object(map))?;
                } else {
                    output::value(&value)?;
                }
                Ok(code::OK)
            }
            None => {
                if cli.json {
                    output::json(&json!({"key": key, "value": null, "found": false}))?;
                } else {
                    output::note(&format!("key {key:?} not found"));
                }
                Ok(code::NO)
            }
        },
        Command::Delete {
            key,
            if_version,
            durable,
        } => {
            let version = store.delete(key, *if_version, *durable)?;
            if cli.json {
                output::json(
                    &json!({"key": key, "deleted": version.is_some(), "version": version}),
                )?;
            } else {
                match version {
                    Some(v) => output::note(&format!("deleted {key:?} (version {v})")),
                    None => output::note(&format!("{key:?} was not there")),
                }
            }
            Ok(code::OK)
        }
        Command::Keys {
            prefix,
            start_after,
            limit,
        } => {
            let keys = store
                .keys(prefix, start_after.as_deref(), *limit)
                .take(limit.unwrap_or(usize::MAX));
            if cli.json {
                let keys = keys
                    .map(|k| k.map(|k| Value::String(String::from_utf8_lossy(&k).into_owned())))
                    .collect::<Result<Vec<_>, _>>()?;
                output::json(&Value::Array(keys))?;
            } else {
                for key in keys {
                    let mut key = key?;
                    key.push(b'\n');
                    output::value(&key)?;
                }
            }
            Ok(code::OK)
        }
        Command::Stats => {
            let stats = store.stats()?;
            if cli.json {
                output::json(&to_json(&stats)?)?;
            } else {
                output::line(&output::stats_table(&stats))?;
            }
            Ok(code::OK)
        }
        Command::Batch { file, durable } => {
            let body = read_batch(file.as_deref())?;
            let result = store.batch(body, *durable)?;
            if cli.json {
                output::json(&to_json(&result)?)?;
            } else {
                let version = result
                    .version
                    .map_or_else(String::new, |v| format!(" (version {v})"));
                output::note(&format!("applied {} operations{version}", result.count));
            }
            Ok(code::OK)
        }
        Command::Backup { dest } => {
            let report = store.backup(dest.as_deref())?;
            if cli.json {
                output::json(&to_json(&report)?)?;
            } else {
                output::line(&output::backup_line(&report))?;
            }
            Ok(code::OK)
        }
        Command::Scrub => {
            let report = store.scrub()?;
            if cli.json {
                output::json(&to_json(&report)?)?;
            } else {
                output::line(&output::scrub_line(&report))?;
            }
            Ok(if report.damaged_records == 0 {
                code::OK
            } else {
                code::NO
            })
        }
        Command::Merge => {
            let report = store.merge()?;
            if cli.json {
                output::json(&to_json(&report)?)?;
            } else {
                output::line(&output::merge_line(&report))?;
            }
            Ok(code::OK)
        }
        _ => Err(Failure::usage("this command does not apply here")),
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<Value, Failure> {
    serde_json::to_value(value).map_err(|e| Failure::failed(e.to_string()))
}

/// The value argument: itself, or stdin for `-`.
fn read_value(value: &str) -> Result<Vec<u8>, Failure> {
    if value != "-" {
        return Ok(value.as_bytes().to_vec());
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::failed(format!("cannot read the value from stdin: {e}")))?;
    Ok(bytes)
}

/// A batch body from `file` (or stdin for `-` or none).
fn read_batch(file: Option<&str>) -> Result<bitcask_wire::BatchBody, Failure> {
    let text = match file {
        None | Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .lock()
                .read_to_string(&mut text)
                .map_err(|e| Failure::failed(format!("cannot read the batch from stdin: {e}")))?;
            text
        }
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("cannot read {path}: {e}")))?,
    };
    serde_json::from_str(&text).map_err(|e| {
        Failure::usage(format!("not a batch: {e}")).hint(
            r#"the shape is {"ops": [{"op": "put", "key": "k", "value": "v"}, {"op": "delete", "key": "k"}]}"#,
        )
    })
}

fn condition_of(args: &ConditionArgs) -> Condition {
    match (args.if_version, args.if_absent, args.if_present) {
        (Some(v), _, _) => Condition::Version(v),
        (None, true, _) => Condition::Absent,
        (None, false, true) => Condition::Present,
        (None, false, false) => Condition::None,
    }
}

fn health(server: &Server, json: bool) -> Result<u8, Failure> {
    let health = server.client().health()?;
    if json {
        output::json(&to_json(&health)?)?;
    } else {
        output::line(&format!(
            "{} ({}, version {})",
            health.status,
            server.client().base_url(),
            health.version
        ))?;
        if let Some(detail) = &health.detail {
            output::line(detail)?;
        }
    }
    Ok(if health.is_healthy() {
        code::OK
    } else {
        code::NO
    })
}

fn ping(server: &Server, json: bool) -> Result<u8, Failure> {
    let rtt = server.client().ping()?;
    let ms = rtt.as_secs_f64() * 1000.0;
    if json {
        output::json(&json!({"server": server.client().base_url(), "round_trip_ms": ms}))?;
    } else {
        output::line(&format!(
            "pong from {} in {ms:.2} ms",
            server.client().base_url()
        ))?;
    }
    Ok(code::OK)
}

fn check(dir: &Path, json: bool) -> Result<u8, Failure> {
    if !dir.is_dir() {
        return Err(Failure::failed(format!("no store at {}", dir.display())));
    }
    let bar = output::progress(0, true, "checking");
    let report = bitcask::check_with_progress(dir, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    if json {
        output::json(&check_json(&report))?;
    } else {
        output::value(report.to_string().as_bytes())?;
    }
    if !report.is_damaged() {
        return Ok(code::OK);
    }
    output::note(&format!(
        "to make the store open again with every undamaged record: stop the server, \
         then `bitcask --data-dir {} repair`",
        dir.display()
    ));
    Ok(code::NO)
}

fn repair(dir: &Path, json: bool) -> Result<u8, Failure> {
    if !dir.is_dir() {
        return Err(Failure::failed(format!("no store at {}", dir.display())));
    }
    let bar = output::progress(0, true, "reading");
    let report = bitcask::repair_with_progress(dir, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .map_err(|e| match e {
        bitcask::Error::Locked { pid, .. } => Failure::failed(format!(
            "{} is in use by {}",
            dir.display(),
            crate::local::holder(pid)
        ))
        .hint("stop the server first: repair rewrites files"),
        other => other.into(),
    })?;
    bar.finish_and_clear();
    if json {
        output::json(&json!({
            "found": check_json(&report.found),
            "moved_to": report.moved_to.as_ref().map(|p| p.display().to_string()),
            "files_rewritten": report.files_rewritten,
            "files_removed": report.files_removed,
            "hints_removed": report.hints_removed,
        }))?;
    } else {
        output::value(report.to_string().as_bytes())?;
    }
    Ok(code::OK)
}

fn check_json(report: &bitcask::CheckReport) -> Value {
    let files: Vec<Value> = report
        .files
        .iter()
        .map(|f| {
            json!({
                "file_id": f.file_id,
                "path": f.path.display().to_string(),
                "bytes": f.len,
                "records": f.records,
                "torn_tail_at": f.torn_tail,
                "damage": f.damage.iter().map(|d| {
                    let keys: Vec<Value> = d.keys.iter().map(|k| {
                        let mut map = Map::new();
                        output::value_fields(&mut map, "key", k);
                        Value::Object(map)
                    }).collect();
                    json!({
                        "offset": d.offset,
                        "bytes": d.len,
                        "kind": d.kind.to_string(),
                        "keys": keys,
                        "lost_versions_after": d.seq_after,
                        "lost_versions_before": d.seq_before,
                    })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "damaged": report.is_damaged(),
        "records": report.records(),
        "bytes": report.bytes(),
        "files": files,
        "bad_hints": report.bad_hints,
    })
}

fn export(local: &Local, to: Option<&Path>, prefix: &str, json: bool) -> Result<u8, Failure> {
    let to_file = to.filter(|path| *path != Path::new("-"));
    let exported = match to_file {
        Some(path) => {
            // Written beside the target and renamed when complete, so a
            // failed export never leaves a file that looks whole.
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".partial");
            let tmp = std::path::PathBuf::from(tmp);
            let file = std::fs::File::create(&tmp)
                .map_err(|e| Failure::failed(format!("cannot create {}: {e}", tmp.display())))?;
            let exported = transfer::export(local.db(), prefix, &file)?;
            file.sync_all()
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
            exported
        }
        None => transfer::export(local.db(), prefix, std::io::stdout().lock())?,
    };
    // On stdout the export is the output; the count goes to stderr.
    if json && to_file.is_some() {
        output::json(&json!({"records": exported.records}))?;
    } else {
        output::note(&format!("exported {} records", exported.records));
    }
    Ok(code::OK)
}

fn config_command(action: &ConfigAction, json: bool) -> Result<u8, Failure> {
    let path = config::path()?;
    match action {
        ConfigAction::Set { name, value } => {
            config::check_name(name)?;
            config::check_value(name, value)?;
            let mut settings = config::load(&path)?;
            settings.insert(name.clone(), value.clone());
            config::save(&path, &settings)?;
            output::note(&format!("{name} = {value} (in {})", path.display()));
            Ok(code::OK)
        }
        ConfigAction::Get { name } => {
            config::check_name(name)?;
            match config::load(&path)?.get(name) {
                Some(value) => {
                    if json {
                        output::json(&json!({ name.as_str(): value }))?;
                    } else {
                        output::line(value)?;
                    }
                    Ok(code::OK)
                }
                None => {
                    output::note(&format!("{name} is not set"));
                    Ok(code::NO)
                }
            }
        }
        ConfigAction::Unset { name } => {
            config::check_name(name)?;
            let mut settings = config::load(&path)?;
            if settings.remove(name).is_some() {
                config::save(&path, &settings)?;
                output::note(&format!("{name} unset (in {})", path.display()));
            } else {
                output::note(&format!("{name} was not set"));
            }
            Ok(code::OK)
        }
        ConfigAction::List => {
            let mut settings = config::load(&path)?;
            // A token is shown by `config get auth_token` only.
            if let Some(token) = settings.get_mut("auth_token") {
                *token = "(set)".to_string();
            }
            if json {
                output::json(&to_json(&settings)?)?;
            } else {
                for (name, value) in &settings {
                    output::line(&format!("{name} = {value}"))?;
                }
            }
            Ok(code::OK)
        }
        ConfigAction::Path => {
            output::line(&path.display().to_string())?;
            Ok(code::OK)
        }
    }
}

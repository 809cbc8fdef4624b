//! Every verb but `create` and `run`.

use super::client::{body_reader, demux, Client};
use super::format::{ago, human_size, template};
use super::Command;
use anyhow::{bail, Context, Result};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{json, Value};

/// Encodes a path segment or query value; `:` and `/` stay (image names hold them).
pub(super) fn enc(s: &str) -> String {
    crate::api::query::percent_encode_keeping(s, b":/")
}

/// `key=value` filters as the API's JSON.
pub(super) fn filters(items: &[String]) -> Result<String> {
    let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for f in items {
        let (k, v) = f.split_once('=').ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(enc(&serde_json::to_string(&m)?))
}

/// Runs `f` for each name, printing the name on success (as docker does) and carrying on
/// after a failure; exit code 1 if any failed.
pub(super) async fn each<F, Fut>(names: &[String], f: F) -> Result<i32>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut code = 0;
    for n in names {
        match f(n.clone()).await {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("{e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// What `inspect` prints: `-f` applied to each object, or the whole list as JSON.
pub(super) fn print_inspected(objects: &[Value], format: Option<&str>) -> Result<()> {
    match format {
        Some(f) => {
            for v in objects {
                println!("{}", template(f, v).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(objects)?),
    }
    Ok(())
}

/// `inspect` of named objects at `/{kind}/{name}{suffix}`: those found are printed, each
/// missing one is reported; exit code 1 if any was missing.
pub(super) async fn inspect_each(client: &Client, kind: &str, suffix: &str, names: &[String], format: Option<&str>) -> Result<i32> {
    let mut out = Vec::new();
    let mut code = 0;
    for n in names {
        match client.json(Method::GET, &format!("/{kind}/{}{suffix}", enc(n)), None).await {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("Error: {e:#}");
                code = 1;
            }
        }
    }
    print_inspected(&out, format)?;
    Ok(code)
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    } else {
        s.to_string()
    }
}

pub(super) fn table(rows: &[Vec<String>]) {
    let cols = rows.first().map(|r| r.len()).unwrap_or(0);
    let widths: Vec<usize> = (0..cols).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}

pub async fn dispatch(client: &Client, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Start { attach, containers } => {
            if attach {
                if containers.len() != 1 {
                    bail!("you cannot start and attach multiple containers at once");
                }
                let id = &containers[0];
                let stream = client.attach(&format!("/containers/{}/attach?stream=1&stdout=1&stderr=1", enc(id))).await?;
                let wait = client.call(Method::POST, &format!("/containers/{}/wait?condition=next-exit", enc(id)), None).await?;
                client.call(Method::POST, &format!("/containers/{}/start", enc(id)), None).await?;
                demux(hyper_util::rt::TokioIo::new(stream)).await?;
                let v: Value = serde_json::from_slice(&wait.into_body().collect().await?.to_bytes())?;
                return Ok(v["StatusCode"].as_i64().unwrap_or(1) as i32);
            }
            each(&containers, |n| async move { client.call(Method::POST, &format!("/containers/{}/start", enc(&n)), None).await.map(drop) })
                .await
        }
        Command::Stop(a) => stop_or_restart(client, "stop", a).await,
        Command::Restart(a) => stop_or_restart(client, "restart", a).await,
        Command::Kill { signal, containers } => {
            let s = &signal;
            each(&containers, |n| async move {
                client.call(Method::POST, &format!("/containers/{}/kill?signal={}", enc(&n), enc(s)), None).await.map(drop)
            })
            .await
        }
        Command::Rm { force, volumes, containers } => {
            each(&containers, |n| async move {
                client
                    .call(Method::DELETE, &format!("/containers/{}?force={}&v={}", enc(&n), force as u8, volumes as u8), None)
                    .await
                    .map(drop)
            })
            .await
        }
        Command::Wait { containers } => {
            let mut code = 0;
            for n in &containers {
                match client.json(Method::POST, &format!("/containers/{}/wait", enc(n)), None).await {
                    Ok(v) => println!("{}", v["StatusCode"]),
                    Err(e) => {
                        eprintln!("{e:#}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        Command::Pause { containers } => {
            each(&containers, |n| async move { client.call(Method::POST, &format!("/containers/{}/pause", enc(&n)), None).await.map(drop) })
                .await
        }
        Command::Unpause { containers } => {
            each(
                &containers,
                |n| async move { client.call(Method::POST, &format!("/containers/{}/unpause", enc(&n)), None).await.map(drop) },
            )
            .await
        }
        Command::Top { container, ps_args } => {
            let v =
                client.json(Method::GET, &format!("/containers/{}/top?ps_args={}", enc(&container), enc(&ps_args.join(" "))), None).await?;
            let titles: Vec<String> = v["Titles"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(String::from)).collect();
            let rows: Vec<Vec<String>> = v["Processes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r.as_array().into_iter().flatten().map(|c| c.as_str().unwrap_or("").to_string()).collect())
                .collect();
            super::format::table(&titles, &rows);
            Ok(0)
        }
        Command::Stats { no_stream, containers } => super::stats::run(client, &containers, no_stream).await,
        Command::Update { memory, memory_swap, cpus, cpu_shares, pids_limit, restart, containers } => {
            let mut body = serde_json::Map::new();
            if let Some(m) = memory {
                body.insert("Memory".into(), json!(super::format::parse_bytes(&m)?));
            }
            if let Some(m) = memory_swap {
                body.insert("MemorySwap".into(), json!(super::format::parse_bytes(&m)?));
            }
            if let Some(c) = cpus {
                body.insert("NanoCpus".into(), json!((c * 1e9) as i64));
            }
            if let Some(s) = cpu_shares {
                body.insert("CpuShares".into(), json!(s));
            }
            if let Some(p) = pids_limit {
                body.insert("PidsLimit".into(), json!(p));
            }
            if let Some(r) = restart {
                let (name, max) = match r.split_once(':') {
                    Some((n, m)) => (n.to_string(), m.parse::<i64>().map_err(|_| anyhow::anyhow!("invalid restart policy {r:?}"))?),
                    None => (r.clone(), 0),
                };
                body.insert("RestartPolicy".into(), json!({"Name": name, "MaximumRetryCount": max}));
            }
            let body = serde_json::Value::Object(body);
            let body = &body;
            each(&containers, |n| async move {
                client.call(Method::POST, &format!("/containers/{}/update", enc(&n)), Some(body.clone())).await.map(drop)
            })
            .await
        }
        Command::Rename { container, new_name } => {
            client.call(Method::POST, &format!("/containers/{}/rename?name={}", enc(&container), enc(&new_name)), None).await?;
            Ok(0)
        }
        Command::Ps { all, quiet, last, latest, no_trunc, filter } => {
            let limit = if latest { 1 } else { last.unwrap_or(-1) };
            let list = client
                .json(Method::GET, &format!("/containers/json?all={}&limit={limit}&filters={}", all as u8, filters(&filter)?), None)
                .await?;
            let list = list.as_array().cloned().unwrap_or_default();
            if quiet {
                for c in &list {
                    let id = c["Id"].as_str().unwrap_or("");
                    println!("{}", if no_trunc { id } else { &id[..12.min(id.len())] });
                }
                return Ok(0);
            }
            let mut rows = vec![["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"].map(String::from).to_vec()];
            for c in &list {
                let id = c["Id"].as_str().unwrap_or("");
                let cmd = c["Command"].as_str().unwrap_or("");
                rows.push(vec![
                    if no_trunc { id.to_string() } else { id.chars().take(12).collect() },
                    c["Image"].as_str().unwrap_or("").to_string(),
                    format!("\"{}\"", if no_trunc { cmd.to_string() } else { trunc(cmd, 20) }),
                    ago(c["Created"].as_i64().unwrap_or(0)),
                    c["Status"].as_str().unwrap_or("").to_string(),
                    c["Ports"]
                        .as_array()
                        .map(|ps| {
                            ps.iter()
                                .map(|p| {
                                    format!(
                                        "{}:{}->{}/{}",
                                        p["IP"].as_str().unwrap_or(""),
                                        p["PublicPort"],
                                        p["PrivatePort"],
                                        p["Type"].as_str().unwrap_or("")
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                    c["Names"][0].as_str().unwrap_or("").trim_start_matches('/').to_string(),
                ]);
            }
            table(&rows);
            Ok(0)
        }
        Command::Logs { follow, tail, timestamps, since, until, container } => {
            let mut path = format!(
                "/containers/{}/logs?stdout=1&stderr=1&follow={}&timestamps={}&tail={}",
                enc(&container),
                follow as u8,
                timestamps as u8,
                enc(&tail)
            );
            if let Some(s) = since {
                path.push_str(&format!("&since={}", enc(&s)));
            }
            if let Some(u) = until {
                path.push_str(&format!("&until={}", enc(&u)));
            }
            let resp = client.call(Method::GET, &path, None).await?;
            demux(body_reader(resp)).await?;
            Ok(0)
        }
        Command::Inspect { format, typ, names } => {
            let mut out = Vec::new();
            let mut code = 0;
            for n in &names {
                let mut found = None;
                let kinds: &[&str] = match typ.as_deref() {
                    Some("container") => &["containers"],
                    Some("image") => &["images"],
                    None => &["containers", "images"],
                    Some(t) => bail!("\"{t}\" is not a valid value for --type"),
                };
                for kind in kinds {
                    if let Ok(v) = client.json(Method::GET, &format!("/{kind}/{}/json", enc(n)), None).await {
                        found = Some(v);
                        break;
                    }
                }
                match found {
                    Some(v) => out.push(v),
                    None => {
                        eprintln!("Error: No such object: {n}");
                        code = 1;
                    }
                }
            }
            print_inspected(&out, format.as_deref())?;
            Ok(code)
        }
        Command::Images { all: _, quiet, no_trunc, digests, filter, repository } => {
            let mut f = filter;
            if let Some(r) = repository {
                f.push(format!("reference={r}"));
            }
            let list = client.json(Method::GET, &format!("/images/json?filters={}", filters(&f)?), None).await?;
            let list = list.as_array().cloned().unwrap_or_default();
            let short = |id: &str| -> String {
                if no_trunc {
                    id.to_string()
                } else {
                    id.trim_start_matches("sha256:").chars().take(12).collect()
                }
            };
            if quiet {
                for i in &list {
                    println!("{}", short(i["Id"].as_str().unwrap_or("")));
                }
                return Ok(0);
            }
            let mut head = vec!["REPOSITORY", "TAG"];
            if digests {
                head.push("DIGEST");
            }
            head.extend(["IMAGE ID", "CREATED", "SIZE"]);
            let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
            for i in &list {
                let mut names = i["RepoTags"].as_array().cloned().unwrap_or_default();
                if names.is_empty() {
                    names.push(Value::String("<none>:<none>".into()));
                }
                for t in names {
                    let t = t.as_str().unwrap_or("<none>:<none>");
                    let (repo, tag) = t.rsplit_once(':').unwrap_or((t, "<none>"));
                    let mut row = vec![repo.to_string(), tag.to_string()];
                    if digests {
                        let d = i["RepoDigests"]
                            .as_array()
                            .and_then(|a| a.iter().filter_map(|d| d.as_str()).find(|d| d.starts_with(&format!("{repo}@"))))
                            .and_then(|d| d.split_once('@').map(|(_, d)| d.to_string()))
                            .unwrap_or_else(|| "<none>".into());
                        row.push(d);
                    }
                    row.extend([
                        short(i["Id"].as_str().unwrap_or("")),
                        ago(i["Created"].as_i64().unwrap_or(0)),
                        human_size(i["Size"].as_u64().unwrap_or(0)),
                    ]);
                    rows.push(row);
                }
            }
            table(&rows);
            for i in &list {
                if let Some(why) = i["Damaged"].as_str() {
                    eprintln!("warning: image {} is damaged and cannot be run: {why}", short(i["Id"].as_str().unwrap_or("")));
                }
            }
            Ok(0)
        }
        Command::Login { username, password, password_stdin, server } => {
            let key = super::credentials::server_key(server.as_deref());
            let username = match username {
                Some(u) => u,
                None => bail!("a username is required (-u)"),
            };
            let password = match (password, password_stdin) {
                (Some(p), false) => p,
                (None, true) => {
                    let mut p = String::new();
                    std::io::stdin().read_line(&mut p)?;
                    p.trim_end_matches(['\n', '\r']).to_string()
                }
                _ => bail!("give the password with -p or --password-stdin (one of them)"),
            };
            let v = client
                .json(Method::POST, "/auth", Some(serde_json::json!({"username": username, "password": password, "serveraddress": key})))
                .await?;
            super::credentials::store(&key, &username, &password)?;
            println!("{}", v["Status"].as_str().unwrap_or("Login Succeeded"));
            Ok(0)
        }
        Command::Logout { server } => {
            let key = super::credentials::server_key(server.as_deref());
            if super::credentials::forget(&key)? {
                println!("Removing login credentials for {key}");
            } else {
                println!("Not logged in to {key}");
            }
            Ok(0)
        }
        Command::Search { limit, filters: f, no_trunc, term } => {
            let headers: Vec<(&str, String)> = super::credentials::header_for(&term)?.map(|h| ("X-Registry-Auth", h)).into_iter().collect();
            let path = format!("/images/search?term={}&limit={limit}&filters={}", enc(&term), filters(&f)?);
            let resp = client.call_with(Method::GET, &path, None, &headers).await?;
            let found: Vec<serde_json::Value> = serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|r| {
                    let mut d = r["description"].as_str().unwrap_or("").replace('\n', " ");
                    if !no_trunc && d.chars().count() > 45 {
                        d = d.chars().take(44).collect::<String>() + "…";
                    }
                    let official = if r["is_official"].as_bool() == Some(true) { "[OK]" } else { "" };
                    vec![r["name"].as_str().unwrap_or("").to_string(), d, r["star_count"].to_string(), official.to_string()]
                })
                .collect();
            super::format::table(&["NAME", "DESCRIPTION", "STARS", "OFFICIAL"].map(String::from), &rows);
            Ok(0)
        }
        Command::Pull { platform, quiet, image } => pull(client, &image, platform.as_deref(), quiet, false).await,
        Command::Build { tags, file, build_args, target, no_cache, quiet, path } => {
            let query = build_query(&path, file.as_deref(), &tags, &build_args, target.as_deref(), no_cache, quiet)?;
            // The context goes to a temporary file first: its size is known and it streams.
            let tar = std::env::temp_dir().join(format!("berth-build-context-{}.tar", std::process::id()));
            let _remove = crate::api::query::Spooled(tar.clone());
            let f = std::fs::File::create(&tar).with_context(|| format!("creating {}", tar.display()))?;
            let dockerfile = query.1.clone();
            let dir = path.clone();
            tokio::task::spawn_blocking(move || {
                berth_images::dockerfile::context::write(&dir, Some(&dockerfile), std::io::BufWriter::new(f))
            })
            .await?
            .with_context(|| format!("packing the build context {}", path.display()))?;
            let resp = client.upload(&format!("/build?{}", query.0), &tar.display().to_string(), "application/x-tar").await?;
            print_messages(resp, quiet, false).await
        }
        Command::Load { input, quiet } => {
            let resp = client.upload(&format!("/images/load?quiet={}", quiet as u8), &input, "application/x-tar").await?;
            print_messages(resp, quiet, false).await
        }
        Command::Diff { container } => {
            let v = client.json(Method::GET, &format!("/containers/{}/changes", enc(&container)), None).await?;
            for c in v.as_array().cloned().unwrap_or_default() {
                let kind = match c["Kind"].as_u64() {
                    Some(0) => "C",
                    Some(1) => "A",
                    _ => "D",
                };
                println!("{kind} {}", c["Path"].as_str().unwrap_or(""));
            }
            Ok(0)
        }
        Command::Export { output, container } => {
            save_to(client, &format!("/containers/{}/export", enc(&container)), output.as_deref()).await
        }
        Command::Commit { author, message, change, pause, container, repository } => {
            let mut path = format!("/commit?container={}&pause={}", enc(&container), pause as u8);
            if let Some(r) = repository {
                let (repo, tag) = match r.rsplit_once(':') {
                    Some((n, t)) if !t.contains('/') => (n.to_string(), t.to_string()),
                    _ => (r.clone(), "latest".to_string()),
                };
                path.push_str(&format!("&repo={}&tag={}", enc(&repo), enc(&tag)));
            }
            if let Some(a) = author {
                path.push_str(&format!("&author={}", enc(&a)));
            }
            if let Some(m) = message {
                path.push_str(&format!("&comment={}", enc(&m)));
            }
            for c in &change {
                path.push_str(&format!("&changes={}", enc(c)));
            }
            let v = client.json(Method::POST, &path, None).await?;
            println!("{}", v["Id"].as_str().unwrap_or(""));
            Ok(0)
        }
        Command::Push { quiet, image } => {
            let (name, tag) = match image.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => (n.to_string(), t.to_string()),
                _ => (image.clone(), "latest".to_string()),
            };
            let headers: Vec<(&str, String)> =
                super::credentials::header_for(&image)?.map(|h| ("X-Registry-Auth", h)).into_iter().collect();
            let resp = client.call_with(Method::POST, &format!("/images/{}/push?tag={}", enc(&name), enc(&tag)), None, &headers).await?;
            print_messages(resp, quiet, false).await
        }
        Command::Save { output, format, images } => {
            let mut path = format!("/images/get?{}", images.iter().map(|i| format!("names={}", enc(i))).collect::<Vec<_>>().join("&"));
            if let Some(f) = format {
                path.push_str(&format!("&format={}", enc(&f)));
            }
            save_to(client, &path, output.as_deref()).await
        }
        Command::Import { file, reference, change, message } => {
            let mut path = "/images/create?fromSrc=-".to_string();
            if let Some(r) = reference {
                path.push_str(&format!("&repo={}", enc(&r)));
            }
            for c in &change {
                path.push_str(&format!("&changes={}", enc(c)));
            }
            if let Some(m) = message {
                path.push_str(&format!("&message={}", enc(&m)));
            }
            let resp = client.upload(&path, &file, "application/x-tar").await?;
            print_messages(resp, false, false).await
        }
        Command::Tag { source, target } => {
            let (repo, tag) = match target.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                _ => (target.clone(), "latest".to_string()),
            };
            client.call(Method::POST, &format!("/images/{}/tag?repo={}&tag={}", enc(&source), enc(&repo), enc(&tag)), None).await?;
            Ok(0)
        }
        Command::Rmi { force, no_prune, images } => {
            let mut code = 0;
            for i in &images {
                match client
                    .json(Method::DELETE, &format!("/images/{}?force={}&noprune={}", enc(i), force as u8, no_prune as u8), None)
                    .await
                {
                    Ok(v) => {
                        for item in v.as_array().cloned().unwrap_or_default() {
                            if let Some(t) = item["Untagged"].as_str() {
                                println!("Untagged: {t}");
                            }
                            if let Some(d) = item["Deleted"].as_str() {
                                println!("Deleted: {d}");
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("{e:#}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        Command::History { no_trunc, quiet, image } => {
            let list = client.json(Method::GET, &format!("/images/{}/history", enc(&image)), None).await?;
            let list = list.as_array().cloned().unwrap_or_default();
            let mut rows = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"].map(String::from).to_vec()];
            for h in &list {
                let id = h["Id"].as_str().unwrap_or("<missing>");
                let id = if id.starts_with("sha256:") && !no_trunc { id[7..19].to_string() } else { id.to_string() };
                if quiet {
                    println!("{id}");
                    continue;
                }
                let by = h["CreatedBy"].as_str().unwrap_or("");
                rows.push(vec![
                    id,
                    ago(h["Created"].as_i64().unwrap_or(0)),
                    if no_trunc { by.to_string() } else { trunc(by, 45) },
                    human_size(h["Size"].as_u64().unwrap_or(0)),
                    h["Comment"].as_str().unwrap_or("").to_string(),
                ]);
            }
            if !quiet {
                table(&rows);
            }
            Ok(0)
        }
        Command::Image { command: super::ImageCommand::Inspect { format, images } } => {
            inspect_each(client, "images", "/json", &images, format.as_deref()).await
        }
        Command::Image { command: super::ImageCommand::Prune { all, force: _ } } => {
            let f = if all { "%7B%22dangling%22%3A%5B%22false%22%5D%7D" } else { "%7B%22dangling%22%3A%5B%22true%22%5D%7D" };
            let v = client.json(Method::POST, &format!("/images/prune?filters={f}"), None).await?;
            for item in v["ImagesDeleted"].as_array().cloned().unwrap_or_default() {
                if let Some(t) = item["Untagged"].as_str() {
                    println!("untagged: {t}");
                }
                if let Some(d) = item["Deleted"].as_str() {
                    println!("deleted: {d}");
                }
            }
            println!("Total reclaimed space: {}", human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0)));
            Ok(0)
        }
        Command::System { command: super::SystemCommand::Audit { since } } => {
            let v = client.json(Method::GET, &format!("/system/audit?since={since}"), None).await?;
            let titles: Vec<String> = ["SEQ", "WHEN", "WHO", "ROLE", "FROM", "REQUEST", "STATUS"].map(String::from).to_vec();
            let rows: Vec<Vec<String>> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
                    vec![
                        e["Seq"].to_string(),
                        s("At"),
                        s("Subject"),
                        s("Role"),
                        s("Addr"),
                        format!("{} {}", s("Method"), s("Path")),
                        e["Status"].to_string(),
                    ]
                })
                .collect();
            super::format::table(&titles, &rows);
            Ok(0)
        }
        Command::System { command: super::SystemCommand::Df } => {
            let v = client.json(Method::GET, "/system/df", None).await?;
            let images = v["Images"].as_array().cloned().unwrap_or_default();
            let containers = v["Containers"].as_array().cloned().unwrap_or_default();
            let active_images = images.iter().filter(|i| i["Containers"].as_u64().unwrap_or(0) > 0).count();
            let running = containers.iter().filter(|c| c["State"] == "running").count();
            table(&[
                ["TYPE", "TOTAL", "ACTIVE", "SIZE"].map(String::from).to_vec(),
                vec![
                    "Images".into(),
                    images.len().to_string(),
                    active_images.to_string(),
                    human_size(v["LayersSize"].as_u64().unwrap_or(0)),
                ],
                vec![
                    "Containers".into(),
                    containers.len().to_string(),
                    running.to_string(),
                    human_size(containers.iter().map(|c| c["SizeRw"].as_u64().unwrap_or(0)).sum()),
                ],
                vec!["Local Volumes".into(), "0".into(), "0".into(), human_size(0)],
                vec!["Build Cache".into(), "0".into(), "0".into(), human_size(0)],
            ]);
            Ok(0)
        }
        Command::Version => {
            println!(
                "Client:\n Version:      {}\n API version:  {}\n OS/Arch:      linux/{}",
                crate::VERSION,
                crate::API_VERSION,
                crate::images::host_arch()
            );
            let v = client.json(Method::GET, "/version", None).await?;
            println!(
                "\nServer:\n Engine:\n  Version:      {}\n  API version:  {} (minimum version {})\n  OS/Arch:      {}/{}\n  Kernel:       {}",
                v["Version"].as_str().unwrap_or(""),
                v["ApiVersion"].as_str().unwrap_or(""),
                v["MinAPIVersion"].as_str().unwrap_or(""),
                v["Os"].as_str().unwrap_or(""),
                v["Arch"].as_str().unwrap_or(""),
                v["KernelVersion"].as_str().unwrap_or("")
            );
            Ok(0)
        }
        Command::Info => {
            let v = client.json(Method::GET, "/info", None).await?;
            println!("Server:");
            println!(
                " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}",
                v["Containers"], v["ContainersRunning"], v["ContainersPaused"], v["ContainersStopped"]
            );
            println!(" Images: {}", v["Images"]);
            println!(" Server Version: {}", v["ServerVersion"].as_str().unwrap_or(""));
            println!(" Storage Driver: {}", v["Driver"].as_str().unwrap_or(""));
            for kv in v["DriverStatus"].as_array().cloned().unwrap_or_default() {
                println!("  {}: {}", kv[0].as_str().unwrap_or(""), kv[1].as_str().unwrap_or(""));
            }
            println!(" Logging Driver: {}", v["LoggingDriver"].as_str().unwrap_or(""));
            println!(
                " Cgroup Driver: {}\n Cgroup Version: {}",
                v["CgroupDriver"].as_str().unwrap_or(""),
                v["CgroupVersion"].as_str().unwrap_or("")
            );
            println!(" Default Runtime: {}", v["DefaultRuntime"].as_str().unwrap_or(""));
            println!(" Live Restore Enabled: {}", v["LiveRestoreEnabled"]);
            let sup = &v["BerthSupervisor"];
            if sup.is_object() {
                println!(" Supervisor Restarts: {}", sup["Restarts"]);
                for e in sup["Recent"].as_array().into_iter().flatten() {
                    println!(
                        "  {} {} ({}), waited {}ms",
                        e["at"].as_str().unwrap_or(""),
                        e["reason"].as_str().unwrap_or(""),
                        e["status"].as_str().unwrap_or(""),
                        e["delay_ms"]
                    );
                }
            }
            println!(
                " Kernel Version: {}\n Operating System: {}\n Architecture: {}",
                v["KernelVersion"].as_str().unwrap_or(""),
                v["OperatingSystem"].as_str().unwrap_or(""),
                v["Architecture"].as_str().unwrap_or("")
            );
            println!(" CPUs: {}\n Total Memory: {}", v["NCPU"], human_size(v["MemTotal"].as_u64().unwrap_or(0)));
            println!(" Berth Root Dir: {}", v["DockerRootDir"].as_str().unwrap_or(""));
            let st = &v["BerthState"];
            println!(" State Store: {} ({} bytes, schema {})", st["Path"].as_str().unwrap_or(""), st["Size"], st["Schema"]);
            let rec = &st["LastRecovery"];
            if let Some(s) = rec["Salvaged"].as_str() {
                println!("  WARNING: the state store was {s}; leftovers are kept until `berth system check --repair`");
            }
            println!(
                "  Last Recovery: {} in {} ms, {} interrupted operation(s), {} leftover(s) reconciled",
                rec["At"].as_str().unwrap_or(""),
                rec["Millis"],
                rec["Intents"].as_array().map(|a| a.len()).unwrap_or(0),
                rec["Reconciled"].as_array().map(|a| a.len()).unwrap_or(0)
            );
            Ok(0)
        }
        Command::Daemon(_)
        | Command::Monitor { .. }
        | Command::Run(_)
        | Command::Network { .. }
        | Command::Bundle { .. }
        | Command::CheckConfig { .. }
        | Command::Board { .. }
        | Command::Volume { .. }
        | Command::Port { .. }
        | Command::Create(_)
        | Command::Supervise(_)
        | Command::Tls { .. }
        | Command::System { command: super::SystemCommand::Check { .. } | super::SystemCommand::Watchdog { .. } } => {
            unreachable!("dispatched by main")
        }
    }
}

/// Streams a tar answer (`save`, `export`) to `output` (through a temp file renamed at the
/// end, so a failed transfer leaves no half file) or to stdout, never to a terminal.
pub async fn save_to(client: &Client, path: &str, output: Option<&str>) -> Result<i32> {
    use std::io::IsTerminal;
    if output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let resp = client.call(Method::GET, path, None).await?;
    let mut body = body_reader(resp);
    match output {
        None => {
            tokio::io::copy(&mut body, &mut tokio::io::stdout()).await.context("receiving the archive")?;
        }
        Some(out) => {
            let target = std::path::Path::new(out);
            let tmp =
                target.with_file_name(format!(".{}.tmp-{}", target.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
            let result = async {
                let mut f = tokio::fs::File::create(&tmp).await.with_context(|| format!("creating {}", tmp.display()))?;
                tokio::io::copy(&mut body, &mut f).await.context("receiving the archive")?;
                f.sync_all().await?;
                tokio::fs::rename(&tmp, target).await.with_context(|| format!("renaming to {out}"))?;
                let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
                berth_images::durable::sync_dir(dir)
            }
            .await;
            if result.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            result?;
        }
    }
    Ok(0)
}

async fn stop_or_restart(client: &Client, verb: &str, a: super::StopArgs) -> Result<i32> {
    let mut q = String::new();
    if let Some(t) = a.time {
        q.push_str(&format!("t={t}&"));
    }
    if let Some(s) = &a.signal {
        q.push_str(&format!("signal={}", enc(s)));
    }
    let q = &q;
    each(&a.containers, |n| async move { client.call(Method::POST, &format!("/containers/{}/{verb}?{q}", enc(&n)), None).await.map(drop) })
        .await
}

/// `pull`, also used by `run`/`create` when the image is missing. Progress lines go to stdout,
/// or to stderr with `to_stderr`, so `run -d` keeps printing only the id on stdout.
pub async fn pull(client: &Client, image: &str, platform: Option<&str>, quiet: bool, to_stderr: bool) -> Result<i32> {
    // `repo@sha256:...` first: the digest holds a ':' of its own.
    let (name, tag) = match image.split_once('@') {
        Some((n, d)) => (n.to_string(), d.to_string()),
        None => match image.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n.to_string(), t.to_string()),
            _ => (image.to_string(), String::new()),
        },
    };
    let mut path = format!("/images/create?fromImage={}&tag={}", enc(&name), enc(&tag));
    if let Some(p) = platform {
        path.push_str(&format!("&platform={}", enc(p)));
    }
    let headers: Vec<(&str, String)> = super::credentials::header_for(image)?.map(|h| ("X-Registry-Auth", h)).into_iter().collect();
    let resp = client.call_with(Method::POST, &path, None, &headers).await?;
    print_messages(resp, quiet, to_stderr).await
}

/// Prints Docker's JSON message stream (`stream`, `status`, `error`); 1 if it carried an error.
pub(super) async fn print_messages(resp: hyper::Response<hyper::body::Incoming>, quiet: bool, to_stderr: bool) -> Result<i32> {
    let out = |s: &str| {
        if to_stderr {
            eprint!("{s}")
        } else {
            print!("{s}")
        }
    };
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(body_reader(resp)).lines();
    let mut code = 0;
    while let Some(line) = lines.next_line().await? {
        let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
        if let Some(e) = v["error"].as_str() {
            eprintln!("Error: {e}");
            code = 1;
        } else if let Some(s) = v["stream"].as_str() {
            out(s);
        } else if let Some(s) = v["status"].as_str() {
            // Byte counts are for terminals that redraw; a line per chunk is noise.
            if !quiet && s != "Downloading" {
                match v["id"].as_str() {
                    Some(id) => out(&format!("{id}: {s}\n")),
                    None => out(&format!("{s}\n")),
                }
            }
        }
    }
    Ok(code)
}

/// `POST /build`'s query for `berth build`, and the Dockerfile's path inside the context.
fn build_query(
    context: &std::path::Path,
    file: Option<&std::path::Path>,
    tags: &[String],
    build_args: &[String],
    target: Option<&str>,
    no_cache: bool,
    quiet: bool,
) -> Result<(String, String)> {
    let root = context.canonicalize().with_context(|| format!("the build context {}", context.display()))?;
    let dockerfile = match file {
        None => "Dockerfile".to_string(),
        Some(f) => {
            let full = f.canonicalize().with_context(|| format!("the Dockerfile {}", f.display()))?;
            let rel = full
                .strip_prefix(&root)
                .map_err(|_| anyhow::anyhow!("the Dockerfile {} is outside the build context {}", f.display(), context.display()))?;
            rel.to_string_lossy().into_owned()
        }
    };
    let mut args = serde_json::Map::new();
    for a in build_args {
        match a.split_once('=') {
            Some((k, v)) => args.insert(k.to_string(), Value::String(v.to_string())),
            // Docker's rule: a bare KEY takes this environment's value, and is left out when unset.
            None => match std::env::var(a) {
                Ok(v) => args.insert(a.clone(), Value::String(v)),
                Err(_) => continue,
            },
        };
    }
    let mut q = format!("dockerfile={}&nocache={}&q={}", enc(&dockerfile), no_cache as u8, quiet as u8);
    for t in tags {
        q.push_str(&format!("&t={}", enc(t)));
    }
    if !args.is_empty() {
        q.push_str(&format!("&buildargs={}", enc(&Value::Object(args).to_string())));
    }
    if let Some(t) = target {
        q.push_str(&format!("&target={}", enc(t)));
    }
    Ok((q, dockerfile))
}

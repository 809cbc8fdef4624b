//! The instructions that only change the image's configuration, applied to a stage's
//! state: what each sets, and the history line (`created_by`) Docker writes for it.

use super::stage::StageState;
use anyhow::{anyhow, Result};
use berth_images::dockerfile::{Command, Health, Kind};
use serde_json::{json, Value};

/// Shell form → the stage's SHELL + the line; exec form as written.
pub fn argv(cmd: &Command, shell: &[String]) -> Vec<String> {
    match cmd {
        Command::Shell(s) => shell.iter().cloned().chain(std::iter::once(s.clone())).collect(),
        Command::Exec(v) => v.clone(),
    }
}

fn nanos(d: Option<std::time::Duration>) -> Option<Value> {
    d.map(|d| json!(d.as_nanos() as u64))
}

fn healthcheck(h: &Health) -> Value {
    match h {
        Health::None => json!({ "Test": ["NONE"] }),
        Health::Check { test, interval, timeout, start_period, start_interval, retries } => {
            let test = match test {
                Command::Shell(s) => json!(["CMD-SHELL", s]),
                Command::Exec(v) => json!(std::iter::once("CMD".to_string()).chain(v.iter().cloned()).collect::<Vec<_>>()),
            };
            let mut hc = serde_json::Map::new();
            hc.insert("Test".into(), test);
            for (k, v) in [
                ("Interval", nanos(*interval)),
                ("Timeout", nanos(*timeout)),
                ("StartPeriod", nanos(*start_period)),
                ("StartInterval", nanos(*start_interval)),
            ] {
                if let Some(v) = v {
                    hc.insert(k.into(), v);
                }
            }
            if let Some(r) = retries {
                hc.insert("Retries".into(), json!(r));
            }
            Value::Object(hc)
        }
    }
}

/// Applies a configuration instruction to `s`; returns its `created_by` text, `None` when
/// the instruction is not one of them (RUN, COPY, ADD) or changes no image (ARG).
pub fn apply(s: &mut StageState, kind: &Kind) -> Result<Option<String>> {
    let shown = |what: String| Some(format!("/bin/sh -c #(nop)  {what}"));
    Ok(match kind {
        Kind::Env(pairs) => {
            // Every value is expanded with the environment from before this instruction.
            let values: Vec<(String, String)> = pairs.iter().map(|(k, v)| Ok((k.clone(), s.expand(v)?))).collect::<Result<_>>()?;
            for (k, v) in &values {
                s.vars.set_env(k, v.clone());
            }
            s.config.env = Some(s.vars.image_env());
            shown(format!("ENV {}", values.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")))
        }
        Kind::Label(pairs) => {
            let mut shown_pairs = Vec::new();
            for (k, v) in pairs {
                let (k, v) = (s.expand(k)?, s.expand(v)?);
                shown_pairs.push(format!("{k}={v}"));
                s.config.labels.get_or_insert_with(Default::default).insert(k, v);
            }
            shown(format!("LABEL {}", shown_pairs.join(" ")))
        }
        Kind::Expose(ports) => {
            let mut out = Vec::new();
            for p in ports {
                let p = s.expand(p)?;
                let p = if p.contains('/') { p.to_ascii_lowercase() } else { format!("{p}/tcp") };
                let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let valid_port = |n: &str| n.parse::<u16>().is_ok_and(|n| n > 0);
                let range_ok = match port.split_once('-') {
                    Some((a, b)) => valid_port(a) && valid_port(b),
                    None => valid_port(port),
                };
                if !range_ok || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(anyhow!("invalid containerPort: {p}"));
                }
                s.config.exposed_ports.get_or_insert_with(Default::default).insert(p.clone(), json!({}));
                out.push(p);
            }
            shown(format!("EXPOSE {}", out.join(" ")))
        }
        Kind::Volume(vols) => {
            let mut out = Vec::new();
            for v in vols {
                let v = s.expand(v)?;
                s.config.volumes.get_or_insert_with(Default::default).insert(v.clone(), json!({}));
                out.push(v);
            }
            shown(format!("VOLUME [{}]", out.join(" ")))
        }
        Kind::User(u) => {
            let u = s.expand(u)?;
            s.config.user = Some(u.clone());
            shown(format!("USER {u}"))
        }
        Kind::Workdir(w) => {
            let w = s.expand(w)?;
            let path = if w.starts_with('/') { w } else { format!("{}/{w}", s.workdir().trim_end_matches('/')) };
            let clean = clean_path(&path);
            s.config.working_dir = Some(clean.clone());
            shown(format!("WORKDIR {clean}"))
        }
        Kind::StopSignal(sig) => {
            let sig = s.expand(sig)?;
            s.config.stop_signal = Some(sig.clone());
            shown(format!("STOPSIGNAL {sig}"))
        }
        Kind::Cmd(c) => {
            let v = argv(c, &s.shell());
            s.config.cmd = Some(v.clone());
            s.cmd_set = true;
            shown(format!("CMD {}", json!(v)))
        }
        Kind::Entrypoint(c) => {
            let v = argv(c, &s.shell());
            s.config.entrypoint = Some(v.clone());
            // An ENTRYPOINT drops the CMD the base image had (not one this stage set).
            if !s.cmd_set {
                s.config.cmd = None;
            }
            shown(format!("ENTRYPOINT {}", json!(v)))
        }
        Kind::Healthcheck(h) => {
            let hc = healthcheck(h);
            s.config.extra.insert("Healthcheck".into(), hc.clone());
            shown(format!("HEALTHCHECK {hc}"))
        }
        Kind::Shell(v) => {
            s.config.extra.insert("Shell".into(), json!(v));
            shown(format!("SHELL {}", json!(v)))
        }
        Kind::Onbuild(trigger) => {
            let (kw, rest) = trigger.split_once(char::is_whitespace).unwrap_or((trigger, ""));
            let trigger = format!("{} {}", kw.to_ascii_uppercase(), rest.trim_start());
            let list = s.config.extra.entry("OnBuild").or_insert_with(|| json!([]));
            if !list.is_array() {
                *list = json!([]);
            }
            list.as_array_mut().expect("an array").push(json!(trigger));
            shown(format!("ONBUILD {trigger}"))
        }
        Kind::Maintainer(m) => {
            s.author = Some(m.clone());
            shown(format!("MAINTAINER {m}"))
        }
        Kind::Arg(_) | Kind::From { .. } | Kind::Run(_) | Kind::Copy(_) | Kind::Add(_) => None,
    })
}

/// `/a/./b/../c/` → `/a/c`.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_images::config::RunConfig;
    use berth_images::dockerfile::vars::BuildArgs;
    use berth_images::dockerfile::Dockerfile;

    fn stage() -> StageState {
        let base = RunConfig { env: Some(vec!["PATH=/bin".into()]), cmd: Some(vec!["sh".into()]), ..Default::default() };
        StageState::new(berth_images::Digest::of(b"x"), base, None, &BuildArgs::default(), '\\')
    }

    fn run(s: &mut StageState, text: &str) -> Option<String> {
        let d = Dockerfile::parse(&format!("FROM x\n{text}\n")).unwrap();
        apply(s, &d.stages[0].instructions[0].kind).unwrap()
    }

    #[test]
    fn configuration_instructions_set_what_docker_sets() {
        let mut s = stage();
        assert_eq!(run(&mut s, "ENV A=1 B=\"two words\"").unwrap(), "/bin/sh -c #(nop)  ENV A=1 B=two words");
        run(&mut s, "ENV C=${A}x");
        assert_eq!(s.config.env.as_ref().unwrap(), &["PATH=/bin", "A=1", "B=two words", "C=1x"]);
        run(&mut s, "WORKDIR /app");
        run(&mut s, "WORKDIR sub/../lib");
        assert_eq!(s.config.working_dir.as_deref(), Some("/app/lib"));
        run(&mut s, "EXPOSE 80 53/udp");
        assert!(s.config.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
        assert!(s.config.exposed_ports.as_ref().unwrap().contains_key("53/udp"));
        run(&mut s, "ENTRYPOINT [\"/bin/app\"]");
        assert_eq!(s.config.cmd, None, "the base image's CMD stays after an ENTRYPOINT");
        run(&mut s, "CMD --flag");
        assert_eq!(s.config.cmd.as_ref().unwrap(), &["/bin/sh", "-c", "--flag"]);
        run(&mut s, "SHELL [\"/bin/ash\", \"-eo\"]");
        run(&mut s, "CMD again");
        assert_eq!(s.config.cmd.as_ref().unwrap(), &["/bin/ash", "-eo", "again"]);
        run(&mut s, "HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost");
        assert_eq!(
            s.config.extra["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 5_000_000_000u64, "Retries": 2})
        );
        run(&mut s, "ONBUILD run echo hi");
        assert_eq!(s.config.extra["OnBuild"], json!(["RUN echo hi"]));
        assert!(run(&mut s, "ARG X=1").is_none());
        let d = Dockerfile::parse("FROM x\nEXPOSE 99999\n").unwrap();
        assert_eq!(apply(&mut s, &d.stages[0].instructions[0].kind).unwrap_err().to_string(), "invalid containerPort: 99999/tcp");
    }
}

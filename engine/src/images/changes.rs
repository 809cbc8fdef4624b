//! `--change` instructions of `import` (and later `commit`): the Dockerfile instructions that
//! only set configuration.

use anyhow::{bail, Context, Result};
use berth_images::config::RunConfig;

/// A Dockerfile argument list: JSON array form, or shell form run by `/bin/sh -c`.
fn command(arg: &str) -> Result<Vec<String>> {
    if arg.trim_start().starts_with('[') {
        serde_json::from_str(arg).with_context(|| format!("invalid JSON array {arg:?}"))
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), arg.to_string()])
    }
}

fn key_values(arg: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if !arg.contains('=') {
        // Legacy `ENV key value` form.
        let (k, v) = arg.split_once(' ').with_context(|| format!("{arg:?} needs a value"))?;
        out.push((k.to_string(), v.trim().to_string()));
        return Ok(out);
    }
    for part in arg.split_whitespace() {
        let (k, v) = part.split_once('=').with_context(|| format!("{part:?} is not key=value"))?;
        out.push((k.to_string(), v.trim_matches('"').to_string()));
    }
    Ok(out)
}

/// Applies `changes` (`CMD ["sh"]`, `ENV A=b`, `WORKDIR /x` ...) to `config`.
pub fn apply_changes(config: &mut RunConfig, changes: &[String]) -> Result<()> {
    for change in changes {
        let change = change.trim();
        let (instr, arg) = change.split_once(char::is_whitespace).unwrap_or((change, ""));
        let arg = arg.trim();
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => config.cmd = Some(command(arg)?),
            "ENTRYPOINT" => config.entrypoint = Some(command(arg)?),
            "WORKDIR" => config.working_dir = Some(arg.to_string()),
            "USER" => config.user = Some(arg.to_string()),
            "STOPSIGNAL" => config.stop_signal = Some(arg.to_string()),
            "ENV" => {
                let env = config.env.get_or_insert_with(Vec::new);
                for (k, v) in key_values(arg)? {
                    env.retain(|e| e.split('=').next() != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                let labels = config.labels.get_or_insert_with(Default::default);
                for (k, v) in key_values(arg)? {
                    labels.insert(k, v);
                }
            }
            "EXPOSE" => {
                let ports = config.exposed_ports.get_or_insert_with(Default::default);
                for p in arg.split_whitespace() {
                    let p = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                    ports.insert(p, serde_json::json!({}));
                }
            }
            "VOLUME" => {
                let vols = config.volumes.get_or_insert_with(Default::default);
                let list: Vec<String> =
                    if arg.starts_with('[') { serde_json::from_str(arg)? } else { arg.split_whitespace().map(String::from).collect() };
                for v in list {
                    vols.insert(v, serde_json::json!({}));
                }
            }
            other => {
                bail!("{other} is not a valid change command (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_dockerfile_changes() {
        let mut c = RunConfig::default();
        apply_changes(
            &mut c,
            &["CMD [\"sh\",\"-c\",\"x\"]".into(), "ENV A=1 B=2".into(), "ENV A=3".into(), "WORKDIR /w".into(), "EXPOSE 80".into()],
        )
        .unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["sh", "-c", "x"]);
        assert_eq!(c.env.unwrap(), vec!["B=2", "A=3"]);
        assert_eq!(c.working_dir.as_deref(), Some("/w"));
        assert!(c.exposed_ports.unwrap().contains_key("80/tcp"));
        assert!(apply_changes(&mut RunConfig::default(), &["RUN rm -rf /".into()]).is_err());
    }
}
